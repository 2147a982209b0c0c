"""The layered tree's rpmdb is a delta: the base's rpmdb.sqlite object is reused as it is and rpm's changes
ship as sqlite's write-ahead log beside it; rpm -qa, -qf and -V read both, on a read-only /usr as root and as
a user, and our own reader does too."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import Host

from reconcile.ostree import Repo
from reconcile.rpm import rpmdb
from reconcile.rpm.rpmdb import RPMDB_FILE, SHM_FILE, WAL_FILE, TreeRpmdbReader, build_rpmdb, read_headers

DB = "usr/share/rpm"


def _file_object(repo: Path, commit: str, name: str) -> str | None:
    found = Repo.open(repo).lookup_path(commit, f"{DB}/{name}")
    return found[1] if found else None


def _rpm_read_only(tree: Path, *args: str, user: bool = False) -> subprocess.CompletedProcess[str]:
    """rpm on the tree with its /usr mounted read-only, as in a deployment (a mount namespace of its own)."""
    rpm = ["rpm", "--root", str(tree), "--dbpath", "/usr/share/rpm", *args]
    if user:
        rpm = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/", *rpm]
    script = 'mount --bind -o ro "$1/usr" "$1/usr" && shift && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(tree), *rpm]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _qa(tree: Path, user: bool = False) -> set[str]:
    if user:  # a copy of the rpmdb where the user can reach it (pytest's directories are root's alone)
        with tempfile.TemporaryDirectory(prefix="rpmdb-user-") as tmp:
            os.chmod(tmp, 0o755)
            shutil.copytree(tree / DB, Path(tmp) / DB)
            return _qa_in(Path(tmp), user=True)
    return _qa_in(tree, user=False)


def _qa_in(tree: Path, user: bool) -> set[str]:
    proc = _rpm_read_only(tree, "-qa", "--qf", "%{NEVRA}\\n", user=user)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def _base_nevras(host: Host) -> set[str]:
    return {p.name.removesuffix(".rpm") for p in host.example_rpms if p.name.startswith("example-")}


def test_layering_reuses_the_base_rpmdb_and_rpm_reads_the_delta(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    new = host.default()
    repo = host.sysroot / "ostree/repo"
    base_db = _file_object(repo, host.base.commit, RPMDB_FILE)
    assert base_db is not None
    assert _file_object(repo, new["checksum"], RPMDB_FILE) == base_db, "the base's rpmdb object is shared"
    assert _file_object(repo, new["checksum"], WAL_FILE) is not None
    assert _file_object(repo, new["checksum"], SHM_FILE) is not None, "a read-only /usr needs the -shm"

    tree = host.deployment_path(new)
    wal = (tree / DB / WAL_FILE).stat().st_size
    assert wal < (tree / DB / RPMDB_FILE).stat().st_size, "the log holds only the changed pages"
    expected = _base_nevras(host) | {"hello-1.2-1.noarch", "hello-data-1.2-1.noarch"}
    assert _qa(tree) == expected
    assert _qa(tree, user=True) == expected, "a user reads it too (the -shm is opened read-only)"
    owner = _rpm_read_only(tree, "-qf", "/usr/bin/hello")
    assert owner.stdout.strip() == "hello-1.2-1.noarch", owner.stderr
    verified = _rpm_read_only(tree, "-V", "--nomtime", "hello")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    copy = tmp_path / "copy"  # a copy, so the tampering never reaches a hardlinked object
    shutil.copytree(tree / "usr", copy / "usr", symlinks=True)
    (copy / "usr/bin/hello").write_text("#!/bin/sh\necho tampered\n")
    tampered = _rpm_read_only(copy, "-V", "--nomtime", "hello")
    assert tampered.returncode != 0
    assert "/usr/bin/hello" in tampered.stdout and "5" in tampered.stdout.split("/usr/bin/hello")[0]

    with TreeRpmdbReader(Repo.open(repo), new["checksum"]) as db:
        assert [h.string(1000) for h in db.named({"hello"})] == ["hello"], "our reader sees the log"
        assert db.owners("/usr/bin/hello")
    assert len(read_headers(Repo.open(repo), new["checksum"])) == len(expected)


def test_a_later_layering_and_a_removal_start_again_from_the_base(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    host.write_origin(["hello", "frob"])
    host.apply_ok()
    repo = host.sysroot / "ostree/repo"
    second = host.default()
    assert _file_object(repo, second["checksum"], RPMDB_FILE) == _file_object(repo, host.base.commit, RPMDB_FILE)
    assert {"hello", "frob", "libfrob"} <= {n.rsplit("-", 2)[0] for n in _qa(host.deployment_path(second))}
    host.write_origin(["frob"])
    host.apply_ok()
    names = {n.rsplit("-", 2)[0] for n in _qa(host.deployment_path(host.default()))}
    assert "frob" in names and "hello" not in names and "hello-data" not in names


def _headers(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in paths]


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_build_rpmdb_leaves_the_base_file_alone(tmp_path: Path, example_rpms: list[Path], journal: str) -> None:
    """rpm-ostree composes bases in rollback-journal mode (`delete`), reconcile compose in WAL mode."""
    base_rpms = [p for p in example_rpms if p.name.startswith("example-")]
    (tmp_path / "base").mkdir()
    # These two leave page 1 (the header) alone: the log must still carry it when the base's says rollback.
    base = build_rpmdb(None, _headers(base_rpms[2:]), [], tmp_path / "base").db
    conn = sqlite3.connect(base, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.close()
    before = base.read_bytes()
    (tmp_path / "new").mkdir()
    built = build_rpmdb((base, None), _headers(base_rpms[1:2]), [], tmp_path / "new")
    assert built.wal is not None and built.shm is not None
    assert built.db.read_bytes() == before or built.db.read_bytes()[100:] == before[100:]
    assert base.read_bytes() == before
    tree = tmp_path / "tree"
    (tree / DB).mkdir(parents=True)
    shutil.copyfile(base, tree / DB / RPMDB_FILE)  # the base's file, byte for byte
    shutil.copyfile(built.wal, tree / DB / WAL_FILE)
    shutil.copyfile(built.shm, tree / DB / SHM_FILE)
    want = {p.name.removesuffix(".rpm") for p in base_rpms[1:]}
    assert _qa(tree) == want
    assert _qa(tree, user=True) == want
    shm = (tree / DB / SHM_FILE).read_bytes()
    proc = subprocess.run(["rpm", "--dbpath", str(tree / DB), "-qa"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and len(proc.stdout.split()) == len(want), proc.stderr
    assert (tree / DB / SHM_FILE).read_bytes() == shm, "root on a writable tree rewrites the -shm to the same bytes"


def test_a_layered_commit_as_base_keeps_its_log_growing(tmp_path: Path, example_rpms: list[Path]) -> None:
    base_rpms = [p for p in example_rpms if p.name.startswith("example-")]
    (tmp_path / "a").mkdir()
    base = build_rpmdb(None, _headers(base_rpms[2:]), [], tmp_path / "a").db
    (tmp_path / "b").mkdir()
    first = build_rpmdb((base, None), _headers(base_rpms[1:2]), [], tmp_path / "b")
    assert first.wal is not None
    (tmp_path / "c").mkdir()
    second = build_rpmdb((base, first.wal), _headers(base_rpms[:1]), [], tmp_path / "c")
    assert second.wal is not None and second.shm is not None
    tree = tmp_path / "tree"
    (tree / DB).mkdir(parents=True)
    shutil.copyfile(base, tree / DB / RPMDB_FILE)
    shutil.copyfile(second.wal, tree / DB / WAL_FILE)
    shutil.copyfile(second.shm, tree / DB / SHM_FILE)
    assert _qa(tree) == {p.name.removesuffix(".rpm") for p in base_rpms}


def test_rpm_writing_the_database_file_falls_back_to_a_whole_one(tmp_path: Path, example_rpms: list[Path]) -> None:
    """Without the checkpoint guard rpm folds its changes into the copy: the result is then a whole database."""
    base_rpms = [p for p in example_rpms if p.name.startswith("example-")]
    (tmp_path / "a").mkdir()
    base = build_rpmdb(None, _headers(base_rpms[1:]), [], tmp_path / "a").db

    class NoGuard(rpmdb._NoCheckpoint):
        def __enter__(self) -> rpmdb._NoCheckpoint:
            st = self.db.stat()
            self._before = (st.st_size, st.st_mtime_ns)
            return self

    saved = rpmdb._NoCheckpoint
    rpmdb._NoCheckpoint = NoGuard  # type: ignore[misc]
    try:
        (tmp_path / "b").mkdir()
        built = build_rpmdb((base, None), _headers(base_rpms[:1]), [], tmp_path / "b")
    finally:
        rpmdb._NoCheckpoint = saved  # type: ignore[misc]
    assert built.wal is None
    tree = tmp_path / "tree"
    (tree / DB).mkdir(parents=True)
    shutil.copyfile(built.db, tree / DB / RPMDB_FILE)
    assert _qa(tree) == {p.name.removesuffix(".rpm") for p in base_rpms}

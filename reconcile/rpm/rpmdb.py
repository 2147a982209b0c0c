"""The rpmdb inside a tree: read the base's packages from a commit without a checkout, and write a new
database for base + layered packages with rpm itself (`--justdb`), so `rpm -qa` works in the deployment."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.ostree import Repo
from reconcile.process import run
from reconcile.rpm.header import Header, HeaderError, header_from_blob

# Where trees keep their rpmdb, in the order we look (rpm-ostree uses usr/share/rpm).
RPMDB_DIRS = ("usr/share/rpm", "usr/lib/sysimage/rpm")
RPMDB_FILE = "rpmdb.sqlite"
DEFAULT_RPMDB_DIR = "usr/share/rpm"


@dataclass(frozen=True)
class TreeRpmdb:
    """Where a commit keeps its rpmdb, and the content object of the database file."""

    directory: str
    file_checksum: str


def find_rpmdb(repo: Repo, commit: str) -> TreeRpmdb | None:
    for directory in RPMDB_DIRS:
        found = repo.lookup_path(commit, f"{directory}/{RPMDB_FILE}")
        if found and found[0] == "file":
            return TreeRpmdb(directory, found[1])
        legacy = repo.lookup_path(commit, f"{directory}/Packages")
        if legacy:
            raise ReconcileError(
                f"The rpmdb of commit {commit[:12]} at /{directory} is in the Berkeley DB format; "
                "only sqlite rpmdbs are supported."
            )
    return None


def read_headers(repo: Repo, commit: str) -> list[Header]:
    """Every package header in the commit's rpmdb (empty when the tree has none)."""
    db = find_rpmdb(repo, commit)
    if db is None:
        return []
    path = repo.content_path(db.file_checksum)
    if path is not None:
        return _read_sqlite(path, commit)
    with tempfile.NamedTemporaryFile(prefix="rpmdb-", suffix=".sqlite") as tmp:
        tmp.write(repo.read_bytes(db.file_checksum, limit=1 << 32))
        tmp.flush()
        return _read_sqlite(Path(tmp.name), commit)


def _read_sqlite(path: Path, commit: str) -> list[Header]:
    # immutable=1: the object is read-only and must never grow -wal/-shm files next to it.
    uri = f"file:{path}?mode=ro&immutable=1"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            rows = conn.execute("SELECT blob FROM Packages ORDER BY hnum").fetchall()
    except sqlite3.Error as e:
        raise ReconcileError(f"Cannot read the rpmdb of commit {commit[:12]}: {e}.") from None
    headers = []
    for (blob,) in rows:
        try:
            headers.append(header_from_blob(blob))
        except HeaderError as e:
            raise ReconcileError(f"The rpmdb of commit {commit[:12]} holds a damaged header: {e}.") from None
    return headers


_RPM_COMMON = ["--define", "_db_backend sqlite", "--nodeps", "--noscripts", "--notriggers"]


def build_rpmdb(
    base_db: Path | None, package_headers: list[tuple[str, bytes]], erase: list[str], workdir: Path
) -> Path:
    """Write an rpmdb: the base database, minus `erase` (NEVRAs), plus `package_headers` ((name, raw)).

    rpm reads header-only files (lead + signature + header) fine with payload verification off: nothing but
    the header goes in the database.
    """
    dbdir = workdir / "rpmdb"
    dbdir.mkdir()
    env = dict(os.environ, LC_ALL="C")
    if base_db is not None:
        with open(base_db, "rb") as src, open(dbdir / RPMDB_FILE, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    else:
        run(["rpm", "--dbpath", str(dbdir), "--define", "_db_backend sqlite", "--initdb"], "Creating an empty rpmdb")
    if erase:
        argv = ["rpm", "--dbpath", str(dbdir), *_RPM_COMMON, "--justdb", "--erase", "--allmatches", *erase]
        run(argv, "Removing packages from the rpmdb", env=env)
    if package_headers:
        hdrdir = workdir / "headers"
        hdrdir.mkdir()
        files = []
        for i, (name, raw) in enumerate(package_headers):
            f = hdrdir / f"{i:05d}-{name}.rpm"
            f.write_bytes(raw)
            files.append(str(f))
        argv = [
            "rpm",
            "--dbpath",
            str(dbdir),
            *_RPM_COMMON,
            "--define",
            "_pkgverify_level none",
            "--nodigest",
            "--nosignature",
            "--justdb",
            "--install",
            "--ignorearch",
            "--ignoreos",
            "--ignoresize",
            "--replacefiles",
            "--replacepkgs",
            *files,
        ]
        run(argv, "Writing the rpmdb", env=env)
    db = dbdir / RPMDB_FILE
    if not db.exists():
        raise ReconcileError(f"rpm did not write {db}.")
    return db

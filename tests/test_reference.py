"""The proof of payload fidelity: a layered deployment equals what `rpm -i` installs on a copy of the base.

For every fixture package, the deployment is compared with a reference root made by
`rpm --root REF --dbpath /usr/share/rpm -i --nodeps --noscripts`, file by file: type, mode, uid/gid, link
target, content digest, hard-link groups and the capability xattr, modulo the documented path rules:
`/etc` -> `/usr/etc`, `/opt/X` -> `/usr/lib/opt/X`, `/boot` -> `/usr/lib/ostree-boot`, and `/var`//run` as
tmpfiles.d entries (regular files in /usr/share/factory). Directories the base already has keep the base's
metadata by design, and OSTree may hard-link identical files that rpm keeps apart, so only rpm's own link
groups are required to survive.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import ComposedBase, Host
from support import Dir, File, Hardlink, Package, Symlink, ostree, rpm_query
from test_payload import FIDELITY

from reconcile.rpm import header as h

EDGES = Package(
    "edges",
    files=(
        File("/usr/libexec/edges/suid", "s\n", mode=0o4750, group="daemon"),
        File("/usr/libexec/edges/caps", "c\n", mode=0o755, caps="cap_sys_time=ep"),
        Dir("/usr/share/edges", mode=0o2775, group="games"),
        Dir("/usr/share/edges/private", mode=0o700, user="daemon", group="daemon"),
        File("/usr/share/edges/a", "linked twice\n"),
        Hardlink("/usr/share/edges/b", "/usr/share/edges/a"),
        Hardlink("/usr/share/edges/private/c", "/usr/share/edges/a"),
        Symlink("/usr/share/edges/abs", "/usr/share/edges/a"),
        Symlink("/usr/share/edges/dangling", "../nowhere"),
        File("/usr/share/edges/ünïcödé name", "unicode\n"),
        File("/usr/share/edges/zero", ""),
        File("/etc/edges/edges.conf", "conf\n", mode=0o600, config=True),
        Dir("/etc/edges", mode=0o750, group="daemon"),
        Dir("/var/lib/edges", mode=0o1770, user="daemon", group="games"),
        File("/var/lib/edges/seed", "seed\n", mode=0o640, user="daemon"),
        Symlink("/var/lib/edges/current", "seed"),
        Dir("/run/edges", mode=0o755, user="daemon"),
        File("/opt/edges/bin/tool", "#!/bin/sh\n", mode=0o755),
        File("/boot/edges.img", "boot\n"),
        File("/var/log/edges.log", ghost=True),
    ),
)


def entry(path: Path) -> tuple:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        extra = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        extra = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        extra = ""
    try:
        caps = os.getxattr(path, "security.capability", follow_symlinks=False).hex()
    except OSError:
        caps = ""
    return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra, caps


def tmpfiles(tree: Path) -> dict[str, list[str]]:
    lines = {}
    for conf in (tree / "usr/lib/tmpfiles.d").glob("reconcile-pkg-*.conf"):
        for line in conf.read_text().splitlines():
            if line and not line.startswith("#"):
                kind, path, *rest = shlex.split(line)
                lines.setdefault(path, []).append(" ".join([kind, *rest]))
    return lines


def reference_root(base: ComposedBase, rpms: list[Path], dest: Path, scripts: bool = False) -> Path:
    ostree(f"--repo={base.repo}", "checkout", "--force-copy", base.commit, dest)
    for path, lines in tmpfiles(dest).items():  # what systemd-tmpfiles would have made at boot (/var/opt, ...)
        if any(line.startswith("d ") for line in lines):
            (dest / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (dest / "etc").mkdir(exist_ok=True)
    for name in ("passwd", "group"):  # rpm resolves owners through the root's /etc
        (dest / "etc" / name).write_bytes((dest / "usr/etc" / name).read_bytes())
    quiet = [] if scripts else ["--noscripts", "--notriggers"]
    subprocess.run(
        ["rpm", "--root", str(dest), "--dbpath", "/usr/share/rpm", "-i", "--nodeps", *quiet] + [str(r) for r in rpms],
        check=True,
        capture_output=True,
    )
    return dest


def compare(pkg_rpm: Path, ref: Path, tree: Path, base_dirs: set[str]) -> list[str]:
    with open(pkg_rpm, "rb") as f:
        files = [fe for fe in h.file_entries(h.read_rpm_headers(f).header) if not fe.is_ghost]
    var = tmpfiles(tree)
    problems = []
    inodes: dict[int, set[int]] = {}
    for fe in files:
        want = entry(ref / fe.path.lstrip("/"))
        top = fe.path.split("/")[1]
        if top in ("var", "run") and fe.path.count("/") > 1:
            problems += _compare_var(fe.path, want, var.get(fe.path, []), tree)
            continue
        moved = {"etc": "usr/etc", "boot": "usr/lib/ostree-boot"} | (
            {"opt": "usr/lib/opt"} if fe.path.count("/") > 1 else {}
        )
        rel = moved.get(top, top)
        deployed = tree / rel / "/".join(fe.path.split("/")[2:])
        if stat.S_ISDIR(fe.mode) and fe.path in base_dirs:
            continue  # the base's own directories keep the base's metadata
        got = entry(deployed)
        if got != want:
            problems.append(f"{fe.path}: rpm gives {want}, the deployment {got}")
        if stat.S_ISREG(fe.mode):
            inodes.setdefault(os.lstat(ref / fe.path.lstrip("/")).st_ino, set()).add(os.lstat(deployed).st_ino)
    problems += [f"a hard-link group of rpm's is split: {group}" for group in inodes.values() if len(group) > 1]
    return problems


def _compare_var(path: str, want: tuple, lines: list[str], tree: Path) -> list[str]:
    kind, mode, uid, gid, extra, _caps = want
    users = {0: "root", 1: "bin", 2: "daemon"}
    groups = {0: "root", 1: "bin", 2: "daemon", 20: "games", 100: "users"}
    owner = f"{users.get(uid, uid)} {groups.get(gid, gid)}"
    if kind == stat.S_IFDIR:
        expected = [f"d {mode:04o} {owner} - -"]
    elif kind == stat.S_IFLNK:
        expected = [f"L - - - - {extra}"]
    elif extra == hashlib.sha256(b"").hexdigest():
        expected = [f"f {mode:04o} {owner} - -"]
    else:
        factory = tree / "usr/share/factory" / path.lstrip("/")
        if hashlib.sha256(factory.read_bytes()).hexdigest() != extra:
            return [f"{path}: the factory copy differs from rpm's file"]
        expected = [f"C - - - - /usr/share/factory{path}", f"z {mode:04o} {owner} - -"]
    return [] if sorted(lines) == sorted(expected) else [f"{path}: tmpfiles.d says {lines}, rpm gives {expected}"]


def base_directories(tree: Path) -> set[str]:
    out = rpm_query(tree, "-qa", "--qf", "[%{FILENAMES} %{FILEMODES:perms}\n]")
    return {line.split()[0] for line in out.splitlines() if line.split()[-1].startswith("d")}


@pytest.mark.parametrize("which", ["examples", "edge-cases"])
def test_layered_tree_equals_rpm_install(which: str, host: Host, tmp_path: Path) -> None:
    base_dirs = base_directories(host.deployment_path(host.default()))
    if which == "examples":
        host.publish([])
        requested = ["hello", "frob"]
        rpms = [p for p in host.example_rpms if p.name.startswith(("hello", "frob-3", "frob-data-2", "libfrob"))]
    else:
        host.publish([EDGES, FIDELITY])
        requested = ["edges", "fidelity"]
        rpms = [host.rpms.build(EDGES), host.rpms.build(FIDELITY)]
    host.write_origin(requested)
    host.apply_ok()
    tree = host.deployment_path(host.default())
    ref = reference_root(host.base, rpms, tmp_path / "ref")
    problems = [p for rpm in rpms for p in compare(rpm, ref, tree, base_dirs)]
    assert not problems, "\n".join(problems)


def test_composed_base_equals_rpm_install(host: Host, tmp_path: Path) -> None:
    """compose uses the same import: the base equals rpm -i of its packages into an empty root."""
    rpms = [p for p in host.example_rpms if p.name.startswith("example-")]
    ref = tmp_path / "ref"
    (ref / "etc").mkdir(parents=True)
    tree = host.deployment_path(host.default())
    for name in ("passwd", "group"):
        (ref / "etc" / name).write_bytes((tree / "usr/etc" / name).read_bytes())
    subprocess.run(
        ["rpm", "--root", str(ref), "--dbpath", "/usr/share/rpm", "-i", "--nodeps", "--noscripts", "--replacefiles"]
        + [str(r) for r in rpms],
        check=True,
        capture_output=True,
    )
    problems = [p for rpm in rpms for p in compare(rpm, ref, tree, set())]
    assert not problems, "\n".join(problems)

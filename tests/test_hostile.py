"""Hostile and broken RPMs, crafted from real ones: each is refused with a clear error, and leaves nothing
outside the repo, no package-cache ref and no deployment."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rpmforge
from conftest import ComposedBase, Host, hosted
from support import File, Package, RpmFactory, Symlink, exampleos

HOSTILE = Package(
    "hostile",
    files=(
        File("/usr/share/hostile/abcdefghijk/evil", "evil\n"),
        Symlink("/usr/share/hostile/lnk", "/etc"),
        File("/usr/share/hostile/xyz/passwd", "pwned\n"),
        File("/usr/share/hostile/bbb", "b\n"),
        File("/usr/share/hostile/content", "hello\n"),
    ),
)
ESCAPE = b"./usr/share/hostile/abcdefghijk/evil"


def special_spec(kind: str) -> str:
    make = "mknod -m 0600 %{buildroot}/usr/share/special/node c 1 3" if kind == "dev" else ""
    make = "mkfifo %{buildroot}/usr/share/special/node" if kind == "fifo" else make
    listed = "%dev(c, 1, 3) /usr/share/special/node" if kind == "dev" else "/usr/share/special/node"
    return f"""Name: special-{kind}
Version: 1.0
Release: 1
Summary: a package with a special file
License: MIT
BuildArch: noarch
AutoReqProv: no
%global __os_install_post %{{nil}}
%description
special
%install
mkdir -p %{{buildroot}}/usr/share/special
{make}
%files
{listed}
"""


# name -> (craft(original rpm, destination) -> crafted rpm, the command that refuses it, words of the error)
Craft = Callable[[Path, Path], Path]
CASES: dict[str, tuple[Craft, str, list[str]]] = {
    "truncated-payload": (lambda s, d: rpmforge.truncate(s, d, 60), "apply", ["damaged or truncated"]),
    "header-digest": (
        lambda s, d: rpmforge.rewrite(s, d, header=[(b"test package", b"Test package")], fix_header_digest=False),
        "plan",
        ["SHA-256 digest does not match"],
    ),
    "payload-digest": (
        lambda s, d: rpmforge.rewrite(s, d, payload=[(b"hello\n", b"jello\n")], fix_payload_digest=False),
        "apply",
        ["payload digest does not match"],
    ),
    "dotdot-in-header": (
        lambda s, d: rpmforge.rewrite(
            s, d, header=[(b"abcdefghijk/", b"../../../../")], payload=[(b"abcdefghijk/", b"../../../../")]
        ),
        "plan",
        ["/usr/share/hostile/../../../../evil", "outside the paths"],
    ),
    "dotdot-in-payload": (
        lambda s, d: rpmforge.rewrite(s, d, payload=[(b"abcdefghijk/", b"../../../../")]),
        "apply",
        ["unsafe path", "../../../../evil"],
    ),
    "absolute-escape": (
        lambda s, d: rpmforge.rewrite(s, d, payload=[(ESCAPE, b"//" + b"../" * 10 + b"evil")]),
        "apply",
        ["unsafe path"],
    ),
    "write-through-planted-symlink": (
        lambda s, d: rpmforge.rewrite(s, d, header=[(b"/xyz/", b"/lnk/")], payload=[(b"/xyz/passwd", b"/lnk/passwd")]),
        "apply",
        ["/usr/share/hostile/lnk/passwd", "planted symlink"],
    ),
    "payload-disagrees-with-header": (
        lambda s, d: rpmforge.rewrite(s, d, payload=[(b"hostile/bbb\0", b"hostile/ccc\0")]),
        "apply",
        ["/usr/share/hostile/ccc", "header does not list"],
    ),
    "absurd-tag-count": (
        lambda s, d: rpmforge.set_header_counts(s, d, 0x00FFFFFF),
        "plan",
        ["declares 16777215 tags"],
    ),
}


def nothing_escaped(host: Host) -> None:
    objects = host.sysroot / "ostree" / "repo" / "objects"
    for path in host.root.rglob("*"):
        if objects in path.parents or path.is_symlink() or not path.is_file():
            continue
        assert path.name not in ("evil",), path
    assert not Path("/evil").exists()


def refuse_local(host: Host, crafted: Path, command: str, needles: list[str]) -> None:
    host.publish([])
    host.write_origin([], extra=f'local = ["{crafted}"]\n')
    before = host.state()
    result = host.run(command)
    assert result.code == 1, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    if command == "plan":
        assert host.run("apply").code == 1
    assert host.state() == before, "no deployment, no ref (package cache included), origin unchanged"
    nothing_escaped(host)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_rpm_is_refused(host: Host, tmp_path: Path, case: tuple[Craft, str, list[str]]) -> None:
    craft, command, needles = case
    crafted = craft(host.rpms.build(HOSTILE), tmp_path / "hostile-1.0-1.noarch.rpm")
    refuse_local(host, crafted, command, needles)


@pytest.mark.parametrize("kind", ["dev", "fifo"])
def test_device_nodes_and_fifos_are_refused(host: Host, kind: str) -> None:
    rpm = host.rpms.build_spec(f"special-{kind}", special_spec(kind))
    what = "a character device" if kind == "dev" else "a FIFO"
    refuse_local(host, rpm, "plan", ["/usr/share/special/node", what, "cannot hold"])


def test_the_crafted_rpm_is_valid_without_the_defect(host: Host, tmp_path: Path) -> None:
    """The forge itself changes nothing else: a rewrite with no defect layers fine."""
    crafted = rpmforge.rewrite(host.rpms.build(HOSTILE), tmp_path / "hostile.rpm", payload=[(b"hello\n", b"jello\n")])
    host.publish([])
    host.write_origin([], extra=f'local = ["{crafted}"]\n')
    host.apply_ok()
    assert (host.deployment_path(host.default()) / "usr/share/hostile/content").read_text() == "jello\n"


def test_hostile_rpm_from_a_repo(host: Host, tmp_path: Path) -> None:
    """Through an rpm-md repo too (the repodata checksum matches the crafted file, so the RPM's own checks
    must catch it)."""
    crafted = rpmforge.rewrite(
        host.rpms.build(HOSTILE),
        tmp_path / "hostile-1.0-1.noarch.rpm",
        header=[(b"/xyz/", b"/lnk/")],
        payload=[(b"/xyz/passwd", b"/lnk/passwd")],
    )
    repo = host.publish([])
    exampleos.make_repo([crafted], repo)
    host.write_origin(["hostile"])
    before = host.state()
    result = host.run("apply")
    assert result.code == 1 and "/usr/share/hostile/lnk/passwd" in result.stderr, result.stderr
    assert host.state() == before
    nothing_escaped(host)


def _spec(name: str, install: str, files: str) -> str:
    return f"""Name: {name}
Version: 1.0
Release: 1
Summary: a hostile package
License: MIT
BuildArch: noarch
AutoReqProv: no
%global __os_install_post %{{nil}}
%description
hostile
%install
{install}
%files
{files}
"""


@pytest.fixture
def small_host(tmp_path: Path, base: ComposedBase, rpms: RpmFactory, example_rpms: list[Path]) -> Iterator[Host]:
    """A host whose sysroot (and so its repo) lives on a 200 MiB filesystem of its own."""
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "reconcile-test-small", str(root)], check=True)
    try:
        with hosted(root, base, rpms, example_rpms) as h:
            yield h
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_a_decompression_bomb_is_refused_before_anything_is_written(small_host: Host) -> None:
    """A package of a few kB that unpacks to 1 GiB of zeros, against a repo with 200 MiB: refused with both
    figures, nothing written, the disk as free as before."""
    host = small_host
    bomb = host.rpms.build_spec(
        "bomb",
        _spec(
            "bomb",
            "mkdir -p %{buildroot}/usr/share/bomb\ntruncate -s 1G %{buildroot}/usr/share/bomb/zeros",
            "/usr/share/bomb/zeros",
        ),
    )
    assert bomb.stat().st_size < 10 * 1048576, "the test needs a small package that unpacks big"
    host.publish([])
    host.write_origin([], extra=f'local = ["{bomb}"]\n')
    free = os.statvfs(host.sysroot).f_bavail
    before = host.state()
    result = host.run("apply")
    assert result.code == 1, result.stderr
    assert "bomb-1.0-1.noarch" in result.stderr and "unpack to 1024 MiB" in result.stderr, result.stderr
    assert f"the filesystem of {host.sysroot / 'ostree' / 'repo'} has" in result.stderr
    assert "Traceback" not in result.stderr
    assert host.state() == before
    assert os.statvfs(host.sysroot).f_bavail >= free - 256, "nothing was written (a few blocks of cache aside)"


LONG = "n" * 200  # a name rpm accepts; with the version, release and arch over the 255 bytes of a file name


def test_over_long_names_are_layered(host: Host) -> None:
    """A package name of 200 characters (its package-cache ref and rpmdb entry included) and a file name of
    255 bytes, the most a filesystem allows: nothing in reconcile shortens, hashes or chokes on them."""
    leaf = "f" * 255
    rpm = host.rpms.build_spec(
        LONG,
        _spec(
            LONG,
            f"mkdir -p %{{buildroot}}/usr/share/long\necho x > %{{buildroot}}/usr/share/long/{leaf}",
            f"/usr/share/long/{leaf}",
        ),
    )
    host.publish([])
    host.write_origin([], extra=f'local = ["{rpm}"]\n')
    host.apply_ok()
    tree = host.deployment_path(host.default())
    assert (tree / "usr/share/long" / leaf).read_text() == "x\n"
    assert any(p.startswith(LONG) for p in host.default()["reconcile"]["layered_packages"]), host.default()

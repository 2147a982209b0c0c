"""Hostile and broken RPMs, crafted from real ones: each is refused with a clear error, and leaves nothing
outside the repo, no package-cache ref and no deployment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import rpmforge
from conftest import Host
from support import File, Package, Symlink, exampleos

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

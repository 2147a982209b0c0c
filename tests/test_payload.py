"""What lands in the deployment is what the package says: modes, owners, links and the OSTree path rules."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import Host
from support import Dir, File, Hardlink, Package, Symlink, rpm_query

BIG = bytes(range(256)) * 8192  # 2 MiB: streamed, not inlined

FIDELITY = Package(
    "fidelity",
    files=(
        File("/usr/bin/suidtool", "#!/bin/sh\n", mode=0o4755),
        File("/usr/bin/sgidtool", "#!/bin/sh\n", mode=0o2755, group="games"),
        File("/usr/bin/pinger", "#!/bin/sh\n", mode=0o755, caps="cap_net_raw,cap_net_admin=ep"),
        Dir("/usr/share/fid", mode=0o750, user="daemon", group="games"),
        Dir("/usr/share/fid/sticky", mode=0o1777),
        File("/usr/share/fid/owned", "secret\n", mode=0o640, user="daemon", group="games"),
        File("/usr/share/fid/empty", ""),
        File("/usr/share/fid/big.bin", BIG),
        Symlink("/usr/share/fid/rel", "owned"),
        Symlink("/usr/share/fid/abs", "/usr/share/fid/owned"),
        File("/usr/share/fid/h1", "linked\n", mode=0o600),
        Hardlink("/usr/share/fid/h2", "/usr/share/fid/h1"),
        File("/usr/share/fid/with space", "spaced\n"),
        File("/usr/share/fid/naïve-ünïcode", "utf8\n"),
        File("/etc/fid.conf", "setting=1\n", config=True),
        Dir("/var/lib/fid", mode=0o750, user="daemon", group="daemon"),
        File("/var/lib/fid/state", "initial\n", mode=0o600, user="daemon"),
        File("/var/lib/fid/empty-state", "", mode=0o644),
        Symlink("/var/lib/fid/current", "state"),
        File("/opt/fid/bin/fidctl", "#!/bin/sh\n", mode=0o755),
        File("/var/log/fid.log", ghost=True),
    ),
)


# A base package keeping system accounts nss-altfiles style, in /usr/lib.
ALTFILES = Package(
    "example-altfiles",
    files=(
        File("/usr/lib/passwd", "altuser:x:777:777::/:/sbin/nologin\n"),
        File("/usr/lib/group", "altgroup:x:778:\n"),
    ),
)


@pytest.fixture
def tree(host: Host) -> Path:
    host.publish([FIDELITY])
    host.write_origin(["fidelity"])
    host.apply_ok()
    return host.deployment_path(host.default())


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def test_modes_and_owners(tree: Path) -> None:
    assert mode(tree / "usr/bin/suidtool") == 0o4755
    assert mode(tree / "usr/bin/sgidtool") == 0o2755
    assert owner(tree / "usr/bin/sgidtool") == (0, 20)
    assert mode(tree / "usr/share/fid") == 0o750
    assert owner(tree / "usr/share/fid") == (2, 20)
    assert mode(tree / "usr/share/fid/sticky") == 0o1777
    assert mode(tree / "usr/share/fid/owned") == 0o640
    assert owner(tree / "usr/share/fid/owned") == (2, 20)


def test_base_directories_keep_the_base_metadata(tree: Path) -> None:
    assert mode(tree / "usr") == 0o755 and owner(tree / "usr") == (0, 0)
    assert mode(tree / "usr/share") == 0o755


def test_file_capabilities(tree: Path, tmp_path: Path) -> None:
    reference = tmp_path / "setcap-probe"
    reference.write_bytes(b"")
    subprocess.run(["setcap", "cap_net_raw,cap_net_admin=ep", str(reference)], check=True)
    assert os.getxattr(tree / "usr/bin/pinger", "security.capability") == os.getxattr(reference, "security.capability")


def test_contents_and_links(tree: Path) -> None:
    fid = tree / "usr/share/fid"
    assert (fid / "empty").read_bytes() == b""
    assert (fid / "big.bin").read_bytes() == BIG
    assert os.readlink(fid / "rel") == "owned"
    assert os.readlink(fid / "abs") == "/usr/share/fid/owned"
    assert os.lstat(fid / "h1").st_ino == os.lstat(fid / "h2").st_ino
    assert (fid / "h2").read_text() == "linked\n" and mode(fid / "h2") == 0o600
    assert (fid / "with space").read_text() == "spaced\n"
    assert (fid / "naïve-ünïcode").read_text() == "utf8\n"


def test_path_rules(tree: Path) -> None:
    assert (tree / "usr/etc/fid.conf").read_text() == "setting=1\n"
    assert (tree / "usr/lib/opt/fid/bin/fidctl").exists()
    assert not (tree / "var/lib/fid").exists(), "/var content is not deployed from the tree"
    assert (tree / "usr/share/factory/var/lib/fid/state").read_text() == "initial\n"
    tmpfiles = (tree / "usr/lib/tmpfiles.d/reconcile-pkg-fidelity.conf").read_text().splitlines()
    assert tmpfiles[0].startswith("#")
    assert set(tmpfiles[1:]) == {
        "d /var/lib/fid 0750 daemon daemon - -",
        "C /var/lib/fid/state - - - - /usr/share/factory/var/lib/fid/state",
        "z /var/lib/fid/state 0600 daemon root - -",
        "f /var/lib/fid/empty-state 0644 root root - -",
        "L /var/lib/fid/current - - - - state",
        "L /opt/fid - - - - /usr/lib/opt/fid",
    }
    assert not any("fid.log" in line for line in tmpfiles), "%ghost files are not created"


def test_ghost_and_config_files_are_in_the_rpmdb(tree: Path) -> None:
    out = rpm_query(tree, "-ql", "fidelity").split("\n")
    assert "/var/log/fid.log" in out and "/etc/fid.conf" in out


def test_unknown_owner_fails_the_plan(host: Host) -> None:
    pkg = Package("stranger", files=(File("/usr/share/stranger", "x", user="nosuchuser"),))
    host.publish([pkg])
    host.write_origin(["stranger"])
    before = host.state()
    plan = host.run("plan")
    assert plan.code == 1, "found before anything is downloaded or built"
    assert (
        "error: stranger-1.0-1.noarch: /usr/share/stranger is owned by the user 'nosuchuser', "
        "which the base's passwd does not define." in plan.stderr
    )
    assert host.run("apply").code == 1
    assert host.state() == before


def test_base_directories_keep_their_metadata_even_if_a_package_owns_them(host: Host) -> None:
    pkg = Package("greedy", files=(Dir("/usr", mode=0o700), Dir("/usr/share", mode=0o777, user="daemon")))
    host.publish([pkg])
    host.write_origin(["greedy"])
    host.apply_ok()
    tree = host.deployment_path(host.default())
    assert (mode(tree / "usr"), owner(tree / "usr")) == (0o755, (0, 0))
    assert (mode(tree / "usr/share"), owner(tree / "usr/share")) == (0o755, (0, 0))


def test_owners_from_nss_altfiles(host: Host) -> None:
    """A base keeping system users in /usr/lib/passwd (nss-altfiles): layered files map through it."""
    owned = Package("altowned", files=(File("/usr/share/altowned", "x", user="altuser", group="altgroup"),))
    host.add_base("alt", [ALTFILES])
    host.publish([owned])
    host.write_origin(["altowned"], base="example/alt")
    host.apply_ok()
    assert owner(host.deployment_path(host.default()) / "usr/share/altowned") == (777, 778)


def test_paths_outside_the_ostree_layout_are_refused(host: Host) -> None:
    pkg = Package("outsider", files=(File("/srv/data/file", "x"),))
    host.publish([pkg])
    host.write_origin(["outsider"])
    before = host.state()
    plan = host.run("plan", "--json")
    assert plan.code == 1, "a plan with errors is printed, and exits 1"
    doc = plan.json()
    assert doc["applyable"] is False
    assert doc["checks"] == [
        {
            "kind": "forbidden-path",
            "severity": "error",
            "package": "outsider-1.0-1.noarch",
            "message": "outsider-1.0-1.noarch ships /srv/data/file, outside the paths an OSTree deployment can take.",
        }
    ]
    result = host.run("apply")
    assert result.code == 1
    assert "/srv/data/file" in result.stderr and "outsider" in result.stderr
    assert host.state() == before

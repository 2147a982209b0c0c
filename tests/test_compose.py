"""`reconcile compose` builds a deployable base from RPMs with the layering machinery."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ComposedBase
from support import exampleos, ostree


def assert_empty_boot(repo: Path, commit: str) -> None:
    """/boot is the boot partition's mount point: an empty 0755 directory in the commit."""
    listing = ostree(f"--repo={repo}", "ls", commit, "/boot").splitlines()
    assert [line.split()[:3] + line.split()[4:] for line in listing] == [["d00755", "0", "0", "/boot"]], listing


def test_compose_writes_a_bootable_commit_with_an_rpmdb(
    base: ComposedBase, example_rpms: list[Path], tmp_path: Path
) -> None:
    repo = base.repo
    assert "mode=bare" in (repo / "config").read_text().replace(" ", "")
    pkglist = ostree(f"--repo={repo}", "show", "--print-metadata-key=rpmostree.rpmdb.pkglist", base.commit)
    for name in exampleos.BASE_PACKAGES:
        assert f"'{name}'" in pkglist
    assert "'6.1.0-example'" in ostree(f"--repo={repo}", "show", "--print-metadata-key=ostree.linux", base.commit)

    checkout = tmp_path / "co"
    ostree(f"--repo={repo}", "checkout", "-H", base.commit, checkout)
    qa = subprocess.run(
        ["rpm", "--dbpath", str(checkout / "usr/share/rpm"), "-qa", "--qf", "%{NAME}\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(qa) == sorted(exampleos.BASE_PACKAGES)
    assert os.readlink(checkout / "usr/lib/sysimage/rpm") == "../../share/rpm", "rpm's default dbpath finds it"
    fedora_default = subprocess.run(
        ["rpm", "--root", str(checkout), "--dbpath", "/usr/lib/sysimage/rpm", "-qa"], capture_output=True, text=True
    )
    assert len(fedora_default.stdout.split()) == len(exampleos.BASE_PACKAGES)
    assert (checkout / "usr/lib/modules/6.1.0-example/vmlinuz").exists()
    assert (checkout / "usr/lib/os-release").exists()
    assert (checkout / "usr/etc/passwd").read_text().startswith("root:")
    assert (checkout / "bin").is_symlink() and (checkout / "usr/bin/sh").is_symlink()
    assert oct((checkout / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert_empty_boot(repo, base.commit)
    fsck = ostree("fsck", f"--repo={repo}")
    assert "no errors found" in fsck
    subprocess.run(["chattr", "-R", "-i", str(checkout)], check=False, capture_output=True)

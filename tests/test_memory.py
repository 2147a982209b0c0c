"""Importing streams: a 5,000-file package with a 64 MiB file costs about as much memory as a tiny one."""

from __future__ import annotations

import resource
import subprocess

from conftest import Host
from support import RECONCILE, Package, exampleos

MANY_SPEC = """Name: many
Version: 1.0
Release: 1
Summary: 5,000 files and a 64 MiB one
License: MIT
BuildArch: noarch
AutoReqProv: no
%global __os_install_post %{nil}
%global _binary_payload w1.gzdio
%description
big
%install
mkdir -p %{buildroot}/usr/share/many
cd %{buildroot}/usr/share/many
for i in $(seq 1 5000); do echo "file $i" > "f$i"; done
head -c 67108864 /dev/zero > big.bin
%files
/usr/share/many
"""


def peak_rss_of(argv: list[str]) -> int:
    """Peak resident memory (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(argv, capture_output=True, text=True, env=exampleos.sysroot_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert after >= before
    return after


def test_import_memory_is_flat(host: Host) -> None:
    big = host.rpms.build_spec("many", MANY_SPEC)
    host.publish([Package("tiny")], examples=True)
    exampleos.make_repo([big], host.rpm_repo)
    common = [RECONCILE, "apply", "--yes", "--sysroot", str(host.sysroot), "--origin", str(host.origin)]
    common += ["--reposdir", str(host.reposdir)]
    host.write_origin(["tiny"])
    # ru_maxrss of children is a running maximum: measure the small import first, in this same run.
    small = peak_rss_of(common)
    host.write_origin(["tiny", "many"])
    large = peak_rss_of(common)
    tree = host.deployment_path(host.default())
    assert (tree / "usr/share/many/big.bin").stat().st_size == 64 << 20
    assert len(list((tree / "usr/share/many").iterdir())) == 5001
    assert large - small < 32 * 1024, f"importing grew peak memory from {small} KiB to {large} KiB"

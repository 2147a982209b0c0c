"""Importing streams: a 5,000-file package with a 64 MiB file costs little more memory than a tiny one.

Each figure is reconcile's own peak (VmHWM at its exit, benchmarks/peaks.py), not wait4's ru_maxrss: that
one also holds pytest's own peak (the child's vfork shares pytest's memory until exec) and the largest
child's, so both runs read pytest's size and their difference could not fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Host
from support import RECONCILE, Package, exampleos

from benchmarks.peaks import TreePeaks, tree_peaks

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
BIG_FILE_MIB = 64
GROWTH_MAX_MIB = 16  # what importing may add (10 here): queueing every small file costs 20, the 64 MiB file whole 190
PEAK_MAX_MIB = 150  # issue 17's P5 bound, on the small repo here


def peaks_of(argv: list[str], tmp: Path) -> TreePeaks:
    with open(tmp / "stderr", "wb") as err:
        peaks = tree_peaks(argv, stdout=subprocess.DEVNULL, stderr=err, env=exampleos.sysroot_env())
    assert peaks.returncode == 0, (tmp / "stderr").read_text()
    return peaks


def test_import_memory_is_flat(host: Host) -> None:
    big = host.rpms.build_spec("many", MANY_SPEC)
    host.publish([Package("tiny")], examples=True)
    exampleos.make_repo([big], host.rpm_repo)
    common = [RECONCILE, "apply", "--yes", "--sysroot", str(host.sysroot), "--origin", str(host.origin)]
    common += ["--reposdir", str(host.reposdir)]
    host.write_origin(["tiny"])
    small = peaks_of(common, host.root).own_kib >> 10
    host.write_origin(["tiny", "many"])
    large = peaks_of(common, host.root)
    tree = host.deployment_path(host.default())
    assert (tree / "usr/share/many/big.bin").stat().st_size == BIG_FILE_MIB << 20
    assert len(list((tree / "usr/share/many").iterdir())) == 5001
    assert small > 20, f"{small} MiB is not the peak of a reconcile process"
    own = large.own_kib >> 10
    assert own - small <= GROWTH_MAX_MIB, f"importing grew reconcile's own peak from {small} MiB to {own} MiB"
    assert own <= PEAK_MAX_MIB, f"reconcile's own peak was {own} MiB"
    programs = {name for name, _kib in large.children}
    assert "rpm" in programs, f"the rpmdb writer was not measured: {large.children}"

"""Importing streams: a 5,000-file package with a 64 MiB file costs about as much memory as a tiny one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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


def peak_rss_of(argv: list[str], tmp: Path) -> int:
    """Peak resident memory (KiB) of this one child (and what it waited for), from its own wait4() rusage:
    RUSAGE_CHILDREN would be the running maximum over every child pytest ever waited for."""
    out, err = tmp / "stdout", tmp / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, env=exampleos.sysroot_env())
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    assert proc.returncode == 0, err.read_text()
    return usage.ru_maxrss


def test_import_memory_is_flat(host: Host) -> None:
    big = host.rpms.build_spec("many", MANY_SPEC)
    host.publish([Package("tiny")], examples=True)
    exampleos.make_repo([big], host.rpm_repo)
    common = [RECONCILE, "apply", "--yes", "--sysroot", str(host.sysroot), "--origin", str(host.origin)]
    common += ["--reposdir", str(host.reposdir)]
    host.write_origin(["tiny"])
    small = peak_rss_of(common, host.root)
    host.write_origin(["tiny", "many"])
    large = peak_rss_of(common, host.root)
    tree = host.deployment_path(host.default())
    assert (tree / "usr/share/many/big.bin").stat().st_size == 64 << 20
    assert len(list((tree / "usr/share/many").iterdir())) == 5001
    assert small > 20 * 1024, f"{small} KiB is not the peak of a reconcile process"
    assert large - small < 32 * 1024, f"importing grew peak memory from {small} KiB to {large} KiB"

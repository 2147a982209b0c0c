"""A local RPM rpm-ostree layered: its `requested-local` pin is the SHA-256 of the RPM's header bytes, which rpm-ostree
keeps in its own package cache (`rpmostree/pkg/...`, `rpmostree.metadata`). Migrating such a host plans as a
no-op; a build that needs the package's files asks for the RPM file instead of failing obscurely."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import Host
from support import File, Package, exampleos, ostree, reconcile
from test_bad_input import assert_failed_cleanly
from test_rpm_ostree_layer import EXTRA, HELLO, HELLO_DATA, as_rpm_ostree_built, deploy_commit

from reconcile.ostree._gi import GLib
from reconcile.rpm.header import read_rpm_headers
from reconcile.rpm.nevra import Nevra, pkgcache_ref, rpm_ostree_pkgcache_ref

LOCAL = Package("local-tool", files=(File("/usr/bin/local-tool", "#!/bin/sh\n"),))


def _rpm_ostree_caches(host: Host, rpm: Path) -> str:
    """rpm-ostree's package-cache commit for `rpm` (its header only: the test needs no files); returns the pin."""
    with open(rpm, "rb") as f:
        raw = read_rpm_headers(f).raw
    sha = hashlib.sha256(raw).hexdigest()
    nevra = Nevra.parse(LOCAL.nevra)
    empty = host.root / "empty-tree"
    empty.mkdir()
    ostree(
        f"--repo={host.sysroot / 'ostree' / 'repo'}",
        "commit",
        f"--branch={rpm_ostree_pkgcache_ref(nevra)}",
        f"--tree=dir={empty}",
        f"--add-metadata=rpmostree.metadata={GLib.Variant('ay', raw).print_(True)}",
        f"--add-metadata-string=rpmostree.metadata_sha256={sha}",
    )
    return f"{sha}:{nevra}"


def test_a_local_package_rpm_ostree_layered_migrates_as_a_no_op(host: Host) -> None:
    host.publish([HELLO, HELLO_DATA, EXTRA])
    rpm = host.rpms.build(LOCAL)
    base = f'[origin]\nbaserefspec = "{exampleos.BASE_REF}"\n\n[packages]\n'
    host.origin.write_text(base + f'requested = ["hello-tool"]\nlocal = ["{rpm}"]\n')
    host.apply_ok()
    theirs = as_rpm_ostree_built(host, host.default()["checksum"])
    pin = _rpm_ostree_caches(host, rpm)
    ours_pin = next(line for line in host.deployed_origin().read_text().splitlines() if "requested-local" in line)
    origin = host.root / "rpm-ostree.origin"  # what rpm-ostree wrote: its pin, the header's SHA-256
    origin.write_text(host.deployed_origin().read_text().replace(ours_pin, f"requested-local={pin};"))
    deploy_commit(host, theirs, origin=origin)
    repo = f"--repo={host.sysroot / 'ostree' / 'repo'}"
    ostree(repo, "refs", "--delete", pkgcache_ref(Nevra.parse(LOCAL.nevra)))  # only rpm-ostree's cache has it now
    rpm.unlink()

    migrated = host.root / "migrated.toml"
    made = reconcile("init", "--sysroot", host.sysroot, "--origin", migrated)
    assert made.code == 0, made.stderr
    assert pin in migrated.read_text() and "not in reconcile's package cache" not in made.stderr, made.stderr
    plan = reconcile("plan", "--sysroot", host.sysroot, "--origin", migrated, "--reposdir", host.reposdir, "--json")
    assert plan.code == 0, plan.stderr
    assert plan.json()["has_changes"] is False, plan.json()["summary"]

    host.origin.write_text(migrated.read_text().replace('"hello-tool"', '"hello-tool", "extra-tool"'))
    before = host.state()
    assert_failed_cleanly(
        host, before, host.run("apply"), 1, "local-tool-1.0-1.noarch", "rpm-ostree's package cache", "RPM file's path"
    )

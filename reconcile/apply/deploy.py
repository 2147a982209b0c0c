"""Deploy a commit with libostree, and write the origin keyfile the way rpm-ostree does."""

from __future__ import annotations

from reconcile import ostree
from reconcile.context import Context
from reconcile.deployed import all_deployments
from reconcile.origin import DesiredOrigin
from reconcile.ostree import Deployment, KeyFile
from reconcile.rpm.nevra import PKGCACHE_PREFIX, pkgcache_ref

BASE_REF_PREFIX = "reconcile/base"
# Groups and keys reconcile owns in a deployment's origin; everything else is carried over untouched.
_OWNED_KEYS = (
    ("origin", "refspec"),
    ("origin", "baserefspec"),
    ("packages", "requested"),
    ("packages", "requested-local"),
    ("overrides", "remove"),
    ("reconcile", "recommends"),
    ("reconcile", "ignore-scripts"),
    ("reconcile", "releasever"),
    ("reconcile", "localpkg-gpgcheck"),
)


def build_origin(
    desired: DesiredOrigin, local_pins: list[str], previous: KeyFile | None, *, new_deployment: bool
) -> KeyFile:
    """The deployment origin: `baserefspec` when anything is requested (plain `refspec` keeps
    `ostree admin upgrade` working otherwise), lists written with GLib's trailing `;`."""
    kf = ostree.keyfile_copy(previous) if previous is not None else ostree.KeyFile.new()
    if new_deployment:
        ostree.keyfile_remove(kf, "libostree-transient")  # pinning belongs to the old deployment
    for group, key in _OWNED_KEYS:
        ostree.keyfile_remove(kf, group, key)
    requested = sorted(desired.packages.requested)
    removals = sorted(desired.overrides.remove)
    key = "baserefspec" if requested or local_pins or removals else "refspec"
    kf.set_string("origin", key, desired.origin.baserefspec)
    if requested:
        kf.set_string_list("packages", "requested", requested)
    if local_pins:
        kf.set_string_list("packages", "requested-local", sorted(local_pins))
    if removals:
        kf.set_string_list("overrides", "remove", removals)
    if not desired.options.recommends:
        kf.set_string("reconcile", "recommends", "false")
    if desired.options.ignore_scripts:
        kf.set_string_list("reconcile", "ignore-scripts", sorted(desired.options.ignore_scripts))
    if desired.options.releasever is not None:
        kf.set_string("reconcile", "releasever", desired.options.releasever)
    if desired.options.localpkg_gpgcheck is not None:
        kf.set_string("reconcile", "localpkg-gpgcheck", "true" if desired.options.localpkg_gpgcheck else "false")
    for group in ("packages", "overrides", "reconcile"):
        if kf.has_group(group) and not kf.get_keys(group)[0]:
            ostree.keyfile_remove(kf, group)
    return kf


def deploy(ctx: Context, stateroot: str, commit: str, origin: KeyFile, merge: Deployment | None) -> Deployment:
    """A new default deployment; the merge deployment stays as the rollback and gives /etc its 3-way merge."""
    return ctx.sysroot.deploy(stateroot, commit, origin, merge)


def collect_garbage(ctx: Context) -> None:
    """Keep package-cache refs of packages some deployment still layers, and refs on layered deployments'
    bases (so a later removal can rebuild from them); prune the rest. `ctx` must see the new deployment
    (Context.reload after deploying)."""
    states = all_deployments(ctx.sysroot, ctx.repo)
    keep = {pkgcache_ref(p.nevra) for s in states for p in s.layered}
    for ref in ctx.repo.refs(PKGCACHE_PREFIX):
        full = f"{PKGCACHE_PREFIX}/{ref}" if not ref.startswith(PKGCACHE_PREFIX) else ref
        if full not in keep:
            ctx.repo.set_ref_now(full, None)
    bases = sorted({s.base_checksum for s in states if s.is_layered})
    for ref in ctx.repo.refs(BASE_REF_PREFIX):
        full = f"{BASE_REF_PREFIX}/{ref}" if not ref.startswith(BASE_REF_PREFIX) else ref
        ctx.repo.set_ref_now(full, None)
    for i, base in enumerate(bases):
        ctx.repo.set_ref_now(f"{BASE_REF_PREFIX}/{i}", base)
    ctx.sysroot.cleanup()

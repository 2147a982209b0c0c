"""Deploy a commit with libostree (its origin keyfile comes from origin_keyfile.write_origin_keyfile)."""

from __future__ import annotations

from reconcile.context import Context
from reconcile.deployed import all_deployments
from reconcile.ostree import Deployment, KeyFile
from reconcile.rpm.nevra import PKGCACHE_PREFIX, pkgcache_ref

BASE_REF_PREFIX = "reconcile/base"


def deploy(
    ctx: Context,
    stateroot: str,
    commit: str,
    origin: KeyFile,
    merge: Deployment | None,
    kernel_args: list[str] | None = None,
) -> Deployment:
    """A new default deployment; the merge deployment stays as the rollback and gives /etc its 3-way merge (and,
    unless `kernel_args` replace them, its kernel arguments)."""
    return ctx.sysroot.deploy(stateroot, commit, origin, merge, kernel_args)


def collect_garbage(ctx: Context) -> None:
    """Keep package-cache refs of packages some deployment still layers, and refs on layered deployments'
    bases (so a later removal can rebuild from them); prune the rest. `ctx` must see the new deployment
    (Context.reload after deploying)."""
    states = all_deployments(ctx.sysroot, ctx.repo)
    keep = {pkgcache_ref(p.nevra) for s in states for p in [*s.layered, *(r.package for r in s.replaced_base)]}
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

"""Deploy a commit with libostree (its origin keyfile comes from origin_keyfile.write_origin_keyfile)."""

from __future__ import annotations

from enum import StrEnum

from reconcile.context import Context
from reconcile.deployed import all_deployments
from reconcile.ostree import Deployment, KeyFile
from reconcile.rpm.nevra import PKGCACHE_PREFIX, pkgcache_ref

BASE_REF_PREFIX = "reconcile/base"


class DeployMethod(StrEnum):
    """How the new deployment was written (apply --json `result.deploy_method`)."""

    STAGED = "staged"  # booted: finalized at shutdown, so /etc edits until the reboot are merged too
    WRITTEN = "written"  # not booted: deploy_tree + simple_write_deployment, /etc merged now


DEPLOY_REASONS = {
    DeployMethod.STAGED: "staged: the sysroot is booted; /etc is merged and the bootloader switched at shutdown",
    DeployMethod.WRITTEN: "written directly: the sysroot is not booted",
}


def deploy(
    ctx: Context,
    stateroot: str,
    commit: str,
    origin: KeyFile,
    merge: Deployment | None,
    kernel_args: list[str] | None = None,
) -> tuple[Deployment, DeployMethod]:
    """A new default deployment; the merge deployment stays as the rollback and gives /etc its 3-way merge (and,
    unless `kernel_args` replace them, its kernel arguments). Staged when the sysroot is booted, as rpm-ostree
    does (libostree can stage only then)."""
    if ctx.sysroot.booted() is not None:
        return ctx.sysroot.stage(stateroot, commit, origin, merge, kernel_args), DeployMethod.STAGED
    return ctx.sysroot.deploy(stateroot, commit, origin, merge, kernel_args), DeployMethod.WRITTEN


def collect_garbage(ctx: Context) -> None:
    """Keep package-cache refs of packages some deployment still layers, and refs on layered deployments'
    bases (so a later removal can rebuild from them); prune the rest. `ctx` must see the new deployment
    (Context.reload after deploying)."""
    keep_needed_refs(ctx)
    ctx.sysroot.cleanup()


def keep_needed_refs(ctx: Context) -> None:
    """Drop the package-cache refs no deployment layers and point `reconcile/base/<n>` at layered
    deployments' bases: what a prune after it keeps is exactly what the deployments need."""
    for ref in unneeded_package_refs(ctx):
        ctx.repo.set_ref_now(ref, None)
    states = all_deployments(ctx.sysroot, ctx.repo)
    bases = sorted({s.base_checksum for s in states if s.is_layered})
    for ref in ctx.repo.refs(BASE_REF_PREFIX):
        full = f"{BASE_REF_PREFIX}/{ref}" if not ref.startswith(BASE_REF_PREFIX) else ref
        ctx.repo.set_ref_now(full, None)
    for i, base in enumerate(bases):
        ctx.repo.set_ref_now(f"{BASE_REF_PREFIX}/{i}", base)


def unneeded_package_refs(ctx: Context) -> list[str]:
    """Package-cache refs of packages no deployment layers."""
    states = all_deployments(ctx.sysroot, ctx.repo)
    keep = {pkgcache_ref(p.nevra) for s in states for p in [*s.layered, *(r.package for r in s.replaced_base)]}
    refs = (
        f"{PKGCACHE_PREFIX}/{r}" if not r.startswith(PKGCACHE_PREFIX) else r for r in ctx.repo.refs(PKGCACHE_PREFIX)
    )
    return sorted(ref for ref in refs if ref not in keep)

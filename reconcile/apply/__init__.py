"""`apply_plan()`: turn a Plan into a deployment, step by step: verify fresh, fetch, import, assemble,
commit, deploy, clean up. The caller holds the sysroot lock."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile import commitmeta as cm
from reconcile.apply.assemble import TreeMerger, boot_metadata, remove_base_packages, write_rpmdb
from reconcile.apply.deploy import build_origin, collect_garbage, deploy
from reconcile.apply.fetch import fetch_packages
from reconcile.apply.pkgcache import CachedPackage, PackageCache, owners_in_commit
from reconcile.commitmeta import LayeredPackage
from reconcile.context import Context
from reconcile.errors import ReconcileError, StalePlanError
from reconcile.origin import LoadedOrigin
from reconcile.ostree import Variant
from reconcile.planner import model as m
from reconcile.planner.state import DeploymentState, current_deployment
from reconcile.rpm.nevra import Nevra
from reconcile.selinux import labeler_for

LAYER_MODE = "layer"


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    deployed: str | None
    message: str


def apply_plan(ctx: Context, plan: m.Plan, loaded: LoadedOrigin, *, saved: bool = False) -> ApplyResult:
    """Apply exactly `plan`. With `saved`, anything that no longer matches it is a stale plan (exit 3)."""
    current, dep = _verify_fresh(ctx, plan, loaded)
    if not plan.applyable:
        raise ReconcileError("The plan cannot be applied: " + " ".join(plan.errors), hint="Nothing was changed.")
    if not plan.has_changes:
        return ApplyResult(False, None, "Nothing to do: the deployment already matches the origin.")
    target = plan.target
    if ctx.repo.resolve(target.base_checksum) is None:
        raise StalePlanError(f"The plan's base commit {target.base_checksum[:12]} is no longer in the repo.")
    if not target.needs_deployment:
        origin = build_origin(loaded.desired, target.local, dep.get_origin(), new_deployment=False)
        ctx.sysroot.write_origin(dep, origin)
        return ApplyResult(True, None, f"Updated the origin of deployment {current.id}; no new deployment was needed.")
    commit = target.base_checksum
    if target.state_digest:
        commit = _build_layered_commit(ctx, plan, saved)
    origin = build_origin(loaded.desired, target.local, dep.get_origin(), new_deployment=True)
    with ctx.reporter.step("Deploying"):
        new = deploy(ctx, current.stateroot, commit, origin, dep)
    with ctx.reporter.step("Cleaning up"):
        collect_garbage(ctx)
    return ApplyResult(True, f"{new.get_csum()}.{new.get_deployserial()}", f"Deployed {commit[:12]} for the next boot.")


def _verify_fresh(ctx: Context, plan: m.Plan, loaded: LoadedOrigin) -> tuple[DeploymentState, Any]:
    """Under the lock: the deployment and origin must be what the plan was computed against."""
    current, dep = current_deployment(ctx.sysroot, ctx.repo, plan.prior.stateroot)
    now = m.fingerprint(current.id, current.base_checksum, current.requested, loaded.sha256)
    if now == plan.prior.fingerprint:
        return current, dep
    if current.id != plan.prior.deployment:
        why = f"the deployment moved from {plan.prior.deployment[:12]}… to {current.id[:12]}…"
    elif loaded.sha256 != plan.origin.sha256:
        why = f"the origin file {loaded.path} changed since the plan was made"
    else:
        why = "the deployment's requested packages or base changed"
    raise StalePlanError(f"The plan is stale: {why}.", hint="Run `reconcile plan` again. Nothing was changed.")


def _build_layered_commit(ctx: Context, plan: m.Plan, saved: bool) -> str:
    repo, reporter, target = ctx.repo, ctx.reporter, plan.target
    labeler = labeler_for(repo, target.base_checksum)
    cache = PackageCache(repo, owners_in_commit(repo, target.base_checksum), labeler, mode=LAYER_MODE)
    pinned = {p.nevra: p for p in target.packages}
    cached: dict[str, CachedPackage] = {}
    staging = Path(tempfile.mkdtemp(prefix="reconcile-fetch-", dir=_tmpdir(ctx)))
    try:
        # One transaction for relabels, imports and the layered commit: on any failure no ref moves.
        with repo.transaction():
            with reporter.step("Looking up the package cache"):
                for p in target.packages:
                    hit = cache.find(_nevra(p), p.checksum, p.repo)
                    if hit is not None:
                        cached[p.nevra] = hit
            missing = [p for p in target.packages if p.nevra not in cached]
            if missing:
                with reporter.step(f"Downloading {len(missing)} package(s)"):
                    files = _fetch(missing, staging, saved)
                with reporter.step(f"Importing {len(missing)} package(s)"):
                    for p in missing:
                        cached[p.nevra] = cache.import_rpm(files[p.nevra], _nevra(p), p.checksum, p.repo)
            with reporter.step("Assembling the layered commit"):
                packages = [cached[n] for n in sorted(pinned)]
                commit = _assemble(ctx, plan, cache, packages)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return commit


def _assemble(ctx: Context, plan: m.Plan, cache: PackageCache, packages: list[CachedPackage]) -> str:
    repo, target = ctx.repo, plan.target
    base = target.base_checksum
    tree = repo.tree_from_commit(base)
    if target.remove_base:
        remove_base_packages(repo, tree, base, target.remove_base)
    merger = TreeMerger(repo, tree)
    for pkg in packages:
        merger.merge(pkg)
    write_rpmdb(repo, tree, base, cache, packages, erase=target.remove_base, labeler=cache.labeler)
    root = repo.write_mtree(tree)
    base_meta = repo.commit_metadata(base)
    gone = set(target.remove_base)
    base_pkgs = [n for n in (Nevra.from_tuple(t) for t in base_meta.get(cm.PKGLIST, [])) if str(n) not in gone]
    layered = [LayeredPackage(p.nevra, p.checksum, p.repo) for p in packages]
    metadata: dict[str, Any] = {
        **boot_metadata(repo, base),
        cm.PKGLIST: cm.nevra_list(sorted(base_pkgs + [p.nevra for p in packages])),
        cm.LAYERED: cm.nevra_list([p.nevra for p in packages]),
        cm.LAYERED_SOURCES: cm.sources_variant(layered),
        cm.REQUESTED: Variant("as", target.active_requests),
        cm.REMOVED_BASE: cm.nevra_list([Nevra.parse(n) for n in target.remove_base]),
        cm.BASE: Variant("s", base),
        cm.STATE_DIGEST: Variant("s", target.state_digest or ""),
        cm.FORMAT: Variant("u", m.ASSEMBLY_FORMAT_VERSION),
    }
    subject = f"reconcile: {target.base_refspec} + " + ", ".join(str(p.nevra) for p in packages)
    if target.remove_base:
        subject += " - " + ", ".join(target.remove_base)
    return repo.write_commit(base, subject, metadata, root, repo.commit_timestamp(base))


def _fetch(missing: list[m.PinnedPackage], staging: Path, saved: bool) -> dict[str, Path]:
    try:
        return fetch_packages(missing, staging)
    except ReconcileError as e:
        if not saved:
            raise
        raise StalePlanError(
            f"The plan is stale: a pinned package can no longer be fetched as planned. {e.message}",
            hint="Run `reconcile plan` again. Nothing was changed.",
        ) from None


def _nevra(p: m.PinnedPackage) -> Nevra:
    return Nevra(p.name, p.epoch, p.version, p.release, p.arch)


def _tmpdir(ctx: Context) -> Path:
    tmp = ctx.repo.path / "tmp"
    tmp.mkdir(exist_ok=True)
    return tmp

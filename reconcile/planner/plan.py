"""`make_plan()`: read the deployed state and the desired origin, resolve, check, and return a frozen Plan."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from reconcile import __version__
from reconcile.base import BaseChoice, BaseWanted
from reconcile.context import Context
from reconcile.deployed import DeploymentState
from reconcile.kargs import converge
from reconcile.origin import DesiredOrigin, LoadedOrigin, is_keyfile
from reconcile.origin_keyfile import refusal
from reconcile.planner import model as m
from reconcile.planner.changes import Sources, base_package_diff, kargs_change, request_changes, resolution_diff
from reconcile.planner.local import LocalPackage, is_pin, read_local
from reconcile.planner.ostree_system import OstreeSystem
from reconcile.planner.pins import pin_candidate
from reconcile.planner.ports import DeployedSystem
from reconcile.planner.resolution import Ports, Resolved, resolve
from reconcile.planner.solver import BaseSwap, Candidate, Solver, SolveResult
from reconcile.planner.sources import repo_source_opener
from reconcile.rpm.nevra import Nevra


def make_plan(
    ctx: Context,
    loaded: LoadedOrigin,
    reposdir: Path | None,
    stateroot: str | None,
    *,
    update: bool = False,
    whole_packages: bool = False,
    reuse_deployed: bool = True,
) -> m.Plan:
    """A plan for this host: its sysroot, the repos its deployment configures, libsolv."""
    system = OstreeSystem(ctx)
    ports = Ports(system, repo_source_opener(ctx, system, reposdir), Solver(ctx.arch))
    return plan_with(
        ports, loaded, stateroot, update=update, whole_packages=whole_packages, reuse_deployed=reuse_deployed
    )


def plan_with(
    ports: Ports,
    loaded: LoadedOrigin,
    stateroot: str | None,
    *,
    update: bool = False,
    whole_packages: bool = False,
    reuse_deployed: bool = True,
) -> m.Plan:
    """The planner's steps over its ports. `whole_packages`: download the packages to add now (apply needs them
    next) instead of their headers. `reuse_deployed=False` resolves even a converged deployment (keeping its
    versions), so every package is pinned with the repo and location it comes from (export needs them)."""
    system, desired = ports.system, loaded.desired
    current = system.current(stateroot)
    choice = system.base_commit(_base_wanted(loaded, current, update), loaded.path)
    base = choice.checksum
    if current.unsupported_origin_keys:
        raise refusal(f"The origin of deployment {current.id} (rpm-ostree's)", current.unsupported_origin_keys)
    local = _local_packages(system, loaded, desired.packages.local)
    replace_local = _local_packages(system, loaded, desired.overrides.replace_local)
    normalized = {
        **desired.normalized(),
        "local": sorted(p.pin for p in local),
        "override_replace_local": sorted(p.pin for p in replace_local),
    }
    origin_changed = normalized != current.normalized_origin()
    resolved = Resolved()
    if reuse_deployed and _converged(current, base, origin_changed, update):
        resolved = Resolved(_as_deployed(current))
    elif desired.packages.requested or local or desired.overrides.remove or desired.overrides.replace or replace_local:
        resolved = resolve(ports, current, base, loaded, local, update, whole_packages, replace_local)
    return _freeze(system, current, choice, loaded, normalized, resolved, (local, replace_local))


def _base_wanted(loaded: LoadedOrigin, current: DeploymentState, update: bool) -> BaseWanted:
    want = loaded.desired.origin
    return BaseWanted(
        refspec=want.base,
        commit=want.commit,
        version=want.version,
        update=update,
        container=want.container_image is not None,
        deployed_refspec=current.container_image or current.refspec,
        deployed_commit=current.pinned_commit,
        deployed_version=current.pinned_version,
        deployed_base=current.base_checksum,
    )


def _base_move(system: DeployedSystem, current: DeploymentState, choice: BaseChoice, refspec: str) -> m.BaseMove:
    before, after = current.base_checksum, choice.checksum
    (v_before, t_before), (v_after, t_after) = system.describe_commit(before), system.describe_commit(after)
    direction = "same" if before == after else "downgrade" if t_after < t_before else "upgrade"
    packages = base_package_diff(system.base_headers(before), system.base_headers(after)) if before != after else None
    return m.BaseMove(
        refspec=refspec,
        before=before,
        after=after,
        before_version=v_before,
        after_version=v_after,
        direction=direction,
        rebase=refspec != (current.container_image or current.refspec),
        chosen=choice.how,
        newest=choice.newest,
        fetched_bytes=choice.fetched.bytes if choice.fetched else 0,
        packages=packages or m.BasePackages(),
    )


def _local_packages(system: DeployedSystem, loaded: LoadedOrigin, entries: list[str]) -> list[LocalPackage]:
    """`packages.local` or `overrides.replace-local`: RPM files, or rpm-ostree's `<sha256>:<nevra>` pins resolved
    against the package cache (a keyfile has only pins; a TOML origin either)."""
    keyfile = is_keyfile(loaded.path)
    return [
        system.cached_local(p, loaded.path) if keyfile or is_pin(p) else read_local(p, loaded.path) for p in entries
    ]


def _freeze(
    system: DeployedSystem,
    current: DeploymentState,
    choice: BaseChoice,
    loaded: LoadedOrigin,
    normalized: dict[str, Any],
    resolved: Resolved,
    locals_: tuple[list[LocalPackage], list[LocalPackage]],
) -> m.Plan:
    """The target, the diff against what is deployed, and the summary, as one frozen Plan."""
    desired, solved, base = loaded.desired, resolved.solved, choice.checksum
    move = _base_move(system, current, choice, desired.origin.base)
    inactive = {spec for spec, _by in solved.inactive}
    active = sorted(spec for spec in desired.packages.requested if spec not in inactive)
    removed = [str(n) for n in solved.removed_base]
    replacements = [_replacement(r) for r in solved.replaced_base]
    digest = None
    if solved.packages or removed or replacements:
        digest = m.state_digest(
            base,
            active,
            desired.options.recommends,
            [(str(c.nevra), c.checksum) for c in solved.installs],
            removed,
            system.policy_id(base),
            desired.options.ignore_scripts,
            [(r.before, r.after) for r in replacements],
        )
    if current.built_by == "rpm-ostree":
        needs_deployment = not _holds_the_same(current, base, solved, replacements)
    else:
        prior_key = ("layered", current.state_digest) if current.is_layered else ("base", current.checksum)
        needs_deployment = prior_key != (("layered", digest) if digest else ("base", base))
    needs_origin_update = normalized != current.normalized_origin()
    kernel_args = _kernel_args(current, desired)
    resolution = resolution_diff(current, solved, lambda: system.base_headers(base), Sources.of(loaded, locals_[0]))
    errors = [c.message for c in resolved.checks if c.severity == "error"]
    has_changes = needs_deployment or needs_origin_update or kernel_args is not None
    changes = request_changes(current, loaded, move, solved, *locals_)
    if kernel_args is not None:
        changes.append(kargs_change(current.kernel_args or [], kernel_args))
    return m.Plan(
        tool_version=__version__,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        origin=m.OriginRef(
            path=str(loaded.path.absolute()),
            sha256=loaded.sha256,
            desired=normalized,
            fragments=[m.OriginFragment(path=str(p.absolute()), sha256=sha) for p, sha in loaded.fragments],
        ),
        prior=_prior(current, loaded),
        changes=changes,
        resolution=resolution,
        base=move,
        target=m.Target(
            base_refspec=desired.origin.base,
            base_checksum=base,
            base_pinned=bool(desired.origin.commit or desired.origin.version),
            packages=[pin_candidate(c, c.nevra.name in solved.requested) for c in solved.packages] if digest else [],
            remove_base=removed,
            local=normalized["local"],
            replace_base=replacements if digest else [],
            replace_local=normalized["override_replace_local"],
            active_requests=active if digest else [],
            releasever=resolved.releasever,
            state_digest=digest,
            needs_deployment=needs_deployment,
            needs_origin_update=needs_origin_update,
            kernel_args=kernel_args,
        ),
        checks=[*resolved.checks, *_base_notes(choice)],
        repos=resolved.repos,
        keys=resolved.keys,
        summary=_summary(resolution, has_changes, needs_deployment, move, kernel_args is not None),
        has_changes=has_changes,
        applyable=not errors,
        errors=errors,
        warnings=[c.message for c in resolved.checks if c.severity == "warning"],
    )


def _holds_the_same(
    current: DeploymentState, base: str, solved: SolveResult, replacements: list[m.BaseReplacement]
) -> bool:
    """A layer rpm-ostree built has no reconcile state digest: it is kept when it holds what the plan resolved (the
    same base, layered NEVRAs, removals and replacements); rpm-ostree's digest covers the same ground."""
    return (
        base == current.base_checksum
        and sorted(str(c.nevra) for c in solved.packages) == sorted(str(p.nevra) for p in current.layered)
        and sorted(str(n) for n in solved.removed_base) == sorted(current.removed_base)
        and sorted((r.before, r.after) for r in replacements)
        == sorted((str(r.base), str(r.package.nevra)) for r in current.replaced_base)
    )


def _kernel_args(current: DeploymentState, desired: DesiredOrigin) -> list[str] | None:
    """The argv `[kargs]` asks for, converged against the merge deployment's; None when it has it already."""
    wanted = desired.kargs
    if not (wanted.append or wanted.delete):
        return None
    before = current.kernel_args or []
    after = converge(before, wanted.append, wanted.delete)
    return after if after != before else None


def _base_notes(choice: BaseChoice) -> list[m.Check]:
    if choice.note is None:
        return []
    return [m.Check(kind=m.CheckKind.BASE, severity=m.Severity.INFO, message=choice.note)]


def _converged(current: DeploymentState, base: str, origin_changed: bool, update: bool) -> bool:
    """Nothing asked for changed since the deployment was built: same base commit, same origin, same assembly.
    Layered versions are kept unless asked to update, so resolving again would give the deployed set; the
    repos need not even be read. (A deployment with inactive requests is resolved again, to report them.)"""
    if update or base != current.base_checksum or origin_changed:
        return False
    if current.inactive_requests:
        return False
    return not current.is_layered or current.format_version == m.ASSEMBLY_FORMAT_VERSION


def _as_deployed(current: DeploymentState) -> SolveResult:
    packages = [Candidate(p.nevra, p.repo, p.checksum, "", "") for p in current.layered]
    if current.requested_names is not None:
        named = set(current.requested_names)
    else:  # an older commit: names guessed from the request specs
        named = {spec.split()[0].split(".")[0] for spec in current.active_requests}
    return SolveResult(
        packages=packages,
        requested={p.nevra.name for p in current.layered if p.nevra.name in named},
        removed_base=[Nevra.parse(n) for n in current.removed_base],
        replaced_base=[
            BaseSwap(
                r.base, Candidate(r.package.nevra, r.package.repo, r.package.checksum, "", ""), _source(r.package.repo)
            )
            for r in current.replaced_base
        ],
    )


def _source(repo: str) -> str:
    return "local" if repo == "@local" else "repo"


def _replacement(swap: BaseSwap) -> m.BaseReplacement:
    return m.BaseReplacement(
        before=str(swap.base),
        after=str(swap.package.nevra),
        source="local" if swap.source == "local" else "repo",
        package=pin_candidate(swap.package, False),
    )


def _prior(current: DeploymentState, loaded: LoadedOrigin) -> m.Prior:
    return m.Prior(
        stateroot=current.stateroot,
        deployment=current.id,
        checksum=current.checksum,
        base_checksum=current.base_checksum,
        refspec=current.container_image or current.refspec,
        requested=current.requested,
        layered=[str(p.nevra) for p in current.layered],
        state_digest=current.state_digest,
        fingerprint=m.fingerprint(current.id, current.base_checksum, current.requested, loaded.sha256),
        kernel_args=current.kernel_args,
    )


def _summary(
    resolution: m.Resolution, has_changes: bool, needs_deployment: bool, move: m.BaseMove, kargs: bool
) -> m.Summary:
    kinds = ("added", "removed", "upgraded", "downgraded", "replaced", "base_replacements")
    counts: dict[str, Any] = {k: len(getattr(resolution, k)) for k in kinds}
    if not has_changes:
        text = "No changes: the deployment already matches the origin."
    elif kargs and not needs_deployment:
        text = "Only the kernel arguments change: the same commit is deployed again with them."
    elif not needs_deployment:
        text = "Only the deployment's recorded origin changes; no new deployment is needed."
    else:
        text = (
            f"{counts['added']} to add, {counts['removed']} to remove, {counts['upgraded']} to upgrade, "
            f"{counts['downgraded']} to downgrade"
            + (f", {counts['replaced']} to replace" if counts["replaced"] else "")
            + (
                f", {counts['base_replacements']} base package(s) replaced or restored"
                if counts["base_replacements"]
                else ""
            )
            + ("; the base is rebased" if move.rebase else "")
            + (f"; the base moves ({move.direction})" if move.direction != "same" and not move.rebase else "")
            + ("; the kernel arguments change" if kargs else "")
            + "; a new deployment will be created."
        )
    return m.Summary(text=text, **counts)

"""`make_plan()`: read the deployed state and the desired origin, resolve, and return a frozen Plan."""

from __future__ import annotations

import datetime
from pathlib import Path

from reconcile import __version__
from reconcile.commitmeta import LayeredPackage
from reconcile.context import Context
from reconcile.errors import ReconcileError
from reconcile.origin import LoadedOrigin
from reconcile.planner import model as m
from reconcile.planner.solver import Candidate, Solver, SolveResult
from reconcile.planner.state import DeploymentState, current_deployment
from reconcile.repos.config import load_repo_configs
from reconcile.repos.metadata import refresh
from reconcile.rpm.nevra import evr_compare
from reconcile.rpm.rpmdb import read_headers

NO_POLICY = ""


def default_reposdir(ctx: Context, current: DeploymentState) -> Path:
    """Like rpm-ostree: the repos configured in the deployment's own /etc."""
    if str(ctx.sysroot.path) == "/":
        return Path("/etc/yum.repos.d")
    for dep in ctx.sysroot.deployments():
        if dep.get_csum() == current.checksum and dep.get_deployserial() == current.serial:
            return ctx.sysroot.deployment_dir(dep) / "etc" / "yum.repos.d"
    return Path("/etc/yum.repos.d")


def make_plan(ctx: Context, loaded: LoadedOrigin, reposdir: Path | None, stateroot: str | None) -> m.Plan:
    current, _dep = current_deployment(ctx.sysroot, ctx.repo, stateroot)
    desired = loaded.desired
    _refuse_unsupported(loaded)
    refspec = desired.origin.baserefspec
    base = ctx.repo.resolve(refspec)
    if base is None:
        raise ReconcileError(
            f"The baserefspec {refspec!r} in {loaded.path} is not a ref in the sysroot's repo ({ctx.repo.path}).",
            hint="Pull or create the base ref first (ostree pull / pull-local), or fix baserefspec.",
        )
    solved = SolveResult()
    if desired.packages.requested:
        solved = _resolve(ctx, current, base, desired.packages.requested, desired.options.recommends, reposdir)

    active = sorted(spec for spec in desired.packages.requested if spec not in {s for s, _ in solved.inactive})
    digest = None
    if solved.packages:
        digest = m.state_digest(
            base,
            active,
            desired.options.recommends,
            [(str(c.nevra), c.checksum) for c in solved.packages],
            NO_POLICY,
        )
    prior_key = ("layered", current.state_digest) if current.is_layered else ("base", current.checksum)
    target_key = ("layered", digest) if digest else ("base", base)
    needs_deployment = prior_key != target_key
    needs_origin_update = desired.normalized() != current.normalized_origin()

    resolution = _resolution(current.layered, solved)
    changes = _request_changes(current, loaded, base, solved)
    target = m.Target(
        base_refspec=refspec,
        base_checksum=base,
        packages=[pin_candidate(c, c.nevra.name in solved.requested) for c in solved.packages] if digest else [],
        active_requests=active if digest else [],
        state_digest=digest,
        needs_deployment=needs_deployment,
        needs_origin_update=needs_origin_update,
    )
    has_changes = needs_deployment or needs_origin_update
    return m.Plan(
        tool_version=__version__,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        origin=m.OriginRef(path=str(loaded.path), sha256=loaded.sha256, desired=desired.normalized()),
        prior=_prior(current, loaded),
        changes=changes,
        resolution=resolution,
        target=target,
        summary=_summary(resolution, has_changes, needs_deployment),
        has_changes=has_changes,
        applyable=True,
    )


def _refuse_unsupported(loaded: LoadedOrigin) -> None:
    d = loaded.desired
    if d.packages.local:
        raise ReconcileError(f"{loaded.path}: packages.local is not supported yet; remove it to continue.")
    if d.overrides.remove:
        raise ReconcileError(f"{loaded.path}: overrides.remove is not supported yet; remove it to continue.")


def _resolve(
    ctx: Context,
    current: DeploymentState,
    base: str,
    requests: list[str],
    recommends: bool,
    reposdir: Path | None,
) -> SolveResult:
    reporter = ctx.reporter
    solver = Solver(ctx.arch)
    with reporter.step("Reading the base's rpmdb"):
        solver.add_base(read_headers(ctx.repo, base))
    configs = load_repo_configs(reposdir or default_reposdir(ctx, current), {"basearch": ctx.arch, "arch": ctx.arch})
    with reporter.step("Refreshing repo metadata"):
        for cfg in configs:
            solver.add_repo(refresh(cfg, ctx.cachedir(current.stateroot)))
    with reporter.step("Resolving dependencies"):
        return solver.resolve(requests, recommends)


def pin_candidate(c: Candidate, requested: bool) -> m.PinnedPackage:
    n = c.nevra
    return m.PinnedPackage(
        nevra=str(n),
        name=n.name,
        epoch=n.epoch,
        version=n.version,
        release=n.release,
        arch=n.arch,
        repo=c.repo,
        checksum=c.checksum,
        location=c.location,
        baseurl=c.baseurl,
        requested=requested,
    )


def _entry(c: Candidate, solved: SolveResult, **extra: str) -> m.PackageEntry:
    requested = c.nevra.name in solved.requested
    return m.PackageEntry(
        nevra=str(c.nevra),
        name=c.nevra.name,
        evr=c.nevra.evr,
        arch=c.nevra.arch,
        repo=c.repo,
        checksum=c.checksum,
        reason="requested" if requested else "dependency",
        why=solved.why.get(c.nevra.name, [c.nevra.name]),
        **extra,
    )


def _resolution(layered: list[LayeredPackage], solved: SolveResult) -> m.Resolution:
    before = {p.nevra.name: p for p in layered}
    after = {c.nevra.name: c for c in solved.packages}
    added: list[m.PackageEntry] = []
    removed: list[m.PackageEntry] = []
    upgraded: list[m.PackageEntry] = []
    downgraded: list[m.PackageEntry] = []
    for name, c in after.items():
        old = before.get(name)
        if old is None:
            added.append(_entry(c, solved))
        elif old.nevra != c.nevra:
            entry = _entry(c, solved, before=str(old.nevra), after=str(c.nevra))
            (upgraded if evr_compare(c.nevra, old.nevra) > 0 else downgraded).append(entry)
    for name, p in before.items():
        if name not in after:
            removed.append(
                m.PackageEntry(
                    nevra=str(p.nevra),
                    name=name,
                    evr=p.nevra.evr,
                    arch=p.nevra.arch,
                    repo=p.repo,
                    checksum=p.checksum,
                    reason="dependency",
                    why=[],
                )
            )
    inactive = [m.InactiveRequest(spec=s, provided_by=by) for s, by in solved.inactive]
    return m.Resolution(added=added, removed=removed, upgraded=upgraded, downgraded=downgraded, inactive=inactive)


def _request_changes(
    current: DeploymentState, loaded: LoadedOrigin, base: str, solved: SolveResult
) -> list[m.RequestChange]:
    desired = loaded.desired
    changes: list[m.RequestChange] = []
    base_change = None
    if desired.origin.baserefspec != current.refspec:
        before = f"{current.refspec} ({current.base_checksum[:12]})"
        base_change = ("baserefspec changed", before, f"{desired.origin.baserefspec} ({base[:12]})")
    elif base != current.base_checksum:
        base_change = ("the base ref moved to a new commit", current.base_checksum[:12], base[:12])
    if base_change:
        reason, before, after = base_change
        changes.append(
            m.RequestChange(
                address="base",
                kind=m.ChangeKind.BASE,
                name=desired.origin.baserefspec,
                actions=[m.Action.UPDATE],
                reason=reason,
                before=before,
                after=after,
            )
        )
    inactive = dict(solved.inactive)
    wanted = set(desired.packages.requested)
    had = set(current.requested)
    for spec in sorted(wanted | had):
        if spec in wanted and spec not in had:
            action, reason = m.Action.CREATE, "requested"
        elif spec in had and spec not in wanted:
            action, reason = m.Action.DELETE, "no longer requested"
        elif spec in inactive:
            action, reason = m.Action.NOOP, "still requested"
        else:
            continue
        if spec in inactive:
            reason += f"; inactive: provided by base package {inactive[spec]}"
        changes.append(
            m.RequestChange(
                address=f"package/{spec}",
                kind=m.ChangeKind.PACKAGE,
                name=spec,
                actions=[action],
                reason=reason,
            )
        )
    return changes


def _prior(current: DeploymentState, loaded: LoadedOrigin) -> m.Prior:
    return m.Prior(
        stateroot=current.stateroot,
        deployment=current.id,
        checksum=current.checksum,
        base_checksum=current.base_checksum,
        refspec=current.refspec,
        requested=current.requested,
        layered=[str(p.nevra) for p in current.layered],
        state_digest=current.state_digest,
        fingerprint=m.fingerprint(current.id, current.base_checksum, current.requested, loaded.sha256),
    )


def _summary(resolution: m.Resolution, has_changes: bool, needs_deployment: bool) -> m.Summary:
    counts = {k: len(getattr(resolution, k)) for k in ("added", "removed", "upgraded", "downgraded")}
    if not has_changes:
        text = "No changes: the deployment already matches the origin."
    elif not needs_deployment:
        text = "Only the deployment's recorded origin changes; no new deployment is needed."
    else:
        text = (
            f"{counts['added']} to add, {counts['removed']} to remove, {counts['upgraded']} to upgrade, "
            f"{counts['downgraded']} to downgrade; a new deployment will be created."
        )
    return m.Summary(text=text, **counts)

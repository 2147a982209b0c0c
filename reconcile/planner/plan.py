"""`make_plan()`: read the deployed state and the desired origin, resolve, check, and return a frozen Plan."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile import __version__
from reconcile.apply.pkgcache import PackageCache, owners_in_commit
from reconcile.context import Context
from reconcile.errors import ReconcileError
from reconcile.origin import LoadedOrigin
from reconcile.ostree import Deployment
from reconcile.planner import model as m
from reconcile.planner.changes import request_changes, resolution_diff
from reconcile.planner.local import LocalPackage, read_local
from reconcile.planner.preflight import conflict_checks, package_checks, package_header
from reconcile.planner.solver import Candidate, Solver, SolveResult, Source
from reconcile.planner.state import DeploymentState, current_deployment
from reconcile.repos.config import load_repo_configs
from reconcile.repos.metadata import fetch_filelists, refresh
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.rpmdb import TreeRpmdbReader, read_headers
from reconcile.selinux import policy_id


@dataclass
class Resolved:
    """What resolution and checks produced, before it is frozen into the Plan."""

    solved: SolveResult = field(default_factory=SolveResult)
    checks: list[m.Check] = field(default_factory=list)


def default_reposdir(ctx: Context, dep: Deployment) -> Path:
    """Like rpm-ostree: the repos configured in the deployment's own /etc."""
    if str(ctx.sysroot.path) == "/":
        return Path("/etc/yum.repos.d")
    return ctx.sysroot.deployment_dir(dep) / "etc" / "yum.repos.d"


def make_plan(
    ctx: Context, loaded: LoadedOrigin, reposdir: Path | None, stateroot: str | None, *, update: bool = False
) -> m.Plan:
    current, dep = current_deployment(ctx.sysroot, ctx.repo, stateroot)
    desired = loaded.desired
    refspec = desired.origin.baserefspec
    base = ctx.repo.resolve(refspec)
    if base is None:
        raise ReconcileError(
            f"The baserefspec {refspec!r} in {loaded.path} is not a ref in the sysroot's repo ({ctx.repo.path}).",
            hint="Pull or create the base ref first (ostree pull / pull-local), or fix baserefspec.",
        )
    local = [read_local(p, loaded.path) for p in desired.packages.local]
    pins = sorted(p.pin for p in local)
    normalized = {**desired.normalized(), "local": pins}
    needs_origin_update = normalized != current.normalized_origin()
    resolved = Resolved()
    if _converged(current, base, needs_origin_update, update):
        resolved = Resolved(_as_deployed(current))
    elif desired.packages.requested or local or desired.overrides.remove:
        repos = reposdir or default_reposdir(ctx, dep)
        resolved = _resolve(ctx, current, base, loaded, local, repos, update)
    solved = resolved.solved

    inactive = {spec for spec, _by in solved.inactive}
    active = sorted(spec for spec in desired.packages.requested if spec not in inactive)
    removed = [str(n) for n in solved.removed_base]
    digest = None
    if solved.packages or removed:
        digest = m.state_digest(
            base,
            active,
            desired.options.recommends,
            [(str(c.nevra), c.checksum) for c in solved.packages],
            removed,
            policy_id(ctx.repo, base),
            desired.options.ignore_scripts,
        )
    prior_key = ("layered", current.state_digest) if current.is_layered else ("base", current.checksum)
    needs_deployment = prior_key != (("layered", digest) if digest else ("base", base))

    resolution = resolution_diff(current, solved)
    errors = [c.message for c in resolved.checks if c.severity == "error"]
    has_changes = needs_deployment or needs_origin_update
    return m.Plan(
        tool_version=__version__,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        origin=m.OriginRef(path=str(loaded.path), sha256=loaded.sha256, desired=normalized),
        prior=_prior(current, loaded),
        changes=request_changes(current, loaded, base, solved, local),
        resolution=resolution,
        target=m.Target(
            base_refspec=refspec,
            base_checksum=base,
            packages=[pin_candidate(c, c.nevra.name in solved.requested) for c in solved.packages] if digest else [],
            remove_base=removed,
            local=pins,
            active_requests=active if digest else [],
            state_digest=digest,
            needs_deployment=needs_deployment,
            needs_origin_update=needs_origin_update,
        ),
        checks=resolved.checks,
        summary=_summary(resolution, has_changes, needs_deployment),
        has_changes=has_changes,
        applyable=not errors,
        errors=errors,
        warnings=[c.message for c in resolved.checks if c.severity == "warning"],
    )


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
    )


def _resolve(
    ctx: Context,
    current: DeploymentState,
    base: str,
    loaded: LoadedOrigin,
    local: list[LocalPackage],
    reposdir: Path,
    update: bool,
) -> Resolved:
    desired, reporter = loaded.desired, ctx.reporter
    solver = Solver(ctx.arch)
    with reporter.step("Reading the rpmdb"):
        solver.add_base(lambda: read_headers(ctx.repo, base), ctx.cachedir(current.stateroot) / f"base-{base}.solv")
        layered_headers: dict[str, Header] = {}
        if current.layered:
            layered = {str(p.nevra): p for p in current.layered}
            with TreeRpmdbReader(ctx.repo, current.checksum) as db:
                for hdr in db.named({p.nevra.name for p in current.layered}):
                    if str(Nevra.from_header(hdr)) in layered:
                        layered_headers[str(Nevra.from_header(hdr))] = hdr
            solver.add_layered(
                list(layered_headers.values()), {n: Source(p.checksum, p.repo) for n, p in layered.items()}
            )
    locals_ = [solver.add_local(p.headers.header, _local_source(p)) for p in local]
    if desired.packages.requested or local:
        configs = load_repo_configs(reposdir, {"basearch": ctx.arch, "arch": ctx.arch})
        with reporter.step("Refreshing repo metadata"):
            for cfg in configs:
                solver.add_repo(refresh(cfg, ctx.cachedir(current.stateroot)))
    if any(spec.startswith("/") for spec in desired.packages.requested):
        with reporter.step("Loading file lists"):
            solver.add_filelists(fetch_filelists)
    with reporter.step("Resolving dependencies"):
        solved = solver.resolve(
            desired.packages.requested,
            desired.options.recommends,
            remove=desired.overrides.remove,
            update=update,
            local=locals_,
        )
    removed = {str(n) for n in solved.removed_base}
    with reporter.step("Checking the packages to add"):
        ignore = desired.options.ignore_scripts
        checks = _preflight(ctx, current, base, removed, layered_headers, solved, local, ignore)
    for pkg, kind, other in solved.clashes:
        # The solver only succeeds when the clashing base package goes; say so, it is easy to miss.
        severity = "info" if other in removed else "error"
        message = f"{pkg} {kind} the base package {other}" + (
            ", which overrides.remove drops." if other in removed else "."
        )
        checks.append(m.Check(kind=f"base-{kind}", severity=severity, package=pkg, message=message))
    return Resolved(solved, checks)


def _local_source(p: LocalPackage) -> Source:
    return Source(f"sha256:{p.sha256}", "@local", p.path.name, f"file://{p.path.parent}")


def _preflight(
    ctx: Context,
    current: DeploymentState,
    base: str,
    removed: set[str],
    layered_headers: dict[str, Header],
    solved: SolveResult,
    local: list[LocalPackage],
    ignore: list[str],
) -> list[m.Check]:
    """Scriptlets, paths, owners and file conflicts of every package the plan adds (all of them when the
    base changes), from headers only: nothing is downloaded in full or built yet."""
    kept = {(str(p.nevra), p.checksum) for p in current.layered}
    base_changed = base != current.base_checksum
    new = {str(c.nevra) for c in solved.packages if base_changed or (str(c.nevra), c.checksum) not in kept}
    if not new:
        return []
    cache = PackageCache(ctx.repo, owners=None, labeler=None, mode="layer")
    header_cache = ctx.cachedir(current.stateroot) / "headers"
    locals_by_nevra = {str(p.nevra): p for p in local}
    headers: dict[str, Header] = {}
    for c in solved.packages:
        n = str(c.nevra)
        if n in locals_by_nevra:
            headers[n] = locals_by_nevra[n].headers.header
        elif (n, c.checksum) in kept and n in layered_headers:
            headers[n] = layered_headers[n]
        else:
            headers[n] = package_header(c, cache, header_cache)
    owners = owners_in_commit(ctx.repo, base)
    checks = [check for n in sorted(new) for check in package_checks(n, headers[n], owners, ignore)]
    return checks + conflict_checks(ctx.repo, base, headers, new, removed)


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
    counts: dict[str, Any] = {k: len(getattr(resolution, k)) for k in ("added", "removed", "upgraded", "downgraded")}
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

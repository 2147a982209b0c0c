"""`make_plan()`: read the deployed state and the desired origin, resolve, check, and return a frozen Plan."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile import __version__
from reconcile.accounts import Declared, declared, sysusers_paths, sysusers_texts
from reconcile.context import Context
from reconcile.deployed import DeploymentState, current_deployment
from reconcile.errors import ReconcileError
from reconcile.origin import LoadedOrigin, is_keyfile
from reconcile.origin_keyfile import refusal
from reconcile.ostree import Deployment
from reconcile.pkgcache import PackageCache, owners_in_commit
from reconcile.planner import model as m
from reconcile.planner import sources
from reconcile.planner.changes import request_changes, resolution_diff
from reconcile.planner.local import LocalPackage, cached_local, read_local
from reconcile.planner.pins import pin_candidate
from reconcile.planner.preflight import conflict_checks, package_checks
from reconcile.planner.signing import signature_checks
from reconcile.planner.solver import Candidate, Solver, SolveResult, Source
from reconcile.repos.host import open_deployment_repos
from reconcile.repos.metadata import RepoMetadata
from reconcile.repos.source import RepoSet, wanted
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra, pkgcache_ref
from reconcile.rpm.rpmdb import TreeRpmdbReader, read_headers
from reconcile.selinux import policy_id


@dataclass
class Resolved:
    """What resolution and checks produced, before it is frozen into the Plan."""

    solved: SolveResult = field(default_factory=SolveResult)
    checks: list[m.Check] = field(default_factory=list)
    keys: list[m.SigningKey] = field(default_factory=list)
    repos: list[m.RepoUsed] = field(default_factory=list)
    releasever: str | None = None


def make_plan(
    ctx: Context,
    loaded: LoadedOrigin,
    reposdir: Path | None,
    stateroot: str | None,
    *,
    update: bool = False,
    whole_packages: bool = False,
) -> m.Plan:
    """`whole_packages`: download the packages to add now (apply needs them next) instead of their headers."""
    current, dep = current_deployment(ctx.sysroot, ctx.repo, stateroot)
    desired = loaded.desired
    refspec = desired.origin.baserefspec
    base = ctx.repo.resolve(refspec)
    if base is None:
        raise ReconcileError(
            f"The baserefspec {refspec!r} in {loaded.path} is not a ref in the sysroot's repo ({ctx.repo.path}).",
            hint="Pull or create the base ref first (ostree pull / pull-local), or fix baserefspec.",
        )
    if current.unsupported_origin_keys:
        raise refusal(f"The origin of deployment {current.id} (rpm-ostree's)", current.unsupported_origin_keys)
    if is_keyfile(loaded.path):  # rpm-ostree's `<sha256>:<nevra>` pins, resolved against the package cache
        local = [
            cached_local(p, loaded.path, PackageCache(ctx.repo, None, None, "layer")) for p in desired.packages.local
        ]
    else:
        local = [read_local(p, loaded.path) for p in desired.packages.local]
    pins = sorted(p.pin for p in local)
    normalized = {**desired.normalized(), "local": pins}
    needs_origin_update = normalized != current.normalized_origin()
    resolved = Resolved()
    if _converged(current, base, needs_origin_update, update):
        resolved = Resolved(_as_deployed(current))
    elif desired.packages.requested or local or desired.overrides.remove:
        resolved = _resolve(ctx, current, dep, base, loaded, local, reposdir, update, whole_packages)
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
        origin=m.OriginRef(path=str(loaded.path.absolute()), sha256=loaded.sha256, desired=normalized),
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
            releasever=resolved.releasever,
            state_digest=digest,
            needs_deployment=needs_deployment,
            needs_origin_update=needs_origin_update,
        ),
        checks=resolved.checks,
        repos=resolved.repos,
        keys=resolved.keys,
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
    dep: Deployment,
    base: str,
    loaded: LoadedOrigin,
    local: list[LocalPackage],
    reposdir: Path | None,
    update: bool,
    whole_packages: bool,
) -> Resolved:
    desired, reporter = loaded.desired, ctx.reporter
    cache_root = ctx.cachedir(current.stateroot)
    solver = Solver(ctx.arch)
    with reporter.step("Reading the rpmdb"):
        solver.add_base(lambda: read_headers(ctx.repo, base), cache_root / f"base-{base}.solv")
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
    resolved = Resolved()
    repos = None
    if desired.packages.requested or local:
        detected = sources.releasever(ctx, solver, base)
        local_check, override = desired.options.localpkg_gpgcheck, desired.options.releasever
        repos = open_deployment_repos(ctx, dep, reposdir, cache_root, detected, local_check, override=override)
        resolved.releasever = repos.releasever
        with reporter.step("Refreshing repo metadata"):
            for meta in repos.load_metadata(force=update):
                solver.add_repo(meta)
                resolved.repos.append(_repo_used(meta))
    if repos is not None and any(spec.startswith("/") for spec in desired.packages.requested):
        with reporter.step("Loading file lists"):
            solver.add_filelists(repos.filelists)
    with reporter.step("Resolving dependencies"):
        try:
            solved = solver.resolve(
                desired.packages.requested,
                desired.options.recommends,
                remove=desired.overrides.remove,
                update=update,
                local=locals_,
                filelists=repos.filelists if repos is not None else None,
            )
        except ReconcileError as e:
            if repos is not None and repos.unavailable:
                raise sources.unavailable_error(repos, e) from None
            raise
    removed = {str(n) for n in solved.removed_base}
    resolved.solved = solved
    cache = PackageCache(ctx.repo, owners=None, labeler=None, mode="layer")
    new = _new_packages(current, base, solved)
    warnings = sources.require_unavailable_repos(repos, new, cache, update) if repos is not None else []
    with reporter.step("Checking the packages to add"):
        ignore = desired.options.ignore_scripts
        preflight = _preflight(
            ctx, current, base, removed, layered_headers, solved, new, local, ignore, repos, cache, whole_packages
        )
        resolved.checks, resolved.keys = preflight
    for pkg, kind, other in solved.clashes:
        # The solver only succeeds when the clashing base package goes; say so, it is easy to miss.
        severity = "info" if other in removed else "error"
        message = f"{pkg} {kind} the base package {other}" + (
            ", which overrides.remove drops." if other in removed else "."
        )
        resolved.checks.append(
            m.Check(kind=m.CheckKind(f"base-{kind}"), severity=m.Severity(severity), package=pkg, message=message)
        )
    for text in [*(repos.warnings if repos is not None else []), *warnings]:
        resolved.checks.append(m.Check(kind=m.CheckKind.REPO, severity=m.Severity.WARNING, message=text))
    return resolved


def _repo_used(meta: RepoMetadata) -> m.RepoUsed:
    cfg = meta.config
    return m.RepoUsed(
        id=cfg.id,
        file=str(cfg.source),
        url=meta.baseurl,
        revision=meta.revision,
        repomd_sha256=meta.repomd_sha256,
        gpgcheck=cfg.gpgcheck,
        repo_gpgcheck=cfg.repo_gpgcheck,
    )


def _local_source(p: LocalPackage) -> Source:
    if p.path is None:  # in the package cache only: apply reuses its commit
        return Source(f"sha256:{p.sha256}", "@local")
    return Source(f"sha256:{p.sha256}", "@local", p.path.name, f"file://{p.path.parent}")


def _new_packages(current: DeploymentState, base: str, solved: SolveResult) -> list[Candidate]:
    """What the plan adds (everything, when the base changes: it is all checked against the new base)."""
    kept = current.kept_builds
    base_changed = base != current.base_checksum
    return [c for c in solved.packages if base_changed or (str(c.nevra), c.checksum) not in kept]


def _preflight(
    ctx: Context,
    current: DeploymentState,
    base: str,
    removed: set[str],
    layered_headers: dict[str, Header],
    solved: SolveResult,
    new_packages: list[Candidate],
    local: list[LocalPackage],
    ignore: list[str],
    repos: RepoSet | None,
    cache: PackageCache,
    whole: bool,
) -> tuple[list[m.Check], list[m.SigningKey]]:
    """Signatures, scriptlets, paths, owners and file conflicts of every package the plan adds, from headers
    only: nothing is downloaded in full or built yet."""
    new = {str(c.nevra) for c in new_packages}
    if not new:
        return [], []
    kept = current.kept_builds
    locals_by_nevra = {str(p.nevra): p for p in local}
    headers: dict[str, Header] = {}
    raws: dict[str, tuple[str, bytes]] = {}
    to_read = []
    for c in solved.packages:
        n = str(c.nevra)
        if n in locals_by_nevra:
            headers[n] = locals_by_nevra[n].headers.header
            raws[n] = (c.repo, locals_by_nevra[n].headers.raw)
        elif (n, c.checksum) in kept and n in layered_headers and n not in new:
            headers[n] = layered_headers[n]
        elif (n, c.checksum) in kept and n in layered_headers and cache.cached_raw(c.nevra, c.checksum) is None:
            headers[n] = layered_headers[n]  # a kept package whose cache entry is gone: its rpmdb header
        else:
            to_read.append(c)
    header_cache = ctx.cachedir(current.stateroot) / "headers"
    repo_of = {str(c.nevra): c.repo for c in solved.packages}
    for n, read in sources.read_headers(to_read, cache, header_cache, repos, whole=whole).items():
        headers[n], raws[n] = read.header, (repo_of[n], read.raw)
    for c in solved.packages:  # kept packages are reused from the cache: their signatures are checked too
        raw = cache.cached_raw(c.nevra, c.checksum) if str(c.nevra) not in raws else None
        if raw is not None:
            raws[str(c.nevra)] = (c.repo, raw)
    checks, keys = signature_checks(raws, repos, new)
    refused = {c.package for c in checks}
    if repos is not None and refused:  # a package downloaded whole for the check must not stay behind
        repos.discard([wanted(c) for c in to_read if str(c.nevra) in refused])
    owners = owners_in_commit(ctx.repo, base)
    usable = [c for c in solved.packages if str(c.nevra) not in refused]
    declared_accounts = _declared_accounts(ctx, usable, headers, locals_by_nevra, repos)
    checks += [check for n in sorted(new) for check in package_checks(n, headers[n], owners, ignore, declared_accounts)]
    return checks + conflict_checks(ctx.repo, base, headers, new, removed), keys


def _declared_accounts(
    ctx: Context,
    packages: list[Candidate],
    headers: dict[str, Header],
    local: dict[str, LocalPackage],
    repos: RepoSet | None,
) -> Declared:
    """The accounts apply will create, decided by the same code: a package that ships sysusers.d files is read
    from its cache commit, or downloaded now (apply would next) to read them."""
    accounts = Declared()
    for c in packages:
        hdr = headers[str(c.nevra)]
        paths = sysusers_paths(hdr)
        rpm = local[str(c.nevra)].path if str(c.nevra) in local else None  # None: read from the package cache
        if paths and rpm is None and ctx.repo.resolve(pkgcache_ref(c.nevra)) is None and repos is not None:
            rpm = repos.download([wanted(c)])[str(c.nevra)]
        accounts += declared(hdr, str(c.nevra), sysusers_texts(ctx.repo, c.nevra, rpm, paths))
    return accounts


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
    kinds = ("added", "removed", "upgraded", "downgraded", "replaced")
    counts: dict[str, Any] = {k: len(getattr(resolution, k)) for k in kinds}
    if not has_changes:
        text = "No changes: the deployment already matches the origin."
    elif not needs_deployment:
        text = "Only the deployment's recorded origin changes; no new deployment is needed."
    else:
        text = (
            f"{counts['added']} to add, {counts['removed']} to remove, {counts['upgraded']} to upgrade, "
            f"{counts['downgraded']} to downgrade"
            + (f", {counts['replaced']} to replace" if counts["replaced"] else "")
            + "; a new deployment will be created."
        )
    return m.Summary(text=text, **counts)

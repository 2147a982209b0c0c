"""Resolution and pre-flight checks over the planner's ports: the base and layered packages into the resolver,
the source's repos next, then the checks of every package the plan adds, from headers only."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconcile.accounts import Declared, declared, sysusers_paths
from reconcile.deployed import DeploymentState
from reconcile.errors import PackageError, ReconcileError
from reconcile.origin import LoadedOrigin
from reconcile.planner import model as m
from reconcile.planner.local import LocalPackage
from reconcile.planner.ports import DeployedSystem, PackageSource, Resolver, SourceOpener
from reconcile.planner.preflight import conflict_checks, package_checks
from reconcile.planner.solver import Candidate, SolveResult, Source
from reconcile.rpm.header import Header


@dataclass
class Resolved:
    """What resolution and checks produced, before it is frozen into the Plan."""

    solved: SolveResult = field(default_factory=SolveResult)
    checks: list[m.Check] = field(default_factory=list)
    keys: list[m.SigningKey] = field(default_factory=list)
    repos: list[m.RepoUsed] = field(default_factory=list)
    releasever: str | None = None


@dataclass(frozen=True)
class Ports:
    system: DeployedSystem
    open_source: SourceOpener
    resolver: Resolver


def resolve(
    ports: Ports,
    current: DeploymentState,
    base: str,
    loaded: LoadedOrigin,
    local: list[LocalPackage],
    update: bool,
    whole_packages: bool,
    replace_local: list[LocalPackage] | None = None,
) -> Resolved:
    """Load what is installed, open the repos, solve, then check what the plan adds."""
    system, resolver, desired = ports.system, ports.resolver, loaded.desired
    layered_headers = _load_installed(system, resolver, current, base)
    locals_ = [resolver.add_local(p.headers.header, _local_source(p)) for p in local]
    replacing = [resolver.add_local(p.headers.header, _local_source(p)) for p in replace_local or []]
    local = [*local, *(replace_local or [])]  # from here on, local files are local files, whatever they replace
    resolved = Resolved()
    source = None
    if desired.packages.requested or local or desired.overrides.replace:
        source = _open_source(ports, current, base, loaded)
        resolved.releasever = source.releasever
        with system.reporter.step("Refreshing repo metadata"):
            resolved.repos = source.feed(resolver, force=update)
    resolved.solved = solved = _solve(system, resolver, source, loaded, (locals_, replacing), update)
    new = _new_packages(current, base, solved)
    warnings = source.require_unavailable(new, update) if source is not None else []
    with system.reporter.step("Checking the packages to add"):
        inputs = _PreflightInputs(current, base, layered_headers, solved, new, local, whole_packages)
        resolved.checks, resolved.keys = _preflight(system, source, inputs, desired.options.ignore_scripts)
    resolved.checks += _clash_checks(solved)
    for text in [*(source.warnings if source is not None else []), *warnings]:
        resolved.checks.append(m.Check(kind=m.CheckKind.REPO, severity=m.Severity.WARNING, message=text))
    return resolved


def _load_installed(
    system: DeployedSystem, resolver: Resolver, current: DeploymentState, base: str
) -> dict[str, Header]:
    """The base's packages (installed and locked) and the layered ones (favoured); the layered headers."""
    with system.reporter.step("Reading the rpmdb"):
        resolver.add_base(lambda: system.base_headers(base), system.solv_cache(base, current.stateroot))
        layered_headers = system.layered_headers(current)
        kept = [*current.layered, *(r.package for r in current.replaced_base)]
        if kept:
            sources = {str(p.nevra): Source(p.checksum, p.repo) for p in kept}
            resolver.add_layered(list(layered_headers.values()), sources)
    return layered_headers


def _open_source(ports: Ports, current: DeploymentState, base: str, loaded: LoadedOrigin) -> PackageSource:
    """The repos, opened with the base's $releasever: its system-release, else its os-release VERSION_ID."""
    detected = ports.resolver.base_release() or ports.system.os_release_version(base)
    options = loaded.desired.options
    return ports.open_source(current, detected, options.localpkg_gpgcheck, options.releasever)


def _solve(
    system: DeployedSystem,
    resolver: Resolver,
    source: PackageSource | None,
    loaded: LoadedOrigin,
    locals_: tuple[list, list],
    update: bool,
) -> SolveResult:
    desired = loaded.desired
    if source is not None and any(spec.startswith("/") for spec in desired.packages.requested):
        with system.reporter.step("Loading file lists"):
            resolver.add_filelists(source.filelists)
    with system.reporter.step("Resolving dependencies"):
        try:
            return resolver.resolve(
                desired.packages.requested,
                desired.options.recommends,
                remove=desired.overrides.remove,
                update=update,
                local=locals_[0],
                filelists=source.filelists if source is not None else None,
                replace=desired.overrides.replace,
                replace_local=locals_[1],
            )
        except ReconcileError as e:
            down = source.unavailable_error(e) if source is not None else None
            if down is not None:
                raise down from None
            raise


def _clash_checks(solved: SolveResult) -> list[m.Check]:
    """The solver only succeeds when the clashing base package goes; say so, it is easy to miss."""
    removed = {str(n) for n in solved.erased}
    checks = []
    for pkg, kind, other in solved.clashes:
        severity = "info" if other in removed else "error"
        message = f"{pkg} {kind} the base package {other}" + (
            ", which overrides.remove drops." if other in removed else "."
        )
        checks.append(
            m.Check(kind=m.CheckKind(f"base-{kind}"), severity=m.Severity(severity), package=pkg, message=message)
        )
    return checks


def _local_source(p: LocalPackage) -> Source:
    if p.path is None:  # in the package cache only: apply reuses its commit
        return Source(f"sha256:{p.sha256}", "@local")
    return Source(f"sha256:{p.sha256}", "@local", p.path.name, f"file://{p.path.parent}")


def _new_packages(current: DeploymentState, base: str, solved: SolveResult) -> list[Candidate]:
    """What the plan adds (everything, when the base changes: it is all checked against the new base)."""
    base_changed = base != current.base_checksum
    return [c for c in solved.installs if base_changed or not current.keeps(str(c.nevra), c.checksum)]


@dataclass(frozen=True)
class _PreflightInputs:
    current: DeploymentState
    base: str
    layered_headers: dict[str, Header]
    solved: SolveResult
    new_packages: list[Candidate]
    local: list[LocalPackage]
    whole: bool


def _preflight(
    system: DeployedSystem, source: PackageSource | None, inputs: _PreflightInputs, ignore: list[str]
) -> tuple[list[m.Check], list[m.SigningKey]]:
    """Signatures, scriptlets, paths, owners and file conflicts of every package the plan adds, from headers
    only: nothing is downloaded in full or built yet."""
    new = {str(c.nevra) for c in inputs.new_packages}
    if not new:
        return [], []
    headers, raws, read = _headers(system, source, inputs)
    checks, keys = source.signature_checks(raws, new) if source is not None else ([], [])
    refused = {c.package for c in checks}
    if source is not None and refused:  # a package downloaded whole for the check must not stay behind
        source.discard([c for c in read if str(c.nevra) in refused])
    owners = system.owners(inputs.base)
    usable = [c for c in inputs.solved.installs if str(c.nevra) not in refused]
    accounts = _declared_accounts(system, source, usable, headers, {str(p.nevra): p for p in inputs.local})
    checks += [check for n in sorted(new) for check in package_checks(n, headers[n], owners, ignore, accounts)]
    removed = {str(n) for n in inputs.solved.erased}
    return checks + conflict_checks(system, inputs.base, headers, new, removed), keys


def _headers(
    system: DeployedSystem, source: PackageSource | None, inputs: _PreflightInputs
) -> tuple[dict[str, Header], dict[str, tuple[str, bytes]], list[Candidate]]:
    """Every resolved package's header, and the raw headers of those to check signatures of; the packages
    that had to be read from the source."""
    current, cache = inputs.current, system.packages
    new = {str(c.nevra) for c in inputs.new_packages}
    locals_by_nevra = {str(p.nevra): p for p in inputs.local}
    layered_headers = inputs.layered_headers
    headers: dict[str, Header] = {}
    raws: dict[str, tuple[str, bytes]] = {}
    to_read = []
    for c in inputs.solved.installs:
        n = str(c.nevra)
        if n in locals_by_nevra:
            headers[n] = locals_by_nevra[n].headers.header
            raws[n] = (c.repo, locals_by_nevra[n].headers.raw)
        elif current.keeps(n, c.checksum) and n in layered_headers and n not in new:
            headers[n] = layered_headers[n]
        elif current.keeps(n, c.checksum) and n in layered_headers and cache.cached_raw(c.nevra, c.checksum) is None:
            headers[n] = layered_headers[n]  # a kept package whose cache entry is gone: its rpmdb header
        else:
            to_read.append(c)
    if to_read and source is None:
        raise PackageError(f"The header of {to_read[0].nevra} is needed, but no repo is open to read it from.")
    repo_of = {str(c.nevra): c.repo for c in inputs.solved.installs}
    for n, read in (source.read_headers(to_read, inputs.whole) if source is not None and to_read else {}).items():
        headers[n], raws[n] = read.header, (repo_of[n], read.raw)
    for c in inputs.solved.installs:  # kept packages are reused from the cache: their signatures are checked too
        raw = cache.cached_raw(c.nevra, c.checksum) if str(c.nevra) not in raws else None
        if raw is not None:
            raws[str(c.nevra)] = (c.repo, raw)
    return headers, raws, to_read


def _declared_accounts(
    system: DeployedSystem,
    source: PackageSource | None,
    packages: list[Candidate],
    headers: dict[str, Header],
    local: dict[str, LocalPackage],
) -> Declared:
    """The accounts apply will create, decided by the same code: a package that ships sysusers.d files is read
    from its cache commit, or downloaded now (apply would next) to read them."""
    accounts = Declared()
    for c in packages:
        hdr = headers[str(c.nevra)]
        paths = sysusers_paths(hdr)
        rpm = local[str(c.nevra)].path if str(c.nevra) in local else None  # None: read from the package cache
        if paths and rpm is None and not system.packages.holds(c.nevra) and source is not None:
            rpm = source.download([c])[str(c.nevra)]
        accounts += declared(hdr, str(c.nevra), system.packages.sysusers(c.nevra, rpm, paths))
    return accounts

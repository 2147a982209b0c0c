"""Dependency resolution with libsolv: the base's packages installed and locked, the repos available.

The result is the real layering set. Requests the base already provides are inactive. Packages layered now
are favoured, so a newer version in a repo is not a change (converge, don't churn) unless `update` is asked
for. Every pulled-in dependency carries the chain of dependencies that explains it (explain.py).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import solv

from reconcile.errors import ResolutionError
from reconcile.planner.base_overrides import Replacements, base_jobs, replaced_pairs, replacement_jobs
from reconcile.planner.explain import Reason, explain
from reconcile.planner.solvfiles import describe_problem, load_solv, names_a_path, nevra_forms, write_solv
from reconcile.repos.metadata import RepoMetadata
from reconcile.repos.transfer import repo_label
from reconcile.rpm import header as h
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra

log = logging.getLogger("reconcile.solver")
FileLists = Callable[[RepoMetadata], Path | None]
BASE_REPO = "@base"
LAYERED_REPO = "@layered"
LOCAL_REPO = "@local"
_REL = ((h.SENSE_GREATER, solv.REL_GT), (h.SENSE_EQUAL, solv.REL_EQ), (h.SENSE_LESS, solv.REL_LT))
_DEP_KEYS = {
    "provides": solv.SOLVABLE_PROVIDES,
    "requires": solv.SOLVABLE_REQUIRES,
    "conflicts": solv.SOLVABLE_CONFLICTS,
    "obsoletes": solv.SOLVABLE_OBSOLETES,
    "recommends": solv.SOLVABLE_RECOMMENDS,
    "suggests": solv.SOLVABLE_SUGGESTS,
    "supplements": solv.SOLVABLE_SUPPLEMENTS,
    "enhances": solv.SOLVABLE_ENHANCES,
}


@dataclass(frozen=True)
class Source:
    """Where a header-backed package comes from: its repodata checksum, repo id and fetch location."""

    checksum: str
    repo: str
    location: str = ""
    baseurl: str = ""


@dataclass(frozen=True)
class Candidate:
    """A package chosen by the solver, with what apply needs to fetch exactly it."""

    nevra: Nevra
    repo: str
    checksum: str
    location: str
    baseurl: str
    size: int = 0
    header_end: int = 0  # where the header ends in the file (rpm:header-range), for a header-only read


@dataclass(frozen=True)
class BaseSwap:
    """A base package and the package that replaces it (`source`: "repo" or "local")."""

    base: Nevra
    package: Candidate
    source: str


@dataclass
class SolveResult:
    packages: list[Candidate] = field(default_factory=list)
    requested: set[str] = field(default_factory=set)
    inactive: list[tuple[str, str]] = field(default_factory=list)
    explain: Callable[[], dict[str, Reason]] | None = None
    _explained: dict[str, Reason] | None = None
    removed_base: list[Nevra] = field(default_factory=list)
    replaced_base: list[BaseSwap] = field(default_factory=list)
    clashes: list[tuple[str, str, str]] = field(default_factory=list)
    used_filelists: bool = False

    @property
    def installs(self) -> list[Candidate]:
        """Every package the tree gets: layered ones and base replacements."""
        return [*self.packages, *(r.package for r in self.replaced_base)]

    @property
    def erased(self) -> list[Nevra]:
        """Base packages whose files go: removed, or replaced."""
        return [*self.removed_base, *(r.base for r in self.replaced_base)]

    @property
    def reasons(self) -> dict[str, Reason]:
        """By NEVRA; computed on first use: a plan that changes no package never pays for the graph."""
        if self._explained is None:
            self._explained = self.explain() if self.explain else {}
        return self._explained


class Solver:
    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.pool = solv.Pool()
        # Distribution builds of libsolv may default to another package semantics (Debian's is deb).
        self.pool.setdisttype(solv.Pool.DISTTYPE_RPM)
        self.pool.setarch(arch)
        # As dnf: a package replaces another of its name only within one arch colour (multilib pairs coexist).
        self.pool.set_flag(solv.Pool.POOL_FLAG_IMPLICITOBSOLETEUSESCOLORS, 1)
        self.base = self.pool.add_repo(BASE_REPO)
        self.layered = self.pool.add_repo(LAYERED_REPO)
        self.local = self.pool.add_repo(LOCAL_REPO)
        self.repos: dict[str, RepoMetadata] = {}
        self._header_repos: list[solv.Repo] = []  # repos given as headers (add_packages), not as rpm-md
        self._data: dict[str, Any] = {}
        self._sources: dict[int, Source] = {}
        self._caches: dict[str, Path] = {}
        self._extended: set[str] = set()
        self._filelists_loaded = False
        self._excluded: dict[int, str] = {}  # solvable id -> which option of which repo hides it

    # -- loading ------------------------------------------------------------------------------------
    def add_repo(self, meta: RepoMetadata) -> None:
        """Load a repo's primary metadata, through a .solv cache keyed by the primary's checksum."""
        repo = self.pool.add_repo(meta.id)
        repo.appdata = meta
        # dnf's rule: a lower priority value wins, then a lower cost (libsolv prefers higher numbers).
        repo.priority = -meta.config.priority
        repo.subpriority = -meta.config.cost
        self.repos[meta.id] = meta
        cache = Path(str(meta.primary) + ".solv")
        self._caches[meta.id] = cache
        if load_solv(repo, cache):
            return
        f = solv.xfopen(str(meta.primary))
        if f is None or not repo.add_rpmmd(f, None):
            raise ResolutionError(
                f"The primary metadata of {repo_label(meta.config)}, {meta.primary_url} (kept as {meta.primary}), is "
                "corrupt: libsolv cannot read it as rpm-md, although its checksum matches repomd.xml.",
                [],
                hint="The repo publishes broken metadata; tell its maintainer, or disable the repo.",
            )
        f.close()
        write_solv(repo, cache)

    def add_packages(self, repo_id: str, packages: list[tuple[Header, Source]], priority: int = 99) -> None:
        """A repo given as package headers, each with where it comes from (a source that is not rpm-md)."""
        repo = self.pool.add_repo(repo_id)
        repo.priority = -priority
        for hdr, source in packages:
            self._sources[self._add_header(repo, hdr).id] = source
        self._header_repos.append(repo)

    def _remember_file_provides(self, added: list[int]) -> None:
        """Store the file provides libsolv just computed in each repo's .solv cache, as dnf and libsolv's
        own tools do: finding them again costs seconds on a big repo, loading them costs nothing."""
        for repo in self.pool.repos:
            cache = self._caches.get(repo.name)
            data = repo.first_repodata() if cache is not None and repo.name not in self._extended else None
            if data is None:
                continue
            known = set(data.lookup_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES))
            if set(added) <= known:
                continue
            for dep in added:
                data.add_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES, dep)
            data.internalize()
            write_solv(repo, cache)  # type: ignore[arg-type]

    def add_filelists(self, fetch: FileLists) -> None:
        """Complete file lists for every repo (primary lists only a few paths); only when needed."""
        self._filelists_loaded = True
        for repo in self.pool.repos:
            meta = self.repos.get(repo.name)
            path = fetch(meta) if meta is not None else None
            if path is None:
                continue
            self._extended.add(repo.name)  # file lists never go into the primary cache
            # The file provides remembered from primary alone would make libsolv skip the file lists.
            first = repo.first_repodata()
            if first is not None:
                first.unset(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES)
                first.internalize()
            f = solv.xfopen(str(path))
            if f is None or not repo.add_rpmmd(f, None, solv.Repo.REPO_EXTEND_SOLVABLES):
                raise ResolutionError(f"The file lists of [{meta.id if meta else repo.name}] cannot be read.", [])
            f.close()

    def add_base(self, headers: Callable[[], list[Header]], cache: Path | None = None) -> None:
        """The base's packages, with their file lists; cached as .solv by base commit (so a big base costs
        its header parsing once, not on every plan), with the file provides found in them, as a repo's cache."""
        if cache is not None:
            self._caches[self.base.name] = cache  # searching 200,000 base paths for them costs 0.09 s a plan
        if cache is not None and load_solv(self.base, cache):
            return
        for hdr in headers():
            self._add_header(self.base, hdr)
        self.base.internalize()
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_solv(self.base, cache)

    def add_layered(self, headers: list[Header], sources: dict[str, Source]) -> None:
        """The packages layered now, so they can be kept at their version even when a repo moved on."""
        for hdr in headers:
            s = self._add_header(self.layered, hdr)
            self._sources[s.id] = sources.get(str(Nevra.from_header(hdr)), Source("", ""))

    def add_local(self, hdr: Header, source: Source) -> solv.XSolvable:
        s = self._add_header(self.local, hdr)
        self._sources[s.id] = source
        return s

    def _add_header(self, repo: solv.Repo, hdr: Header) -> solv.XSolvable:
        s = repo.add_solvable()
        nevra = Nevra.from_header(hdr)
        s.name, s.arch, s.evr = nevra.name, nevra.arch, nevra.evr
        for kind, key in _DEP_KEYS.items():
            for dep in h.dependencies(hdr, kind):
                if dep.flags & h.SENSE_RPMLIB or dep.name.startswith("rpmlib("):
                    continue
                d = self._dep(dep.name, dep.flags, dep.version)
                if d is not None:
                    s.add_deparray(key, d)
        # The file list, the way libsolv's own rpmdb reader stores it: file provides and file selections
        # then work in C, for whatever paths the repos require.
        data = self._repodata(repo)
        dirs: dict[str, int] = {}
        for path in h.file_paths(hdr):
            dirname, _, basename = path.rpartition("/")
            if dirname not in dirs:
                dirs[dirname] = data.str2dir(dirname or "/")
            data.add_dirstr(s.id, solv.SOLVABLE_FILELIST, dirs[dirname], basename)
        return s

    def _repodata(self, repo: solv.Repo) -> Any:
        if repo.name not in self._data:
            self._data[repo.name] = repo.add_repodata(0)
        return self._data[repo.name]

    def _dep(self, name: str, flags: int, version: str) -> solv.Dep | None:
        if name.startswith("("):
            return self.pool.parserpmrichdep(name)
        d = self.pool.Dep(name)
        rel = sum(r for sense, r in _REL if flags & sense)
        return d.Rel(rel, self.pool.Dep(version)) if version and rel else d

    def _finish_loading(self) -> None:
        best = max(
            [-m.config.priority for m in self.repos.values()] + [r.priority for r in self._header_repos], default=0
        )
        for repo in self._header_repos:
            repo.internalize()
        for repo in (self.base, self.layered, self.local):
            repo.internalize()
            # Layered and local packages compete with the best repos, not below them (FAVOR keeps them).
            repo.priority = best
        self.pool.installed = self.base
        self._apply_filters()
        self._remember_file_provides(self.pool.addfileprovides_queue())
        self.pool.createwhatprovides()

    def _apply_filters(self) -> None:
        """excludepkgs / includepkgs, as libdnf applies them: the packages stay loaded but are not considered."""
        for repo in self.pool.repos:
            meta = self.repos.get(repo.name)
            if meta is None or not (meta.config.excludepkgs or meta.config.includepkgs):
                continue
            cfg = meta.config
            for s in repo.solvables:
                forms = nevra_forms(s)
                if cfg.includepkgs and not any(fnmatch.fnmatchcase(f, p) for f in forms for p in cfg.includepkgs):
                    self._excluded[s.id] = f"not in includepkgs of [{cfg.id}] ({cfg.where})"
                elif any(fnmatch.fnmatchcase(f, p) for f in forms for p in cfg.excludepkgs):
                    self._excluded[s.id] = f"excluded by excludepkgs of [{cfg.id}] ({cfg.where})"
        if self._excluded:
            considered = [s.id for repo in self.pool.repos for s in repo.solvables if s.id not in self._excluded]
            self.pool.set_considered_list(considered)

    def base_release(self) -> str | None:
        """dnf's $releasever from the base: the version a `system-release(releasever)` provide carries, else the
        version of the package providing it (or `system-release`)."""
        self.base.internalize()
        self.pool.createwhatprovides()
        for capability in ("system-release(releasever)", "system-release"):
            providers = sorted(
                (s for s in self.pool.whatprovides(self.pool.Dep(capability)) if s.repo == self.base),
                key=lambda s: s.name,
            )
            for s in providers:
                for dep in s.lookup_deparray(solv.SOLVABLE_PROVIDES):
                    name, _, version = str(dep).partition(" = ")
                    if name == capability and version and s.name != capability:
                        return version.split(":")[-1].split("-")[0]
                return s.evr.split(":")[-1].rsplit("-", 1)[0]
        return None

    # -- solving ------------------------------------------------------------------------------------
    def resolve(
        self,
        requests: list[str],
        recommends: bool,
        *,
        remove: tuple[str, ...] | list[str] = (),
        update: bool = False,
        local: tuple[solv.XSolvable, ...] | list[solv.XSolvable] = (),
        filelists: FileLists | None = None,
        replace: tuple[str, ...] | list[str] = (),
        replace_local: tuple[solv.XSolvable, ...] | list[solv.XSolvable] = (),
    ) -> SolveResult:
        """`filelists` fetches a repo's file lists, loaded only when a dependency on a path needs them."""
        self._finish_loading()
        result = SolveResult()
        swaps = replacement_jobs(self.pool, self.base, list(replace), list(replace_local), remove, self._excluded)
        jobs, dropped = base_jobs(self.pool, self.base, remove, set(swaps.names))
        result.removed_base = sorted(Nevra.from_evr(s.name, s.evr, s.arch) for s in dropped)
        jobs += swaps.jobs
        selections = self._requests(requests, dropped, result)
        jobs += [job for sel in selections for job in sel.jobs(solv.Job.SOLVER_INSTALL)]
        jobs += [self.pool.Job(solv.Job.SOLVER_SOLVABLE | solv.Job.SOLVER_INSTALL, s.id) for s in local]
        if not update:  # converge: what is layered stays at its version
            jobs += [
                self.pool.Job(solv.Job.SOLVER_SOLVABLE | solv.Job.SOLVER_FAVOR, s.id) for s in self.layered.solvables
            ]
        solver = self._solve_loading_filelists(jobs, recommends, filelists, result)
        self._record(solver, selections, list(local), result, swaps)
        return result

    def _requests(self, requests: list[str], dropped: set[solv.XSolvable], result: SolveResult) -> list[solv.Selection]:
        """The selection of each request; requests the base provides are inactive, unknown ones an error."""
        selections = []
        unknown = []
        for spec in requests:
            sel = self._select(spec)
            if sel.isempty() or all(s.id in self._excluded for s in sel.solvables()):
                unknown.append(spec)
                continue
            installed = [s for s in sel.solvables() if s.repo == self.base and s not in dropped]
            if installed:
                result.inactive.append((spec, str(installed[0])))
                continue
            selections.append(sel)
        if unknown:
            repos = ", ".join(f"[{r}]" for r in [*self.repos, *(r.name for r in self._header_repos)])
            where = f"the base or the enabled repos ({repos})" if repos else "the base (no repo is available)"
            raise ResolutionError(
                f"No package matches {', '.join(repr(u) for u in unknown)} in {where}.",
                [self._why_unknown(u) for u in unknown],
                hint="Check the spelling, or add the repo that ships it to --reposdir.",
            )
        return selections

    def _solve_loading_filelists(
        self, jobs: list[solv.Job], recommends: bool, filelists: FileLists | None, result: SolveResult
    ) -> solv.Solver:
        """Solve; when a dependency on a path primary.xml does not list fails or goes unmet, load the file
        lists (as libdnf does) and solve again. Raises the ResolutionError when there is no solution."""
        solver = self._solve(jobs, recommends)
        if solver is None or self._misses_a_file(solver):
            if filelists is not None and not self._filelists_loaded:
                self.add_filelists(filelists)
                self._finish_loading()
                result.used_filelists = True
                solver = self._solve(jobs, recommends)
            if solver is None:
                solver = self._solve(jobs, recommends, report=True)
        assert solver is not None
        return solver

    def _record(
        self,
        solver: solv.Solver,
        selections: list[solv.Selection],
        local: list[solv.XSolvable],
        result: SolveResult,
        swaps: Replacements,
    ) -> None:
        """The new packages, which of them were asked for, the base replacements, the why-graph (lazily) and the
        base clashes."""
        trans = solver.transaction()
        new = [s for s in trans.newsolvables() if s.repo != self.base]
        pairs = replaced_pairs(trans, new, self.base, swaps.names)
        swapped = {s for _old, s in pairs}
        chosen = set(new)
        asked = [s for sel in selections for s in sel.solvables() if s in chosen] + local
        result.requested.update(s.name for s in asked)
        result.packages = sorted((self._candidate(s) for s in new if s not in swapped), key=lambda c: c.nevra)
        result.replaced_base = [BaseSwap(old, self._candidate(s), swaps.names[s.name]) for old, s in pairs]
        requested_ids = {s.id for s in asked} | {s.id for s in swapped}
        result.explain = lambda: explain(self.pool, new, requested_ids)
        result.clashes = self._base_clashes(new)

    def _solve(self, jobs: list[solv.Job], recommends: bool, report: bool = False) -> solv.Solver | None:
        """A solver that found a solution; None on problems, or the ResolutionError with `report`."""
        solver = self.pool.Solver()
        solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, 0 if recommends else 1)
        problems = solver.solve(jobs)
        if not problems:
            return solver
        if not report and any(names_a_path(p) for p in problems):
            return None
        words = [describe_problem(p) for p in problems]
        hint = None
        if any(self._involves_base(p) for p in problems):
            hint = (
                "The base's packages are locked: a package that conflicts with, obsoletes or needs another "
                "version of one cannot be layered (overrides.remove can drop a base package)."
            )
        raise ResolutionError(
            "The requested packages cannot be layered onto this base: " + "; ".join(words) + ".", words, hint=hint
        )

    def _misses_a_file(self, solver: solv.Solver) -> bool:
        """A new package recommends a path nothing provides yet: the file lists may provide it."""
        for s in solver.transaction().newsolvables():
            for dep in s.lookup_deparray(solv.SOLVABLE_RECOMMENDS):
                if "/" in str(dep) and not self.pool.whatprovides(dep):
                    return True
        return False

    def _base_clashes(self, new: list[solv.XSolvable]) -> list[tuple[str, str, str]]:
        """(package, "conflicts"|"obsoletes", base package) for every new package that clashes with the base."""
        out = []
        for s in new:
            for key, kind in ((solv.SOLVABLE_CONFLICTS, "conflicts"), (solv.SOLVABLE_OBSOLETES, "obsoletes")):
                for dep in s.lookup_deparray(key):
                    for other in self.pool.whatprovides(dep):
                        if other.repo == self.base and (kind == "conflicts" or other.name == str(dep).split()[0]):
                            out.append((str(s), kind, str(other)))
        return out

    def _why_unknown(self, spec: str) -> str:
        flags = self._flags(spec) | solv.Selection.SELECTION_WITH_DISABLED
        hidden = [s for s in self.pool.select(spec, flags).solvables() if s.id in self._excluded]
        if hidden:
            return f"{spec}: " + "; ".join(f"{s} is {self._excluded[s.id]}" for s in hidden)
        others = self.pool.select(spec, self._flags(spec) | solv.Selection.SELECTION_WITH_BADARCH).solvables()
        if others:
            arches = ", ".join(sorted({s.arch for s in others}))
            return f"{spec}: built only for other architectures ({arches}), not for {self.arch}"
        return f"{spec}: no package by that name, capability or file exists"

    def _involves_base(self, problem: solv.Problem) -> bool:
        for rule in problem.findallproblemrules():
            info = rule.info()
            for s in (info.solvable, info.othersolvable):
                if s is not None and s.repo == self.base:
                    return True
        return False

    def _select(self, spec: str) -> solv.Selection:
        return self.pool.select(spec, self._flags(spec))

    @staticmethod
    def _flags(spec: str) -> int:
        flags = (
            solv.Selection.SELECTION_NAME
            | solv.Selection.SELECTION_PROVIDES
            | solv.Selection.SELECTION_CANON
            | solv.Selection.SELECTION_DOTARCH
            | solv.Selection.SELECTION_REL
        )
        return flags | solv.Selection.SELECTION_FILELIST if spec.startswith("/") else flags

    def _candidate(self, s: solv.XSolvable) -> Candidate:
        nevra = Nevra.from_evr(s.name, s.evr, s.arch)
        if s.id in self._sources:
            src = self._sources[s.id]
            twin = self._repo_twin(s, src.checksum) if s.repo in (self.layered, self.local) else None
            if twin is not None:
                return twin
            return Candidate(nevra, src.repo, src.checksum, src.location, src.baseurl)
        meta = self.repos[s.repo.name]
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        location, _medianr = s.lookup_location()
        checksum = f"{chk.typestr()}:{chk.hex()}" if chk else ""
        size = s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE)
        return Candidate(nevra, meta.id, checksum, location, meta.baseurl, size, s.lookup_num(solv.SOLVABLE_HEADEREND))

    def _repo_twin(self, s: solv.XSolvable, checksum: str) -> Candidate | None:
        """The same build in a repo, so a kept package can still be fetched if its cache is gone."""
        for other in self.pool.whatprovides(self.pool.Dep(s.name).Rel(solv.REL_EQ, self.pool.Dep(s.evr))):
            in_repo = other.repo.name in self.repos or other.repo in self._header_repos
            if in_repo and other.name == s.name and other.arch == s.arch:
                candidate = self._candidate(other)
                if not checksum or candidate.checksum == checksum:
                    return candidate
        return None

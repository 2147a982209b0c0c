"""Dependency resolution with libsolv: the base's packages installed and locked, the repos available.

The result is the real layering set: requested packages the base already provides are inactive, and every
pulled-in dependency carries the shortest chain of Requires/Recommends that explains it (networkx).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import solv

from reconcile.errors import ResolutionError
from reconcile.repos.metadata import RepoMetadata
from reconcile.rpm import header as h
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra

log = logging.getLogger("reconcile.solver")
BASE_REPO = "@base"
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
class Candidate:
    """A repo package chosen by the solver, with what apply needs to fetch exactly it."""

    nevra: Nevra
    repo: str
    checksum: str
    location: str
    baseurl: str


@dataclass
class SolveResult:
    packages: list[Candidate] = field(default_factory=list)
    requested: set[str] = field(default_factory=set)
    inactive: list[tuple[str, str]] = field(default_factory=list)
    why: dict[str, list[str]] = field(default_factory=dict)


class Solver:
    def __init__(self, arch: str) -> None:
        self.pool = solv.Pool()
        self.pool.setarch(arch)
        self.base = self.pool.add_repo(BASE_REPO)
        self.repos: dict[str, RepoMetadata] = {}
        self._base_headers: list[Header] = []

    def add_repo(self, meta: RepoMetadata) -> None:
        """Load a repo's primary metadata, through a .solv cache keyed by the primary's checksum."""
        repo = self.pool.add_repo(meta.id)
        cache = Path(str(meta.primary) + ".solv")
        if cache.exists():
            f = solv.xfopen(str(cache))
            ok = repo.add_solv(f)
            f.close()
            if ok:
                self.repos[meta.id] = meta
                return
            repo.empty()
        f = solv.xfopen(str(meta.primary))
        if f is None or not repo.add_rpmmd(f, None):
            raise ResolutionError(f"The primary metadata of [{meta.id}] cannot be read by libsolv.", [])
        f.close()
        self.repos[meta.id] = meta
        tmp = cache.with_name(cache.name + ".tmp")
        out = solv.xfopen(str(tmp), "w")
        if out is not None and repo.write(out):
            out.close()
            tmp.replace(cache)

    def add_base(self, headers: list[Header]) -> None:
        """The base's packages; their file lists are added later, only for paths something requires."""
        self._base_headers = headers
        for hdr in headers:
            s = self.base.add_solvable()
            nevra = Nevra.from_header(hdr)
            s.name, s.arch = nevra.name, nevra.arch
            s.evr = nevra.evr
            for kind, key in _DEP_KEYS.items():
                for dep in h.dependencies(hdr, kind):
                    if dep.flags & h.SENSE_RPMLIB or dep.name.startswith("rpmlib("):
                        continue
                    d = self._dep(dep.name, dep.flags, dep.version)
                    if d is not None:
                        s.add_deparray(key, d)

    def _dep(self, name: str, flags: int, version: str) -> solv.Dep | None:
        if name.startswith("("):
            return self.pool.parserpmrichdep(name)
        d = self.pool.Dep(name)
        rel = sum(r for sense, r in _REL if flags & sense)
        return d.Rel(rel, self.pool.Dep(version)) if version and rel else d

    def _finish_loading(self, extra_paths: list[str]) -> None:
        needed = {str(self.pool.id2str(i)) for i in self.pool.addfileprovides_queue()}
        needed.update(p for p in extra_paths if p.startswith("/"))
        if needed and self._base_headers:
            for s, hdr in zip(self.base.solvables, self._base_headers, strict=True):
                for path in h.file_paths(hdr):
                    if path in needed:
                        s.add_deparray(solv.SOLVABLE_PROVIDES, self.pool.Dep(path))
        self.base.internalize()
        self.pool.installed = self.base
        self.pool.createwhatprovides()

    def resolve(self, requests: list[str], recommends: bool) -> SolveResult:
        self._finish_loading(requests)
        result = SolveResult()
        jobs = [self.pool.Job(solv.Job.SOLVER_SOLVABLE_REPO | solv.Job.SOLVER_LOCK, self.base.id)]
        selections = {}
        unknown = []
        for spec in requests:
            sel = self._select(spec)
            if sel.isempty():
                unknown.append(spec)
                continue
            installed = [s for s in sel.solvables() if s.repo == self.base]
            if installed:
                result.inactive.append((spec, str(installed[0])))
                continue
            selections[spec] = sel
            jobs += sel.jobs(solv.Job.SOLVER_INSTALL)
        if unknown:
            repos = ", ".join(f"[{r}]" for r in self.repos) or "none"
            raise ResolutionError(
                f"No package matches {', '.join(repr(u) for u in unknown)} in the base or the enabled repos ({repos}).",
                [f"{u}: no package by that name, capability or file exists" for u in unknown],
                hint="Check the spelling, or add the repo that ships it to --reposdir.",
            )
        solver = self.pool.Solver()
        solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, 0 if recommends else 1)
        problems = solver.solve(jobs)
        if problems:
            words = [_describe_problem(p) for p in problems]
            raise ResolutionError(
                "The requested packages cannot be layered onto this base: " + "; ".join(words) + ".",
                words,
                hint="The base's packages are locked: a request needing a different version of one cannot be met.",
            )
        new = [s for s in solver.transaction().newsolvables() if s.repo != self.base]
        chosen = set(new)
        for sel in selections.values():
            result.requested.update(s.name for s in sel.solvables() if s in chosen)
        result.packages = sorted((self._candidate(s) for s in new), key=lambda c: c.nevra)
        result.why = self._why(new, result.requested)
        return result

    def _select(self, spec: str) -> solv.Selection:
        flags = (
            solv.Selection.SELECTION_NAME
            | solv.Selection.SELECTION_PROVIDES
            | solv.Selection.SELECTION_CANON
            | solv.Selection.SELECTION_DOTARCH
            | solv.Selection.SELECTION_REL
        )
        if spec.startswith("/"):
            flags |= solv.Selection.SELECTION_FILELIST
        return self.pool.select(spec, flags)

    def _candidate(self, s: solv.XSolvable) -> Candidate:
        meta = self.repos[s.repo.name]
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        location, _medianr = s.lookup_location()
        return Candidate(
            nevra=Nevra.from_evr(s.name, s.evr, s.arch),
            repo=meta.id,
            checksum=f"{chk.typestr()}:{chk.hex()}" if chk else "",
            location=location,
            baseurl=meta.baseurl,
        )

    def _why(self, new: list[solv.XSolvable], requested: set[str]) -> dict[str, list[str]]:
        """Shortest Requires/Recommends chain from any requested package to each new package."""
        graph = nx.DiGraph()
        root = object()
        graph.add_node(root)
        members = set(new)
        for s in new:
            graph.add_node(s.name)
            if s.name in requested:
                graph.add_edge(root, s.name)
            for key in (solv.SOLVABLE_REQUIRES, solv.SOLVABLE_RECOMMENDS):
                for dep in s.lookup_deparray(key):
                    for provider in self.pool.whatprovides(dep):
                        if provider in members and provider != s:
                            graph.add_edge(s.name, provider.name)
        paths = nx.single_source_shortest_path(graph, root)
        return {name: path[1:] for name, path in paths.items() if name is not root}


def _describe_problem(problem: solv.Problem) -> str:
    rules = problem.findallproblemrules()
    texts = [r.info().problemstr() for r in rules] if rules else [str(problem)]
    seen = list(dict.fromkeys(t for t in texts if t))
    return ", and ".join(seen) if seen else str(problem)

"""The base's packages in libsolv: locked, except those `overrides.remove` erases and those a replacement takes
over (`overrides.replace` from the repos, `replace-local` from local RPMs), which are left free."""

from __future__ import annotations

from dataclasses import dataclass, field

import solv

from reconcile.errors import ResolutionError
from reconcile.rpm.nevra import Nevra

# By name (with arch or version), never by capability: a replacement is for one base package.
_BY_NAME = (
    solv.Selection.SELECTION_NAME
    | solv.Selection.SELECTION_CANON
    | solv.Selection.SELECTION_DOTARCH
    | solv.Selection.SELECTION_REL
)


@dataclass
class Replacements:
    """The jobs that install each replacement, and the base names they unlock."""

    jobs: list[solv.Job] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # base package name -> "repo" | "local"


def base_jobs(
    pool: solv.Pool, base: solv.Repo, remove: tuple[str, ...] | list[str], replaced: set[str]
) -> tuple[list[solv.Job], set[solv.XSolvable]]:
    """Lock every base package except the ones `overrides.remove` drops, which are erased, and the ones a
    replacement takes over; returns the jobs and the dropped packages."""
    by_name: dict[str, list[solv.XSolvable]] = {}
    for s in base.solvables:
        by_name.setdefault(s.name, []).append(s)
    missing = [name for name in remove if name not in by_name]
    if missing:
        raise ResolutionError(
            f"overrides.remove names {', '.join(repr(m) for m in missing)}, which the base does not have.",
            [f"{m}: not a package of the base" for m in missing],
        )
    dropped = {s for name in remove for s in by_name[name]}
    jobs = []
    for s in base.solvables:
        if s.name in replaced and s not in dropped:
            continue
        how = solv.Job.SOLVER_ERASE if s in dropped else solv.Job.SOLVER_LOCK
        jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE | how, s.id))
    return jobs, dropped


def replacement_jobs(
    pool: solv.Pool,
    base: solv.Repo,
    specs: list[str],
    local: list[solv.XSolvable],
    removed: list[str] | tuple[str, ...],
    excluded: dict[int, str],
) -> Replacements:
    """One install job per replacement, choosing among the repos' packages only (never the base's own)."""
    base_names = {s.name for s in base.solvables}
    out = Replacements()
    problems: list[str] = []
    for spec in specs:
        found = [s for s in pool.select(spec, _BY_NAME).solvables() if s.repo != base and s.id not in excluded]
        named = [s for s in found if s.name in base_names]
        if not found:
            problems.append(f"overrides.replace {spec!r}: no package in the enabled repos matches it")
        elif not named:
            problems.append(f"overrides.replace {spec!r}: {found[0].name} is not a package of the base")
        else:
            one_of = pool.towhatprovides([s.id for s in named])
            out.jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE_ONE_OF | solv.Job.SOLVER_INSTALL, one_of))
            out.names.update((s.name, "repo") for s in named)
    for s in local:
        if s.name not in base_names:
            problems.append(f"overrides.replace-local {s}: {s.name} is not a package of the base")
        out.jobs.append(pool.Job(solv.Job.SOLVER_SOLVABLE | solv.Job.SOLVER_INSTALL, s.id))
        out.names[s.name] = "local"
    problems += [
        f"{name}: named by overrides.remove and overrides.replace{'-local' if how == 'local' else ''}"
        for name, how in out.names.items()
        if name in removed
    ]
    if problems:
        raise ResolutionError(
            "The base replacements cannot be made: " + "; ".join(problems) + ".",
            problems,
            hint="overrides.replace and replace-local name base packages (`rpm -qa` in the deployment lists them) "
            "that a repo or the local file provides. Nothing was changed.",
        )
    return out


def replaced_pairs(
    transaction: solv.Transaction, new: list[solv.XSolvable], base: solv.Repo, names: dict[str, str]
) -> list[tuple[Nevra, solv.XSolvable]]:
    """(base package, its replacement) for every new package of a replaced name."""
    pairs = []
    for s in new:
        if s.name not in names:
            continue
        old = transaction.othersolvable(s)
        if old is None or old.repo != base:
            old = next((b for b in base.solvables if b.name == s.name and b.arch == s.arch), None)
        if old is None:
            old = next(b for b in base.solvables if b.name == s.name)
        pairs.append((Nevra.from_evr(old.name, old.evr, old.arch), s))
    return pairs

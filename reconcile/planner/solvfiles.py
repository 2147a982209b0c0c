"""libsolv's own files and words: .solv caches of loaded repos, problems in words, the names dnf matches."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import solv


def load_solv(repo: solv.Repo, cache: Path) -> bool:
    """Load a .solv cache into an empty repo; an unreadable one leaves the repo empty, to be rebuilt."""
    if not cache.exists():
        return False
    f = solv.xfopen(str(cache))
    ok = bool(repo.add_solv(f))
    f.close()
    if not ok:
        repo.empty()
    return ok


def write_solv(repo: solv.Repo, cache: Path) -> None:
    """Write the cache beside its final name and rename it there: concurrent plans each write their own file,
    and a reader sees a whole cache or none."""
    fd, name = tempfile.mkstemp(prefix=f".{cache.name}.", suffix=".tmp", dir=cache.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        out = solv.xfopen(str(tmp), "w")
        if out is not None:
            written = repo.write(out)
            out.close()
            if written:
                tmp.replace(cache)
    finally:
        tmp.unlink(missing_ok=True)


def nevra_forms(s: solv.XSolvable) -> tuple[str, ...]:
    """The names dnf matches excludepkgs patterns against: name, name.arch, name-version(-release)(.arch)."""
    evr = s.evr.split(":", 1)[-1]
    version = evr.rsplit("-", 1)[0]
    return (s.name, f"{s.name}.{s.arch}", f"{s.name}-{version}", f"{s.name}-{evr}", f"{s.name}-{evr}.{s.arch}")


def names_a_path(problem: solv.Problem) -> bool:
    for rule in problem.findallproblemrules():
        dep = rule.info().dep
        if dep is not None and "/" in str(dep):
            return True
    return False


def describe_problem(problem: solv.Problem) -> str:
    rules = problem.findallproblemrules()
    texts = [r.info().problemstr() for r in rules] if rules else [str(problem)]
    seen = list(dict.fromkeys(t for t in texts if t))
    return ", and ".join(seen) if seen else str(problem)

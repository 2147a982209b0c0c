"""Why each new package is in the transaction: the shortest chain of dependencies from a requested one.

Requires are strong links; Recommends, Supplements and Enhances are weak ones, read in the direction they pull:
a package that Supplements (or Enhances) a member is pulled by that member, as libsolv and dnf see it. A
package any strong chain reaches is explained by that chain; the rest are weak dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

import solv

from reconcile.rpm.nevra import Nevra

# (libsolv key, link name, strong, forward): a forward link pulls what the dependency names; a backward one
# (Supplements, Enhances) is pulled by what it names.
_LINKS = (
    (solv.SOLVABLE_REQUIRES, "requires", True, True),
    (solv.SOLVABLE_RECOMMENDS, "recommends", False, True),
    (solv.SOLVABLE_SUPPLEMENTS, "supplements", False, False),
    (solv.SOLVABLE_ENHANCES, "enhances", False, False),
)


@dataclass(frozen=True)
class Reason:
    """The chain of package names from a requested package, and the kind of its last link."""

    why: list[str]
    weak: bool
    via: str | None  # "requires", "recommends", "supplements", "enhances"; None for a requested package


def nevra_of(s: solv.XSolvable) -> str:
    return str(Nevra.from_evr(s.name, s.evr, s.arch))


def explain(pool: solv.Pool, new: list[solv.XSolvable], requested: set[int]) -> dict[str, Reason]:
    """`requested`: solvable ids of the packages asked for. Keys are NEVRA strings (multilib pairs differ)."""
    root = 0  # no solvable has id 0
    # a -> {b: (strong, via)}, in insertion order: the breadth-first search below then picks the same chain
    # among equally short ones as networkx's single_source_shortest_path did (docs/decisions.md).
    graph: dict[int, dict[int, tuple[bool, str | None]]] = {root: {}}
    members = {s.id for s in new}
    for s in new:
        graph[s.id] = {}
        if s.id in requested:
            graph[root][s.id] = (True, None)
    for s in new:
        for key, link, strong, forward in _LINKS:
            for dep in s.lookup_deparray(key):
                for other in pool.whatprovides(dep):
                    if other.id not in members or other.id == s.id:
                        continue
                    a, b = (s.id, other.id) if forward else (other.id, s.id)
                    # A strong link between the same two packages wins over a weak one.
                    known = graph[a].get(b)
                    if known is None or (strong and not known[0]):
                        graph[a][b] = (strong, link)
    strong_paths = _shortest_paths(graph, root, strong_only=True)
    any_paths = _shortest_paths(graph, root, strong_only=False)
    by_id = {s.id: s for s in new}
    out = {}
    for sid, s in by_id.items():
        weak = sid not in strong_paths
        path = any_paths.get(sid) if weak else strong_paths[sid]
        if path is None:
            continue
        via = graph[path[-2]][path[-1]][1] if len(path) > 1 else None
        out[nevra_of(s)] = Reason([by_id[i].name for i in path[1:]], weak, via)
    return out


def _shortest_paths(
    graph: dict[int, dict[int, tuple[bool, str | None]]], root: int, *, strong_only: bool
) -> dict[int, list[int]]:
    """Breadth-first, level by level, each node's links in the order they were added: the first shortest path
    found to every node reachable from `root`."""
    paths = {root: [root]}
    level = [root]
    while level:
        following = []
        for v in level:
            for w, (strong, _via) in graph[v].items():
                if w not in paths and (strong or not strong_only):
                    paths[w] = [*paths[v], w]
                    following.append(w)
        level = following
    return paths

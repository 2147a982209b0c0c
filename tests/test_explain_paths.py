"""The why-chains' breadth-first search picks, among equally short chains, the one networkx picked before it."""

from __future__ import annotations

import random

import networkx as nx

from reconcile.planner.explain import _shortest_paths


def _graphs(count: int) -> list[tuple[nx.DiGraph, dict[int, dict[int, tuple[bool, str | None]]]]]:
    """The same random dependency graphs built both ways, links added in the same order as explain() adds them."""
    out = []
    for seed in range(count):
        rng = random.Random(seed)
        n = rng.randint(1, 14)
        ours: dict[int, dict[int, tuple[bool, str | None]]] = {i: {} for i in range(n + 1)}
        theirs = nx.DiGraph()
        theirs.add_nodes_from(range(n + 1))
        for i in range(1, n + 1):
            if rng.random() < 0.3:
                ours[0][i] = (True, None)
                theirs.add_edge(0, i, strong=True, via=None)
        for _ in range(rng.randint(0, 3 * n)):
            a, b = rng.randint(1, n), rng.randint(1, n)
            strong = rng.random() < 0.5
            via = "requires" if strong else rng.choice(["recommends", "supplements"])
            if a == b:
                continue
            known = ours[a].get(b)
            if known is None or (strong and not known[0]):
                ours[a][b] = (strong, via)
            if not theirs.has_edge(a, b) or (strong and not theirs.edges[a, b]["strong"]):
                theirs.add_edge(a, b, strong=strong, via=via)
        out.append((theirs, ours))
    return out


def test_the_chains_are_the_ones_networkx_chose() -> None:
    differing = []
    for i, (theirs, ours) in enumerate(_graphs(2000)):
        strong = nx.subgraph_view(theirs, filter_edge=lambda a, b, g=theirs: g.edges[a, b]["strong"])
        if nx.single_source_shortest_path(strong, 0) != _shortest_paths(ours, 0, strong_only=True):
            differing.append((i, "strong"))
        if nx.single_source_shortest_path(theirs, 0) != _shortest_paths(ours, 0, strong_only=False):
            differing.append((i, "any"))
    assert differing == []

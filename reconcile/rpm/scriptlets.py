"""Scriptlets as values: which a package has, which reconcile runs, ignores or refuses, and in what order.

Phases follow rpm for the packages being added: every %pre in transaction order; then each package's %post
(its ownership is already right: users are created before import); then every %posttrans; then
%transfiletriggerin: a base package's trigger is given the matching paths the added packages bring; an added
package's trigger also those already installed (apply/scripts.py, as rpm does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from reconcile.rpm import header as h
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra

# kind -> (body tag, interpreter tag), from the header module's one table of script tags.
_BY_KIND = {name.lstrip("%"): (body, prog) for body, (prog, name) in h.SCRIPT_TAGS.items()}


class ScriptKind(StrEnum):
    """The scripts reconcile runs, and the ones it shows as never needed; values are rpm's names without %."""

    PRE = "pre"
    POST = "post"
    POSTTRANS = "posttrans"
    TRANSFILETRIGGERIN = "transfiletriggerin"
    PREUN = "preun"
    POSTUN = "postun"
    PRETRANS = "pretrans"
    VERIFYSCRIPT = "verifyscript"


PHASES = (ScriptKind.PRE, ScriptKind.POST, ScriptKind.POSTTRANS)
# The per-package scripts reconcile runs.
RUN = {kind: _BY_KIND[kind] for kind in PHASES}
# Scripts of removal or verification: a layered tree is always rebuilt from the base, never uninstalled.
NEVER_NEEDED = {
    kind: _BY_KIND[kind] for kind in (ScriptKind.PREUN, ScriptKind.POSTUN, ScriptKind.PRETRANS, ScriptKind.VERIFYSCRIPT)
}
TRANSFILETRIGGER = (5076, 5077, 5079, 5080, 5082, 5085)  # scripts, progs, names, index, flags, priorities
FILETRIGGER_SCRIPTS, TRIGGER_SCRIPTS = _BY_KIND["filetrigger"][0], _BY_KIND["trigger"][0]
SENSE_TRIGGERIN = 1 << 16
SENSE_SCRIPT_PRE, SENSE_SCRIPT_POST, SENSE_PREREQ = 1 << 9, 1 << 10, 1 << 6
# Scripts that are harmless to skip on a layered tree, as rpm-ostree also skips them.
DEFAULT_IGNORED = frozenset(
    {
        "filesystem.%posttrans",
        "filesystem.%transfiletriggerin",
        "systemd.%transfiletriggerin",
        "man-db.%transfiletriggerin",
        "glibc.%pre",
        "bash.%post",
    }
)


@dataclass(frozen=True)
class Scriptlet:
    nevra: Nevra
    kind: ScriptKind
    prog: tuple[str, ...]
    body: str
    prefixes: tuple[str, ...] = ()
    priority: int = 1000000

    @property
    def label(self) -> str:
        return f"{self.nevra.name}.%{self.kind}"

    @property
    def is_lua(self) -> bool:
        return bool(self.prog) and self.prog[0] == "<lua>"


@dataclass
class ScriptSet:
    """What a transaction's packages carry, sorted into what runs, what is ignored and what is refused."""

    run: list[Scriptlet] = field(default_factory=list)
    ignored: list[tuple[Scriptlet, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (package.kind, why)


def _prog(hdr: Header, tag: int) -> tuple[str, ...]:
    return tuple(hdr.strings(tag)) or ("/bin/sh",)


def package_scriptlets(hdr: Header) -> tuple[list[Scriptlet], list[tuple[str, str]]]:
    """The scripts of one package reconcile can run, and the ones it must refuse (kind, reason)."""
    nevra = Nevra.from_header(hdr)
    found: list[Scriptlet] = []
    refused: list[tuple[str, str]] = []
    for kind, (body_tag, prog_tag) in RUN.items():
        if body_tag in hdr or prog_tag in hdr:
            found.append(Scriptlet(nevra, kind, _prog(hdr, prog_tag), hdr.string(body_tag)))
    if TRIGGER_SCRIPTS in hdr:
        refused.append(("%trigger", "package triggers (%triggerin, %triggerun, ...) are not supported"))
    if FILETRIGGER_SCRIPTS in hdr:
        refused.append(("%filetrigger", "per-package file triggers are not supported (only %transfiletriggerin)"))
    found += _transfiletriggers(hdr, nevra, refused)
    return found, refused


def _transfiletriggers(hdr: Header, nevra: Nevra, refused: list[tuple[str, str]]) -> list[Scriptlet]:
    scripts_tag, progs_tag, names_tag, index_tag, flags_tag, prio_tag = TRANSFILETRIGGER
    scripts = hdr.strings(scripts_tag)
    if not scripts:
        return []
    progs = hdr.strings(progs_tag)
    names, index, flags = hdr.strings(names_tag), hdr.integers(index_tag), hdr.integers(flags_tag)
    priorities = hdr.integers(prio_tag)
    out = []
    for i, body in enumerate(scripts):
        members = [j for j, k in enumerate(index) if k == i]
        if not members or any(not flags[j] & SENSE_TRIGGERIN for j in members):
            refused.append(("%transfiletrigger", "only %transfiletriggerin is supported (not un/postun)"))
            continue
        prog = (progs[i],) if i < len(progs) and progs[i] else ("/bin/sh",)
        prio = priorities[i] if i < len(priorities) else 1000000
        out.append(Scriptlet(nevra, ScriptKind.TRANSFILETRIGGERIN, prog, body, tuple(names[j] for j in members), prio))
    return out


def classify(headers: Iterable[Header], ignore: Iterable[str]) -> ScriptSet:
    """Sort the scripts of the added packages; `ignore` holds `name.%kind` (or `name.kind`) entries."""
    wanted_ignored = {_normalize(i) for i in ignore} | DEFAULT_IGNORED
    result = ScriptSet()
    for hdr in headers:
        scripts, refused = package_scriptlets(hdr)
        nevra = str(Nevra.from_header(hdr))
        result.refused += [(f"{nevra} {kind}", why) for kind, why in refused]
        for s in scripts:
            if s.label in wanted_ignored:
                result.ignored.append((s, "on the ignore list"))
            elif s.is_lua:
                result.refused.append((f"{nevra} %{s.kind}", "Lua scriptlets cannot run on a layered tree"))
            else:
                result.run.append(s)
        for kind, (body_tag, prog_tag) in NEVER_NEEDED.items():
            if body_tag in hdr or prog_tag in hdr:
                placeholder = Scriptlet(Nevra.from_header(hdr), kind, _prog(hdr, prog_tag), "")
                result.ignored.append((placeholder, "never needed: a layered tree is rebuilt, not upgraded"))
    return result


def transaction_order(headers: list[Header]) -> tuple[list[Nevra], list[str]]:
    """Packages in rpm's install order: a package after what it Requires; Requires(pre)/Requires(post)
    bind harder than plain Requires. A cycle is broken the way rpm does it, by dropping its weakest
    dependency (a plain Requires), and only if there is none, a scriptlet prerequisite; ties go by name.
    Returns the order and the dependencies dropped, in words."""
    import networkx as nx

    nevras = {str(Nevra.from_header(hdr)): Nevra.from_header(hdr) for hdr in headers}
    provided: dict[str, set[str]] = {}
    for hdr in headers:
        owner = str(Nevra.from_header(hdr))
        names = {d.name for d in h.dependencies(hdr, "provides")} | set(h.file_paths(hdr)) | {hdr.string(h.NAME)}
        for name in names:
            provided.setdefault(name, set()).add(owner)
    graph = nx.DiGraph()
    graph.add_nodes_from(nevras)
    for hdr in headers:
        needer = str(Nevra.from_header(hdr))
        for dep in h.dependencies(hdr, "requires"):
            strong = bool(dep.flags & (SENSE_SCRIPT_PRE | SENSE_SCRIPT_POST | SENSE_PREREQ))
            for giver in provided.get(dep.name, ()):
                if giver != needer:
                    was = graph.get_edge_data(giver, needer, {}).get("strong", False)
                    graph.add_edge(giver, needer, strong=was or strong)
    dropped = []
    while True:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            break
        weak = sorted((a, b) for a, b in cycle if not graph.edges[a, b]["strong"])
        a, b = weak[0] if weak else sorted(cycle)[0][:2]
        dropped.append(f"{b} requires {a}" + ("" if weak else " (a scriptlet prerequisite)"))
        graph.remove_edge(a, b)
    return [nevras[n] for n in nx.lexicographical_topological_sort(graph)], dropped


def _normalize(entry: str) -> str:
    name, _, kind = entry.rpartition(".")
    return f"{name}.%{kind.lstrip('%')}"

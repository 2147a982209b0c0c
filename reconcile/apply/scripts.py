"""The scriptlet step of apply: run the layered packages' scripts in rpm's order on the new tree, in a
sandbox, and fold their changes into the final commit. Every script runs again on each rebuild, against a
tree rebuilt from the base, so the result does not depend on history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcile.apply.sandbox import Sandbox, ScriptRun
from reconcile.errors import PackageError
from reconcile.ostree import Repo
from reconcile.report import Reporter
from reconcile.rpm import header as h
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.rpmdb import TreeRpmdbReader
from reconcile.rpm.scriptlets import PHASES, ScriptKind, Scriptlet, ScriptSet, classify, transaction_order

TRANSFILETRIGGER_INDEX = "Transfiletriggername"


@dataclass
class ScriptPlan:
    """The scripts of one transaction, in the order they run."""

    pre: list[Scriptlet]
    post: list[Scriptlet]
    posttrans: list[Scriptlet]
    triggers: list[tuple[Scriptlet, list[str]]]  # each with the files it is told about (on stdin)
    ignored: list[tuple[Scriptlet, str]]
    broken_cycles: list[str]

    @property
    def empty(self) -> bool:
        return not (self.pre or self.post or self.posttrans or self.triggers)


def plan_scripts(
    repo: Repo, base: str, headers: dict[str, Header], ignore: list[str], erased: set[str] | None = None
) -> ScriptPlan:
    """Sort the scripts of the layered packages (and base file triggers they set off); refused ones raise.
    `erased`: base packages overrides.remove drops (their triggers and files are gone)."""
    mine = classify(headers.values(), ignore)
    if mine.refused:
        what, why = mine.refused[0]
        raise PackageError(f"{what}: {why}.", hint="Nothing was deployed. Remove the package from the origin.")
    ordered = [s for s in mine.run if s.kind in PHASES]
    # Nothing to order (no scripts, or one package's): skip the graph and its networkx import.
    if len({s.nevra.name for s in ordered}) > 1:
        order, dropped = transaction_order(list(headers.values()))
    else:
        order, dropped = sorted((Nevra.from_header(hdr) for hdr in headers.values()), key=str), []
    position = {n.name: i for i, n in enumerate(order)}
    by_kind = {kind: sorted((s for s in mine.run if s.kind == kind), key=lambda s: position[s.nevra.name])
               for kind in PHASES}  # fmt: skip
    erased = erased or set()
    mine_triggers = [s for s in mine.run if s.kind is ScriptKind.TRANSFILETRIGGERIN]
    fired = []
    with TreeRpmdbReader(repo, base) as db:  # opened once: on a non-bare repo it is a copy of the whole rpmdb
        base_set = _base_triggers(db, ignore, erased)
        for trigger in sorted(mine_triggers + base_set.run, key=lambda s: (-s.priority, s.nevra.name)):
            paths = {p for hdr in headers.values() for prefix in trigger.prefixes for p in _matching(hdr, prefix)}
            if trigger in mine_triggers:  # its package is being installed: what is installed already counts too
                for prefix in trigger.prefixes:
                    for hdr in db.under(prefix):
                        if str(Nevra.from_header(hdr)) not in erased:
                            paths.update(_matching(hdr, prefix))
            if paths:
                fired.append((trigger, sorted(paths)))
    ignored = mine.ignored + base_set.ignored
    pre, post, posttrans = (by_kind[kind] for kind in PHASES)
    return ScriptPlan(pre, post, posttrans, fired, ignored, dropped)


def _matching(hdr: Header, prefix: str) -> list[str]:
    """The paths of one package rpm gives a file trigger on `prefix`: a package counts when one of its
    directory names starts with the prefix; then each of its paths that does, directories included (as
    measured against rpm 4.18: a prefix directory owned by a package with nothing below it is not given)."""
    if not any(d.startswith(prefix) for d in hdr.strings(h.DIRNAMES)):
        return []
    return [p for p in h.file_paths(hdr) if p.startswith(prefix)]


def _base_triggers(db: TreeRpmdbReader, ignore: list[str], erased: set[str]) -> ScriptSet:
    """%transfiletriggerin scripts of base packages, found through the rpmdb's own trigger index."""
    headers = [hdr for hdr in db.indexed(TRANSFILETRIGGER_INDEX) if str(Nevra.from_header(hdr)) not in erased]
    found = classify(headers, ignore)
    found.run = [s for s in found.run if s.kind is ScriptKind.TRANSFILETRIGGERIN]
    return found


def run_scripts(
    repo: Repo, commit: str, scripts: ScriptPlan, reporter: Reporter, policy: Any
) -> tuple[Any, list[ScriptRun]]:
    """Run every phase in a sandbox over `commit`; return the folded tree and each script's duration."""
    runs: list[ScriptRun] = []
    with Sandbox(repo, commit) as sandbox:
        for items, arg in ((scripts.pre, "1"), (scripts.post, "1"), (scripts.posttrans, "0")):
            for script in items:
                with reporter.step(f"Running {script.label} ({script.nevra})"):
                    runs.append(sandbox.run(script, arg))
                _journal_script(reporter, script, runs[-1])
        for trigger, files in scripts.triggers:
            with reporter.step(f"Running {trigger.label} ({len(files)} files)"):
                runs.append(sandbox.run(trigger, "0", stdin="".join(f + "\n" for f in files)))
            _journal_script(reporter, trigger, runs[-1], matches=len(files))
        with reporter.step("Rebuilding the SELinux policy if the scripts changed it"):
            rebuilt = sandbox.rebuild_policy()
        runs += [rebuilt] if rebuilt else []
        tree = repo.tree_from_commit(commit)
        with reporter.step("Folding the scripts' changes into the tree"):
            dropped = sandbox.fold(tree, policy)
        if dropped:
            reporter.info(
                f"warning: the scripts wrote {', '.join(dropped)} outside /usr and /etc; as rpm-ostree does, that is "
                "not kept in the tree."
            )
    return tree, runs


def _journal_script(reporter: Reporter, script: Scriptlet, run: ScriptRun, matches: int | None = None) -> None:
    """One entry per script, with rpm-ostree's field names (PKG, SCRIPT_TYPE, EXEC_TIME_MS)."""
    from reconcile.journal import SCRIPT_RAN

    ms = round(run.seconds * 1000)
    reporter.event(
        f"Executed %{script.kind} for {script.nevra.name} in {ms} ms",
        SCRIPT_RAN,
        PKG=script.nevra.name,
        NEVRA=script.nevra,
        SCRIPT_TYPE=f"%{script.kind}",
        EXEC_TIME_MS=ms,
        TRIGGER_N_MATCHES=matches,
    )

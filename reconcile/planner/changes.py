"""The two diffs a plan shows: request-level changes (what the user asked for) and the resolved RPM diff."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reconcile.commitmeta import LayeredPackage
from reconcile.deployed import DeploymentState
from reconcile.origin import LoadedOrigin
from reconcile.origin_fragments import spec_name
from reconcile.planner import model as m
from reconcile.planner.local import LocalPackage
from reconcile.planner.solver import Candidate, SolveResult
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra, evr_compare


@dataclass(frozen=True)
class Sources:
    """`FILE:LINE` of the declaration behind each requested package name and each base removal."""

    packages: dict[str, str] = field(default_factory=dict)
    removals: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, loaded: LoadedOrigin, local: list[LocalPackage]) -> Sources:
        desired = loaded.desired
        packages = {
            spec_name(spec): where
            for spec in reversed(desired.packages.requested)  # reversed: the first declaration wins
            if (where := loaded.source_of("packages.requested", spec))
        }
        for entry, p in zip(desired.packages.local, local, strict=False):
            if where := loaded.source_of("packages.local", entry):
                packages.setdefault(p.nevra.name, where)
        removals = {n: w for n in desired.overrides.remove if (w := loaded.source_of("overrides.remove", n))}
        return cls(packages, removals)


def resolution_diff(
    current: DeploymentState,
    solved: SolveResult,
    base_headers: Callable[[], list[Header]] | None = None,
    sources: Sources | None = None,
) -> m.Resolution:
    sources = sources or Sources()
    # Keyed by name and arch: the two halves of a multilib pair (foo.x86_64, foo.i686) are two entries.
    before = {(p.nevra.name, p.nevra.arch): p for p in current.layered}
    after = {(c.nevra.name, c.nevra.arch): c for c in solved.packages}
    added: list[m.PackageEntry] = []
    removed: list[m.PackageEntry] = []
    upgraded: list[m.PackageEntry] = []
    downgraded: list[m.PackageEntry] = []
    replaced: list[m.PackageEntry] = []
    for key, c in after.items():
        old = before.get(key)
        if old is None:
            added.append(_entry(c, solved, sources))
        elif old.nevra != c.nevra:
            entry = _entry(c, solved, sources, before=str(old.nevra), after=str(c.nevra))
            (upgraded if evr_compare(c.nevra, old.nevra) > 0 else downgraded).append(entry)
        elif old.checksum and c.checksum and old.checksum != c.checksum:
            replaced.append(_entry(c, solved, sources, before_checksum=old.checksum))
    removed += [_gone(p) for key, p in before.items() if key not in after]
    removed += [
        m.PackageEntry(
            nevra=str(n),
            name=n.name,
            evr=n.evr,
            arch=n.arch,
            repo="@base",
            checksum="",
            reason="requested",
            why=[],
            source=sources.removals.get(n.name),
        )
        for n in solved.removed_base
    ]
    inactive = [m.InactiveRequest(spec=s, provided_by=by) for s, by in solved.inactive]
    return m.Resolution(
        added=added,
        removed=removed,
        upgraded=upgraded,
        downgraded=downgraded,
        replaced=replaced,
        inactive=inactive,
        base_replacements=base_replacement_diff(current, solved, base_headers),
    )


def base_replacement_diff(
    current: DeploymentState, solved: SolveResult, base_headers: Callable[[], list[Header]] | None
) -> list[m.BaseReplacementChange]:
    """Replacements made, changed or undone, by name and arch; an undone one names the base's own package."""
    before = {(r.package.nevra.name, r.package.nevra.arch): r for r in current.replaced_base}
    after = {(r.package.nevra.name, r.package.nevra.arch): r for r in solved.replaced_base}
    out = []
    for key, new in sorted(after.items()):
        old = before.get(key)
        # rpm-ostree records no checksum (""): the same NEVRA is the same replacement
        if old is not None and (old.package.nevra, old.package.checksum or new.package.checksum) == (
            new.package.nevra,
            new.package.checksum,
        ):
            continue
        action: Literal["replace", "update"] = "replace" if old is None else "update"
        out.append(
            m.BaseReplacementChange(
                name=key[0],
                arch=key[1],
                action=action,
                before=str(new.base) if old is None else str(old.package.nevra),
                after=str(new.package.nevra),
                base=str(new.base),
                repo=new.package.repo,
                checksum=new.package.checksum,
            )
        )
    gone = [key for key in sorted(before) if key not in after]
    own = {(n.name, n.arch): n for n in map(Nevra.from_header, base_headers())} if gone and base_headers else {}
    for key in gone:
        old = before[key]
        restored = own.get(key, old.base)
        out.append(
            m.BaseReplacementChange(
                name=key[0],
                arch=key[1],
                action="restore",
                before=str(old.package.nevra),
                after=str(restored),
                base=str(restored),
                repo="@base",
            )
        )
    return out


def _entry(c: Candidate, solved: SolveResult, sources: Sources, **extra: str) -> m.PackageEntry:
    requested = c.nevra.name in solved.requested
    # A requested package explains itself; only dependencies need the graph (and its import).
    reason = None if requested else solved.reasons.get(str(c.nevra))
    return m.PackageEntry(
        nevra=str(c.nevra),
        name=c.nevra.name,
        evr=c.nevra.evr,
        arch=c.nevra.arch,
        repo=c.repo,
        checksum=c.checksum,
        reason="requested" if requested else "dependency",
        why=reason.why if reason else [c.nevra.name],
        weak=reason.weak if reason else False,
        via=reason.via if reason else None,
        source=sources.packages.get(c.nevra.name) if requested else None,
        **extra,
    )


def _gone(p: LayeredPackage) -> m.PackageEntry:
    n = p.nevra
    return m.PackageEntry(
        nevra=str(n), name=n.name, evr=n.evr, arch=n.arch, repo=p.repo, checksum=p.checksum, reason="dependency"
    )


def base_package_diff(before: list[Header], after: list[Header]) -> m.BasePackages:
    """The base's own packages, deployed base against target base, keyed by name and arch."""
    old = {(n.name, n.arch): n for n in map(Nevra.from_header, before)}
    new = {(n.name, n.arch): n for n in map(Nevra.from_header, after)}
    diff: dict[str, list[m.BasePackageChange]] = {"upgraded": [], "downgraded": [], "added": [], "removed": []}
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None or b is None:
            kind = "added" if a is None else "removed"
        else:
            kind = "upgraded" if evr_compare(b, a) > 0 else "downgraded"
        entry = m.BasePackageChange(name=key[0], arch=key[1], before=a and str(a), after=b and str(b))
        diff[kind].append(entry)
    return m.BasePackages(**diff)


def _version(checksum: str, version: str | None) -> str:
    return f"{version} ({checksum[:12]})" if version else checksum[:12]


def request_changes(
    current: DeploymentState,
    loaded: LoadedOrigin,
    move: m.BaseMove,
    solved: SolveResult,
    local: list[LocalPackage],
    replace_local: list[LocalPackage] | None = None,
) -> list[m.RequestChange]:
    desired = loaded.desired
    changes: list[m.RequestChange] = []
    base_change = None
    before_v, after_v = _version(move.before, move.before_version), _version(move.after, move.after_version)
    deployed = current.container_image or current.refspec
    if desired.origin.base != deployed:
        base_change = ("rebase: the base changed", f"{deployed} {before_v}", f"{desired.origin.base} {after_v}")
    elif move.before != move.after:
        why = {"upgrade": "the base moves to a newer commit", "downgrade": "downgrade: to an older base commit"}
        base_change = (f"{why[move.direction]} ({move.chosen})", before_v, after_v)
    if base_change:
        reason, before, after = base_change
        changes.append(
            m.RequestChange(
                address="base",
                kind=m.ChangeKind.BASE,
                name=desired.origin.base,
                actions=[m.Action.UPDATE],
                reason=reason,
                before=before,
                after=after,
            )
        )
    inactive = dict(solved.inactive)
    for spec, action, reason in _set_changes(set(current.requested), set(desired.packages.requested), inactive):
        if spec in inactive:
            reason += f"; inactive: provided by base package {inactive[spec]}"
        changes.append(
            m.RequestChange(
                address=f"package/{spec}",
                kind=m.ChangeKind.PACKAGE,
                name=spec,
                actions=[action],
                reason=reason,
                source=loaded.source_of("packages.requested", spec) if action != m.Action.DELETE else None,
            )
        )
    changes += _local_changes(current.local, local, _local_sources(loaded, "packages.local", local))
    changes += _override_changes(
        current.override_replace, desired.overrides.replace, m.ChangeKind.OVERRIDE_REPLACE, "replacement", loaded
    )
    replace_local = replace_local or []
    sources = _local_sources(loaded, "overrides.replace-local", replace_local)
    for change in _local_changes(current.override_replace_local, replace_local, sources):
        changes.append(
            change.model_copy(
                update={
                    "address": change.address.replace("local/", "override-replace-local/", 1),
                    "kind": m.ChangeKind.OVERRIDE_REPLACE_LOCAL,
                    "reason": "base package replacement " + change.reason,
                }
            )
        )
    changes += _override_changes(
        current.override_remove, desired.overrides.remove, m.ChangeKind.OVERRIDE_REMOVE, "removal", loaded
    )
    return changes


def _local_sources(loaded: LoadedOrigin, key: str, packages: list[LocalPackage]) -> dict[str, str]:
    """Package name -> `FILE:LINE` of the entry that names the file (entries and packages are in one order)."""
    entries = loaded.desired.packages.local if key == "packages.local" else loaded.desired.overrides.replace_local
    return {
        p.nevra.name: where
        for entry, p in zip(entries, packages, strict=False)
        if (where := loaded.source_of(key, entry))
    }


def _override_changes(
    had: list[str], wanted: list[str], kind: m.ChangeKind, what: str, loaded: LoadedOrigin
) -> list[m.RequestChange]:
    """`[overrides]` entries added or dropped: `override-remove/NAME`, `override-replace/SPEC`."""
    key = "overrides.remove" if kind == m.ChangeKind.OVERRIDE_REMOVE else "overrides.replace"
    return [
        m.RequestChange(
            address=f"{kind.value}/{item}",
            kind=kind,
            name=item,
            actions=[action],
            reason=f"base package {what} {reason}",
            source=loaded.source_of(key, item) if action != m.Action.DELETE else None,
        )
        for item, action, reason in _set_changes(set(had), set(wanted), {})
    ]


def kargs_change(before: list[str], after: list[str]) -> m.RequestChange:
    """`~ kargs`: the merge deployment's kernel arguments against the ones the new deployment gets."""
    added = [a for a in after if a not in before]
    removed = [a for a in before if a not in after]
    parts = ([f"add {' '.join(added)}"] if added else []) + ([f"remove {' '.join(removed)}"] if removed else [])
    return m.RequestChange(
        address="kargs",
        kind=m.ChangeKind.KARGS,
        name="kargs",
        actions=[m.Action.UPDATE],
        reason=f"kernel arguments ({'; '.join(parts)})",
        before=" ".join(before) or "(none)",
        after=" ".join(after) or "(none)",
    )


def _set_changes(had: set[str], wanted: set[str], keep: dict[str, str]) -> list[tuple[str, m.Action, str]]:
    out = []
    for item in sorted(wanted | had):
        if item in wanted and item not in had:
            out.append((item, m.Action.CREATE, "requested"))
        elif item in had and item not in wanted:
            out.append((item, m.Action.DELETE, "no longer requested"))
        elif item in keep:
            out.append((item, m.Action.NOOP, "still requested"))
    return out


def _local_changes(
    current_pins: list[str], local: list[LocalPackage], sources: dict[str, str]
) -> list[m.RequestChange]:
    """Local packages are compared by name: a different file for the same name is an update."""
    before = {pin.split(":", 1)[1].rsplit("-", 2)[0]: pin for pin in current_pins if ":" in pin}
    after = {p.nevra.name: p for p in local}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if new is not None and old == new.pin:
            continue
        if old is None and new is not None:
            action, reason = m.Action.CREATE, f"requested from {new.path}"
        elif new is None:
            action, reason = m.Action.DELETE, "no longer requested"
        else:
            action, reason = m.Action.UPDATE, f"the file {new.path} changed"
        changes.append(
            m.RequestChange(
                address=f"local/{name}",
                kind=m.ChangeKind.LOCAL,
                name=name,
                actions=[action],
                reason=reason,
                before=old,
                after=new.pin if new else None,
                source=sources.get(name) if new else None,
            )
        )
    return changes

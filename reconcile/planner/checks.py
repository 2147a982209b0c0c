"""Pre-flight checks from what is known before any download: headers (local and cached packages) and the
repos' file lists. Findings are values in the plan; errors make it unapplyable."""

from __future__ import annotations

from reconcile.accounts import AccountKind, Declared
from reconcile.planner.model import Check, CheckKind, Severity
from reconcile.rpm import header as h
from reconcile.rpm.header import FileEntry
from reconcile.rpm.scriptlets import classify
from reconcile.rpm.treerules import Finding, Owners, Rule, file_findings


def scriptlet_checks(package: str, hdr: h.Header, ignore: list[str]) -> list[Check]:
    """What will run (info), what is ignored and why (info), and what cannot run at all (error)."""
    found = classify([hdr], ignore)
    checks = [
        Check(kind=CheckKind.SCRIPTLET, severity=Severity.ERROR, package=package, message=f"{what}: {why}.")
        for what, why in found.refused
    ]
    for s in found.run:
        what = f"%{s.kind} ({' '.join(s.prog)})" + (f" on {', '.join(s.prefixes)}" if s.prefixes else "")
        checks.append(
            Check(
                kind=CheckKind.SCRIPTLET,
                severity=Severity.INFO,
                package=package,
                message=f"{package}: will run {what}.",
            )
        )
    for s, why in found.ignored:
        checks.append(
            Check(
                kind=CheckKind.SCRIPTLET,
                severity=Severity.INFO,
                package=package,
                message=f"{package}: ignores %{s.kind} ({why}).",
            )
        )
    return checks


def file_checks(package: str, files: list[FileEntry], owners: Owners, wanted: Declared) -> list[Check]:
    """The tree rules over a package's files (treerules.file_findings, the rules the importer meets again).
    An owner the base's passwd/group do not define is an error unless a layered package declares it
    (`wanted`, what apply creates before import: sysusers.d lines or useradd/groupadd in %pre)."""
    by_rule: dict[Rule, list[Finding]] = {}
    for finding in file_findings(files, owners.users.keys(), owners.groups.keys(), allow_skeleton=False):
        by_rule.setdefault(finding.rule, []).append(finding)
    checks = [_error(CheckKind.SPECIAL_FILE, package, f.message(package)) for f in by_rule.get(Rule.SPECIAL_FILE, [])]
    refused = [f.path for f in by_rule.get(Rule.FORBIDDEN_PATH, [])]
    if refused:  # one finding per package, naming the first few paths
        shown = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        message = f"{package} ships {shown}, outside the paths an OSTree deployment can take."
        checks.append(_error(CheckKind.FORBIDDEN_PATH, package, message))
    missing: dict[str, Finding] = {}
    for f in by_rule.get(Rule.UNKNOWN_OWNER, []):
        missing.setdefault(f.detail, f)  # one finding per missing name, naming its first file
    created = []
    for detail, f in sorted(missing.items()):
        kind, _, name = detail.partition(" ")
        source = wanted.creates(AccountKind(kind), name)
        if source is None:
            checks.append(_error(CheckKind.UNKNOWN_OWNER, package, f.message(package)))
        else:
            created.append(_will_create(package, AccountKind(kind), name, source, f.path))
    checks += created + _memberships(package, wanted)
    warnings = [f for rule in (Rule.CAPS_DROPPED, Rule.LINKS_SPLIT) for f in by_rule.get(rule, [])]
    checks += [
        Check(kind=CheckKind.VAR_CONTENT, severity=Severity.WARNING, package=package, message=f.message(package))
        for f in warnings
    ]
    return checks


def _error(kind: CheckKind, package: str, message: str) -> Check:
    return Check(kind=kind, severity=Severity.ERROR, package=package, message=message)


def _will_create(package: str, kind: AccountKind, name: str, source: str, path: str) -> Check:
    """An account apply creates before import, for a file of this package."""
    by, _, where = source.partition(" ")
    how = "%pre" if where == "%pre" else "sysusers.d"
    how += "" if by == package else f" of {by}"
    message = f"{package}: will create the {kind} {name!r} ({how}) before import; it owns {path}."
    return Check(kind=CheckKind.ACCOUNT, severity=Severity.INFO, package=package, message=message)


def _memberships(package: str, wanted: Declared) -> list[Check]:
    return [
        Check(
            kind=CheckKind.ACCOUNT,
            severity=Severity.INFO,
            package=package,
            message=f"{package}: will add the user {mem.user!r} to the group {mem.group!r} (sysusers.d).",
        )
        for mem in wanted.members
        if mem.source.partition(" ")[0] == package
    ]

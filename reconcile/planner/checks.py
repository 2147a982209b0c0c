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
    Owners the base's passwd/group do not define are an error unless a layered package declares them
    (`wanted`, what apply will create first: sysusers.d lines or useradd/groupadd in %pre)."""
    users = owners.users.keys() | wanted.names(AccountKind.USER)
    groups = owners.groups.keys() | wanted.names(AccountKind.GROUP)
    found = file_findings(files, users, groups, allow_skeleton=False)
    by_rule: dict[Rule, list[Finding]] = {}
    for finding in found:
        by_rule.setdefault(finding.rule, []).append(finding)
    checks = [_error(CheckKind.SPECIAL_FILE, package, f.message(package)) for f in by_rule.get(Rule.SPECIAL_FILE, [])]
    refused = [f.path for f in by_rule.get(Rule.FORBIDDEN_PATH, [])]
    if refused:  # one finding per package, naming the first few paths
        shown = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        message = f"{package} ships {shown}, outside the paths an OSTree deployment can take."
        checks.append(_error(CheckKind.FORBIDDEN_PATH, package, message))
    unknown: dict[str, Finding] = {}
    for f in by_rule.get(Rule.UNKNOWN_OWNER, []):
        unknown.setdefault(f.detail, f)  # one finding per missing name, naming its first file
    checks += [_error(CheckKind.UNKNOWN_OWNER, package, f.message(package)) for _, f in sorted(unknown.items())]
    checks += _account_checks(package, files, owners, wanted)
    warnings = [f for rule in (Rule.CAPS_DROPPED, Rule.LINKS_SPLIT) for f in by_rule.get(rule, [])]
    checks += [
        Check(kind=CheckKind.VAR_CONTENT, severity=Severity.WARNING, package=package, message=f.message(package))
        for f in warnings
    ]
    return checks


def _error(kind: CheckKind, package: str, message: str) -> Check:
    return Check(kind=kind, severity=Severity.ERROR, package=package, message=message)


def _account_checks(package: str, files: list[FileEntry], owners: Owners, wanted: Declared) -> list[Check]:
    """The accounts apply creates before import for this package's files, and its group memberships."""
    missing: dict[tuple[AccountKind, str], str] = {}
    for f in files:
        if f.user not in owners.users:
            missing.setdefault((AccountKind.USER, f.user), f.path)
        if f.group not in owners.groups:
            missing.setdefault((AccountKind.GROUP, f.group), f.path)
    checks = []
    for (kind, name), path in sorted(missing.items()):
        source = wanted.creates(kind, name)
        if source is None:
            continue  # an unknown owner: the tree rules report it
        by, _, where = source.partition(" ")
        how = "%pre" if where == "%pre" else "sysusers.d"
        how += "" if by == package else f" of {by}"
        message = f"{package}: will create the {kind} {name!r} ({how}) before import; it owns {path}."
        checks.append(Check(kind=CheckKind.ACCOUNT, severity=Severity.INFO, package=package, message=message))
    for mem in wanted.members:
        if mem.source.partition(" ")[0] == package:
            message = f"{package}: will add the user {mem.user!r} to the group {mem.group!r} (sysusers.d)."
            checks.append(Check(kind=CheckKind.ACCOUNT, severity=Severity.INFO, package=package, message=message))
    return checks

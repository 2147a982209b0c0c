"""Pre-flight checks from what is known before any download: headers (local and cached packages) and the
repos' file lists. Findings are values in the plan; errors make it unapplyable."""

from __future__ import annotations

import stat

from reconcile.accounts import AccountKind, Declared
from reconcile.planner.model import Check, CheckKind, Severity
from reconcile.rpm import header as h
from reconcile.rpm.header import FileEntry
from reconcile.rpm.payload import Owners, relocate
from reconcile.rpm.scriptlets import classify


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


def type_checks(package: str, files: list[FileEntry]) -> list[Check]:
    """Device nodes, FIFOs and sockets cannot be OSTree content."""
    names = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO"}
    return [
        Check(
            kind=CheckKind.SPECIAL_FILE,
            severity=Severity.ERROR,
            package=package,
            message=f"{package} ships {f.path}, {names.get(stat.S_IFMT(f.mode), 'a special file')}, "
            "which an OSTree tree cannot hold.",
        )
        for f in files
        if stat.S_IFMT(f.mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)
    ]


def path_checks(package: str, paths: list[str]) -> list[Check]:
    """Paths the OSTree path rules refuse (one finding per package, naming the first few paths)."""
    refused = []
    for path in paths:
        try:
            relocate(path, allow_skeleton=False)
        except ValueError:
            refused.append(path)
    if not refused:
        return []
    shown = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
    return [
        Check(
            kind=CheckKind.FORBIDDEN_PATH,
            severity=Severity.ERROR,
            package=package,
            message=f"{package} ships {shown}, outside the paths an OSTree deployment can take.",
        )
    ]


def owner_checks(package: str, files: list[FileEntry], owners: Owners, wanted: Declared) -> list[Check]:
    """File owners the base's passwd/group do not define are an error, unless a layered package declares them
    (`wanted`, what apply will create first: sysusers.d lines or useradd/groupadd in %pre)."""
    missing: dict[tuple[AccountKind, str], str] = {}
    for f in files:
        if f.user not in owners.users:
            missing.setdefault((AccountKind.USER, f.user), f.path)
        if f.group not in owners.groups:
            missing.setdefault((AccountKind.GROUP, f.group), f.path)
    checks = []
    for (kind, name), path in sorted(missing.items()):
        source = wanted.creates(kind, name)
        if source is not None:
            by, _, where = source.partition(" ")
            how = "%pre" if where == "%pre" else "sysusers.d"
            how += "" if by == package else f" of {by}"
            message = f"{package}: will create the {kind} {name!r} ({how}) before import; it owns {path}."
            checks.append(Check(kind=CheckKind.ACCOUNT, severity=Severity.INFO, package=package, message=message))
            continue
        table = "passwd" if kind is AccountKind.USER else "group file"
        message = f"{package}: {path} is owned by the {kind} {name!r}, which the base's {table} does not define."
        checks.append(Check(kind=CheckKind.UNKNOWN_OWNER, severity=Severity.ERROR, package=package, message=message))
    for mem in wanted.members:
        if mem.source.partition(" ")[0] == package:
            message = f"{package}: will add the user {mem.user!r} to the group {mem.group!r} (sysusers.d)."
            checks.append(Check(kind=CheckKind.ACCOUNT, severity=Severity.INFO, package=package, message=message))
    return checks


def var_checks(package: str, files: list[FileEntry]) -> list[Check]:
    """What tmpfiles.d cannot express about /var and /run content is said, not dropped silently."""
    checks = []
    links: dict[tuple[int, int], list[str]] = {}
    for f in files:
        if f.path.split("/")[1:2] not in (["var"], ["run"]):
            continue
        if f.caps:
            checks.append(
                Check(
                    kind=CheckKind.VAR_CONTENT,
                    severity=Severity.WARNING,
                    package=package,
                    message=f"{package}: the file capabilities of {f.path} ({f.caps}) are dropped; "
                    "tmpfiles.d, which creates /var and /run content at boot, cannot set them.",
                )
            )
        if stat.S_ISREG(f.mode):
            links.setdefault((f.device, f.inode), []).append(f.path)
    for paths in links.values():
        if len(paths) > 1:
            checks.append(
                Check(
                    kind=CheckKind.VAR_CONTENT,
                    severity=Severity.WARNING,
                    package=package,
                    message=f"{package}: the hard links {', '.join(paths)} become separate copies under /var.",
                )
            )
    return checks

"""Pre-flight checks from what is known before any download: headers (local and cached packages) and the
repos' file lists. Findings are values in the plan; errors make it unapplyable."""

from __future__ import annotations

import re
import stat

from reconcile.planner.model import Check
from reconcile.rpm import header as h
from reconcile.rpm.header import FileEntry
from reconcile.rpm.payload import Owners, relocate

PREIN = 1023

# Scriptlet kinds reconcile cannot run at all, as opposed to those it does not run yet.
_UNSUPPORTED_KINDS = {"%trigger", "%filetrigger", "%verifyscript", "%preun", "%postun", "%pretrans"}


def scriptlet_checks(package: str, hdr: h.Header) -> list[Check]:
    checks = []
    for kind, prog in h.scripts(hdr):
        if prog.startswith("<lua>"):
            message = f"{package} has a Lua {kind} scriptlet; Lua scriptlets cannot be run on a layered tree."
        elif kind in _UNSUPPORTED_KINDS:
            message = f"{package} has a {kind} scriptlet, a type reconcile does not support."
        else:
            message = f"{package} has a {kind} scriptlet ({prog}); reconcile does not run scriptlets yet."
        checks.append(Check(kind="scriptlet", severity="error", package=package, message=message))
    return checks


def type_checks(package: str, files: list[FileEntry]) -> list[Check]:
    """Device nodes, FIFOs and sockets cannot be OSTree content."""
    names = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO"}
    return [
        Check(
            kind="special-file",
            severity="error",
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
            kind="forbidden-path",
            severity="error",
            package=package,
            message=f"{package} ships {shown}, outside the paths an OSTree deployment can take.",
        )
    ]


def owner_checks(package: str, hdr: h.Header, files: list[FileEntry], owners: Owners) -> list[Check]:
    """File owners the base's passwd/group do not define; a package that creates them itself (in %pre or
    with a sysusers.d file) is told that this is not supported yet."""
    pre = hdr.string(PREIN)
    sysusers = any(f.path.startswith(("/usr/lib/sysusers.d/", "/etc/sysusers.d/")) for f in files)
    missing: dict[tuple[str, str], str] = {}
    for f in files:
        if f.user not in owners.users:
            missing.setdefault(("user", f.user), f.path)
        if f.group not in owners.groups:
            missing.setdefault(("group", f.group), f.path)
    checks = []
    for (kind, name), path in sorted(missing.items()):
        created = sysusers or re.search(rf"\b(user|group)add\b[^\n]*\b{re.escape(name)}\b", pre)
        if created:
            message = (
                f"{package} creates the {kind} {name!r} itself ({'sysusers.d' if sysusers else '%pre'}) and owns "
                f"{path} by it; creating users and groups is not supported yet."
            )
        else:
            table = "passwd" if kind == "user" else "group file"
            message = f"{package}: {path} is owned by the {kind} {name!r}, which the base's {table} does not define."
        checks.append(Check(kind="unknown-owner", severity="error", package=package, message=message))
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
                    kind="var-content",
                    severity="warning",
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
                    kind="var-content",
                    severity="warning",
                    package=package,
                    message=f"{package}: the hard links {', '.join(paths)} become separate copies under /var.",
                )
            )
    return checks

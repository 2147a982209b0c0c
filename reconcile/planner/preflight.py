"""Pre-flight checks, before any package is downloaded or built: with every added package's header at hand
(planner/sources.py reads them), the plan refuses scriptlets, forbidden paths, unknown owners and file
conflicts up front."""

from __future__ import annotations

import stat

from reconcile.accounts import Declared
from reconcile.planner.checks import file_checks, scriptlet_checks
from reconcile.planner.model import Check, CheckKind, Severity
from reconcile.planner.ports import DeployedSystem
from reconcile.rpm import header as h
from reconcile.rpm.header import FileEntry, Header
from reconcile.rpm.treerules import Owners


def package_checks(nevra: str, hdr: Header, owners: Owners, ignore: list[str], wanted: Declared) -> list[Check]:
    """`wanted`: the accounts every layered package declares (accounts.declared), as apply will create them."""
    files = [f for f in h.file_entries(hdr) if not f.is_ghost]
    return scriptlet_checks(nevra, hdr, ignore) + file_checks(nevra, files, owners, wanted)


def conflict_checks(
    system: DeployedSystem, base: str, layered: dict[str, Header], new: set[str], removed: set[str]
) -> list[Check]:
    """Paths shipped twice with different content, type, link target, mode or owner, from the header digests:
    between a new package and the base or any other layered package."""
    files: dict[str, list[tuple[str, FileEntry]]] = {}
    for nevra, hdr in sorted(layered.items()):
        for fe in h.file_entries(hdr):
            if not fe.is_ghost and not stat.S_ISDIR(fe.mode):
                files.setdefault(fe.path, []).append((nevra, fe))
    for path, entries in system.base_entries(base, list(files), removed).items():
        for owner, fe in entries:  # as before: the last owner found comes first
            if not fe.is_ghost and not stat.S_ISDIR(fe.mode):
                files[path].insert(0, (f"base package {owner}", fe))
    checks = []
    for path, owners in sorted(files.items()):
        first_owner, first = owners[0]
        for other_owner, other in owners[1:]:
            if other_owner not in new and first_owner not in new:
                continue
            difference = _difference(first, other)
            if difference:
                checks.append(
                    Check(
                        kind=CheckKind.FILE_CONFLICT,
                        severity=Severity.ERROR,
                        package=other_owner if other_owner in new else first_owner,
                        message=f"{path} is shipped by {first_owner} and {other_owner} with {difference}.",
                    )
                )
    return checks


def _difference(a: FileEntry, b: FileEntry) -> str | None:
    if stat.S_IFMT(a.mode) != stat.S_IFMT(b.mode):
        return "different file types"
    if stat.S_ISLNK(a.mode) and a.linkto != b.linkto:
        return f"different link targets ({a.linkto} and {b.linkto})"
    if stat.S_ISREG(a.mode) and a.digest != b.digest:
        return "different content"
    if stat.S_IMODE(a.mode) != stat.S_IMODE(b.mode) or (a.user, a.group) != (b.user, b.group):
        return "different modes or owners (an OSTree tree holds one)"
    return None

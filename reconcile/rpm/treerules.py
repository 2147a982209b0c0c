"""What an OSTree tree can take from a package, decided once for the plan and for the import.

Paths follow the OSTree rules (DESIGN §3): `/etc` moves to `/usr/etc`, `/var` and `/run` content becomes
tmpfiles.d entries (regular files wait in `/usr/share/factory` and are copied at boot), `/opt` moves to
`/usr/lib/opt` with a symlink, `/boot` to `/usr/lib/ostree-boot`. The planner turns `file_findings` into
checks; the payload importer meets the same findings again, and one the plan did not report is a bug.
"""

from __future__ import annotations

import functools
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from reconcile.rpm.header import FileEntry

FACTORY = "usr/share/factory"  # where /var and /run file content waits for systemd-tmpfiles
USRMERGE = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
_TREE_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)
_SPECIAL = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO"}


class Placement(StrEnum):
    """Where a package path goes in an OSTree tree."""

    TREE = "tree"  # into the tree, after the moves above
    TMPFILES = "tmpfiles"  # /var and /run content, described for systemd-tmpfiles
    TOPLEVEL = "toplevel"  # a top-level directory or usrmerge link (a base's filesystem package, compose only)
    SKIP = "skip"  # lands nowhere (`/`, or `/opt` itself on a layered tree)


class PathRefused(ValueError):
    """A path no OSTree deployment can hold; the message says why."""


class Rule(StrEnum):
    """Which rule a finding is about; the first three refuse the package."""

    SPECIAL_FILE = "special-file"
    FORBIDDEN_PATH = "forbidden-path"
    UNKNOWN_OWNER = "unknown-owner"
    CAPS_DROPPED = "caps-dropped"
    LINKS_SPLIT = "links-split"


REFUSING = frozenset({Rule.SPECIAL_FILE, Rule.FORBIDDEN_PATH, Rule.UNKNOWN_OWNER})


@dataclass(frozen=True, order=True)
class Finding:
    """One file a rule applies to; `detail` is what the sentence needs (a kind, a name, a reason)."""

    rule: Rule
    path: str
    detail: str = ""

    @property
    def refuses(self) -> bool:
        return self.rule in REFUSING

    def message(self, package: str) -> str:
        """The finding as one sentence about the package."""
        if self.rule is Rule.SPECIAL_FILE:
            return f"{package} ships {self.path}, {self.detail}, which an OSTree tree cannot hold."
        if self.rule is Rule.FORBIDDEN_PATH:
            return f"{package} ships {self.path}, which {self.detail}."
        if self.rule is Rule.UNKNOWN_OWNER:
            kind, _, name = self.detail.partition(" ")
            table = "passwd" if kind == "user" else "group file"
            return f"{package}: {self.path} is owned by the {kind} {name!r}, which the base's {table} does not define."
        if self.rule is Rule.CAPS_DROPPED:
            return (
                f"{package}: the file capabilities of {self.path} ({self.detail}) are dropped; "
                "tmpfiles.d, which creates /var and /run content at boot, cannot set them."
            )
        return f"{package}: the hard links {self.detail} become separate copies under /var."


class Owners:
    """User and group names mapped to ids through a tree's passwd and group files."""

    def __init__(self, users: dict[str, int], groups: dict[str, int]) -> None:
        self.users = {"root": 0, **users}
        self.groups = {"root": 0, **groups}

    @staticmethod
    def parse(passwd: str, group: str) -> tuple[dict[str, int], dict[str, int]]:
        def table(text: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for line in text.splitlines():
                parts = line.split(":")
                if len(parts) >= 3 and parts[2].isdigit() and not line.startswith("#"):
                    out.setdefault(parts[0], int(parts[2]))
            return out

        return table(passwd), table(group)

    def used_by(self, files: list[FileEntry]) -> dict[str, int]:
        """The part of the mapping a package uses, recorded in its cache commit to know when to re-import."""
        used = {f"u:{f.user}": self.users.get(f.user, -1) for f in files}
        used.update({f"g:{f.group}": self.groups.get(f.group, -1) for f in files})
        return dict(sorted(used.items()))


@functools.lru_cache(maxsize=1 << 16)
def place(path: str, allow_skeleton: bool) -> tuple[Placement, str | None]:
    """Where a package path goes, with its path relative to the tree root; raises PathRefused."""
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or any(p in (".", "..") for p in parts):
        raise PathRefused("is not a clean absolute path")
    if not parts:
        return Placement.SKIP, None
    top, rest = parts[0], parts[1:]
    if top == "usr":
        return Placement.TREE, "/".join(parts)
    if top == "etc":
        return Placement.TREE, "/".join(["usr", "etc", *rest])
    if top == "boot":
        return Placement.TREE, "/".join(["usr", "lib", "ostree-boot", *rest])
    if top == "opt":
        if rest:
            return Placement.TREE, "/".join(["usr", "lib", "opt", *rest])
        return (Placement.TOPLEVEL, top) if allow_skeleton else (Placement.SKIP, None)
    if top in ("var", "run"):
        return (Placement.TMPFILES, path) if rest else (Placement.TREE, top)
    if top in USRMERGE:
        return (Placement.TREE, "/".join([USRMERGE[top], *rest])) if rest else (Placement.TOPLEVEL, top)
    if not rest and allow_skeleton:
        return Placement.TOPLEVEL, top
    raise PathRefused("is outside the paths an OSTree deployment can take (/usr, /etc, /var, /run, /opt, /boot)")


def tree_path(path: str, allow_skeleton: bool) -> str | None:
    """Where a package path lands in the tree, relative to its root: /var and /run content as its factory
    copy, None for a path that lands nowhere. Raises PathRefused as `place` does."""
    where, rel = place(path, allow_skeleton)
    if where is Placement.TMPFILES:
        return "/".join([FACTORY, *[p for p in path.split("/") if p]])
    return rel if where in (Placement.TREE, Placement.TOPLEVEL) else None


def keeps_capabilities(path: str) -> bool:
    """tmpfiles.d cannot set file capabilities, so /var and /run content goes without them."""
    try:
        return place(path, allow_skeleton=True)[0] is not Placement.TMPFILES
    except PathRefused:
        return True


def file_findings(
    files: Iterable[FileEntry], users: Collection[str], groups: Collection[str], allow_skeleton: bool
) -> list[Finding]:
    """Every rule's findings over a package's files (ghosts are not content and are skipped). `users` and
    `groups`: the names the tree will define when the files are imported."""
    found: set[Finding] = set()
    links: dict[tuple[int, int], list[str]] = {}
    for f in files:
        if f.is_ghost:
            continue
        kind = stat.S_IFMT(f.mode)
        if kind not in _TREE_TYPES:
            found.add(Finding(Rule.SPECIAL_FILE, f.path, _SPECIAL.get(kind, "a special file")))
        try:
            tmpfiles = place(f.path, allow_skeleton)[0] is Placement.TMPFILES
        except PathRefused as e:
            found.add(Finding(Rule.FORBIDDEN_PATH, f.path, str(e)))
            continue
        if f.user not in users:
            found.add(Finding(Rule.UNKNOWN_OWNER, f.path, f"user {f.user}"))
        if f.group not in groups:
            found.add(Finding(Rule.UNKNOWN_OWNER, f.path, f"group {f.group}"))
        if tmpfiles and f.caps:
            found.add(Finding(Rule.CAPS_DROPPED, f.path, f.caps))
        if tmpfiles and kind == stat.S_IFREG:
            links.setdefault((f.device, f.inode), []).append(f.path)
    for paths in links.values():
        if len(paths) > 1:
            found.add(Finding(Rule.LINKS_SPLIT, paths[0], ", ".join(paths)))
    return sorted(found)

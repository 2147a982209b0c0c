"""System users and groups that layered packages create, through sysusers.d files or useradd/groupadd in %pre.

They are created before import, so files owned by them get the right ids, and written to the new tree in
the base's layout (nss-altfiles `/usr/lib/passwd` when the base has it, else `/usr/etc/passwd`). Ids are
stable: an account the deployed tree (or the running system's /etc) already has keeps its id; a new one gets
the highest free id at or below 999 (or in the `r` ranges sysusers.d files give), as systemd-sysusers
allocates them; `m` lines add a user to a group, creating either when missing.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from reconcile import ostree
from reconcile.accounts import AccountKind, Declared
from reconcile.errors import PackageError
from reconcile.ostree import MutableTree, Repo
from reconcile.rpm.treerules import Owners
from reconcile.selinux import Labeler, label_xattrs

SYSTEM_MAX = 999
SYSTEM_MIN = 201
_ALTFILES = ("usr/lib/passwd", "usr/lib/group")
_ETC = ("usr/etc/passwd", "usr/etc/group")


@dataclass
class AccountDb:
    """The accounts of the new tree: the base's, plus what the layered packages ask for."""

    layout: tuple[str, str]
    texts: dict[str, str]
    users: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    previous_users: dict[str, int] = field(default_factory=dict)
    previous_groups: dict[str, int] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    ranges: list[tuple[int, int]] = field(default_factory=lambda: [(SYSTEM_MIN, SYSTEM_MAX)])

    @classmethod
    def load(cls, repo: Repo, base: str, previous: list[tuple[str, str]]) -> AccountDb:
        """`previous`: (passwd, group) texts of the deployed tree and the running /etc, for stable ids."""
        found = {path: repo.read_text(base, path, limit=16 << 20) for path in (*_ALTFILES, *_ETC)}
        texts = {path: text for path, text in found.items() if text is not None}
        layout = _ALTFILES if _ALTFILES[0] in texts else _ETC
        users, groups = Owners.parse(
            "\n".join(texts.get(p, "") for p in (_ETC[0], _ALTFILES[0])),
            "\n".join(texts.get(p, "") for p in (_ETC[1], _ALTFILES[1])),
        )
        prev_users, prev_groups = Owners.parse("\n".join(p for p, _ in previous), "\n".join(g for _, g in previous))
        return cls(layout, texts, users, groups, prev_users, prev_groups)

    def owners(self) -> Owners:
        return Owners(self.users, self.groups)

    def create(self, wanted: Declared) -> None:
        """Groups first, then users, then memberships, in sysusers' order."""
        self.ranges = sorted(wanted.ranges) or [(SYSTEM_MIN, SYSTEM_MAX)]
        requests = wanted.accounts
        for r in sorted((r for r in requests if r.kind is AccountKind.GROUP), key=lambda r: r.name):
            self._group(r.name, r.id)
        for r in sorted((r for r in requests if r.kind is AccountKind.USER), key=lambda r: r.name):
            self._user(r.name, r.id, r.group or r.name, f"{r.gecos}:{r.home}:{r.shell}", r.source)
        for mem in wanted.members:
            self._group(mem.group, None)
            self._user(mem.user, None, mem.user, ":/:/sbin/nologin", mem.source)
            self._add_member(mem.user, mem.group, mem.source)

    def _user(self, name: str, wanted: int | None, group: str, rest: str, source: str) -> None:
        if name in self.users:
            return
        gid = self._group(group, None)
        uid = self._allocate(name, wanted, self.users, self.previous_users, prefer=gid)
        self.users[name] = uid
        self._append(self.layout[0], f"{name}:x:{uid}:{gid}:{rest}")
        self.added.append(f"user {name} ({uid}, from {source})")

    def _group(self, name: str, wanted: int | None) -> int:
        if name in self.groups:
            return self.groups[name]
        gid = self._allocate(name, wanted, self.groups, self.previous_groups)
        self.groups[name] = gid
        self._append(self.layout[1], f"{name}:x:{gid}:")
        self.added.append(f"group {name} ({gid})")
        return gid

    def _add_member(self, user: str, group: str, source: str) -> None:
        """In whichever group file defines the group (a base group may live in either)."""
        for path in (self.layout[1], *(p for p in (_ETC[1], _ALTFILES[1]) if p != self.layout[1])):
            lines = self.texts.get(path, "").splitlines()
            for i, line in enumerate(lines):
                parts = line.split(":")
                if len(parts) >= 3 and parts[0] == group and not line.startswith("#"):
                    members = [m for m in (parts[3].split(",") if len(parts) > 3 else []) if m]
                    if user in members:
                        return
                    lines[i] = ":".join([*parts[:3], ",".join([*members, user])])
                    self.texts[path] = "\n".join(lines) + "\n"
                    self.changed.add(path)
                    self.added.append(f"membership {user} in {group} (from {source})")
                    return

    def _append(self, path: str, line: str) -> None:
        text = self.texts.get(path, "")
        self.texts[path] = (text if not text or text.endswith("\n") else text + "\n") + line + "\n"
        self.changed.add(path)

    def _allocate(
        self, name: str, wanted: int | None, taken: dict[str, int], previous: dict[str, int], prefer: int | None = None
    ) -> int:
        used = set(taken.values())
        # An explicit id and an earlier one are kept as they are; uid = gid only inside the allowed ranges.
        prefer = prefer if prefer is not None and self._in_range(prefer) else None
        for candidate in (wanted, previous.get(name), prefer):
            if candidate is not None and candidate not in used:
                return candidate
        reserved = used | set(previous.values())  # another account's earlier id stays theirs
        for low, high in reversed(self.ranges):
            for candidate in range(high, low - 1, -1):
                if candidate not in reserved:
                    return candidate
        ranges = ", ".join(f"{low}-{high}" for low, high in self.ranges)
        raise PackageError(
            f"No free system id is left for the account {name!r} in {ranges}.",
            hint="Nothing was deployed. Widen the range (a sysusers.d `r` line) or give the account an id.",
        )

    def _in_range(self, candidate: int) -> bool:
        return any(low <= candidate <= high for low, high in self.ranges)

    def write(self, repo: Repo, tree: MutableTree, labeler: Labeler | None) -> None:
        """Replace the account files that changed with the extended ones."""
        for path in sorted(self.changed):
            parts = path.split("/")
            parent = ostree.tree_walk(tree, parts[:-1])
            if parent is None:
                raise PackageError(
                    f"The base has no /{'/'.join(parts[:-1])} for its account files; cannot write /{path}.",
                    hint="Nothing was deployed. The base's passwd/group layout is not one reconcile knows.",
                )
            mode = stat.S_IFREG | 0o644
            xattrs = label_xattrs(labeler, "/" + path, mode)
            csum = repo.write_file(0, 0, mode, self.texts[path].encode(), xattrs)
            ostree.tree_replace_file(parent, parts[-1], csum)

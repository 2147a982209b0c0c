"""System users and groups that layered packages create, through sysusers.d files or useradd/groupadd in %pre.

They are created before import, so files owned by them get the right ids, and written to the new tree in
the base's layout (nss-altfiles `/usr/lib/passwd` when the base has it, else `/usr/etc/passwd`). Ids are
stable: an account the deployed tree (or the running system's /etc) already has keeps its id; a new one gets
the highest free id at or below 999, as systemd-sysusers allocates them.
"""

from __future__ import annotations

import re
import shlex
import stat
from dataclasses import dataclass, field

from reconcile import ostree
from reconcile.ostree import MutableTree, Repo
from reconcile.rpm.header import Header
from reconcile.rpm.payload import Owners
from reconcile.rpm.scriptlets import RUN
from reconcile.selinux import Labeler, label_xattrs

SYSTEM_MAX = 999
SYSTEM_MIN = 201
_ALTFILES = ("usr/lib/passwd", "usr/lib/group")
_ETC = ("usr/etc/passwd", "usr/etc/group")


@dataclass(frozen=True)
class AccountRequest:
    kind: str  # "user" or "group"
    name: str
    id: int | None = None
    group: str | None = None
    gecos: str = ""
    home: str = "/"
    shell: str = "/sbin/nologin"
    source: str = ""


def from_pre_script(hdr: Header, package: str) -> list[AccountRequest]:
    """useradd/groupadd calls in a %pre script (the common `getent ... || useradd ...` idiom included)."""
    body = hdr.string(RUN["pre"][0])
    requests = []
    for match in re.finditer(r"\b(useradd|groupadd)\b([^\n;|&]*)", body):
        try:
            words = shlex.split(match.group(2))
        except ValueError:
            continue
        options, name = _options(words)
        if not name:
            continue
        source = f"{package} %pre"
        if match.group(1) == "groupadd":
            requests.append(AccountRequest("group", name, _int(options.get("-g")), source=source))
        else:
            group = options.get("-g")
            requests.append(
                AccountRequest(
                    "user",
                    name,
                    _int(options.get("-u")),
                    group=group if group and not group.isdigit() else name,
                    gecos=options.get("-c", ""),
                    home=options.get("-d", "/"),
                    shell=options.get("-s", "/sbin/nologin"),
                    source=source,
                )
            )
    return requests


_WITH_VALUE = {"-u", "-g", "-G", "-c", "-d", "-s", "-K", "-k", "-e", "-f", "-p", "-b", "-R", "-P"}


def _options(words: list[str]) -> tuple[dict[str, str], str]:
    options: dict[str, str] = {}
    name = ""
    i = 0
    while i < len(words):
        word = words[i]
        if word in _WITH_VALUE and i + 1 < len(words):
            options[word] = words[i + 1]
            i += 2
            continue
        if not word.startswith("-"):
            name = word
        i += 1
    return options, name


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def from_sysusers(text: str, source: str) -> list[AccountRequest]:
    """The `u` and `g` lines of a sysusers.d file."""
    requests = []
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) < 2 or words[0] not in ("u", "u!", "g"):
            continue
        ident = words[2] if len(words) > 2 else "-"
        if words[0] == "g":
            requests.append(AccountRequest("group", words[1], _int(ident), source=source))
            continue
        uid, _, gid = ident.partition(":")
        gecos = words[3] if len(words) > 3 and words[3] != "-" else ""
        home = words[4] if len(words) > 4 and words[4] != "-" else "/"
        shell = words[5] if len(words) > 5 and words[5] != "-" else "/sbin/nologin"
        group = gid if gid and not gid.isdigit() else words[1]
        requests.append(AccountRequest("user", words[1], _int(uid), group, gecos, home, shell, source))
    return requests


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

    def create(self, requests: list[AccountRequest]) -> None:
        for r in sorted(requests, key=lambda r: (r.kind != "group", r.name)):
            if r.kind == "group":
                self._group(r.name, r.id)
        for r in sorted((r for r in requests if r.kind == "user"), key=lambda r: r.name):
            if r.name in self.users:
                continue
            gid = self._group(r.group or r.name, None)
            uid = self._allocate(r.name, r.id, self.users, self.previous_users, prefer=gid)
            self.users[r.name] = uid
            line = f"{r.name}:x:{uid}:{gid}:{r.gecos}:{r.home}:{r.shell}"
            self.texts[self.layout[0]] = _append(self.texts.get(self.layout[0], ""), line)
            self.added.append(f"user {r.name} ({uid}, from {r.source})")

    def _group(self, name: str, wanted: int | None) -> int:
        if name in self.groups:
            return self.groups[name]
        gid = self._allocate(name, wanted, self.groups, self.previous_groups)
        self.groups[name] = gid
        self.texts[self.layout[1]] = _append(self.texts.get(self.layout[1], ""), f"{name}:x:{gid}:")
        self.added.append(f"group {name} ({gid})")
        return gid

    @staticmethod
    def _allocate(
        name: str, wanted: int | None, taken: dict[str, int], previous: dict[str, int], prefer: int | None = None
    ) -> int:
        used = set(taken.values())
        for candidate in (wanted, previous.get(name), prefer):
            if candidate is not None and candidate not in used:
                return candidate
        reserved = used | set(previous.values())  # another account's earlier id stays theirs
        for candidate in range(SYSTEM_MAX, SYSTEM_MIN - 1, -1):
            if candidate not in reserved:
                return candidate
        raise ValueError(f"no free system id left for {name}")

    def write(self, repo: Repo, tree: MutableTree, labeler: Labeler | None) -> None:
        """Replace the tree's account files with the extended ones (only when something was added)."""
        if not self.added:
            return
        for path in self.layout:
            parts = path.split("/")
            parent = ostree.tree_walk(tree, parts[:-1])
            if parent is None:
                raise ValueError(f"the base has no /{'/'.join(parts[:-1])} for its account files")
            mode = stat.S_IFREG | 0o644
            xattrs = label_xattrs(labeler, "/" + path, mode)
            csum = repo.write_file(0, 0, mode, self.texts[path].encode(), xattrs)
            ostree.tree_replace_file(parent, parts[-1], csum)


def _append(text: str, line: str) -> str:
    return (text if not text or text.endswith("\n") else text + "\n") + line + "\n"

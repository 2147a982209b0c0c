"""Which users and groups a package declares: sysusers.d files (`u`, `g`, `m`, `r` lines) and useradd/groupadd
in %pre. Plan and apply both ask `declared()`, so what a plan promises to create is what apply creates."""

from __future__ import annotations

import re
import shlex
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from reconcile.ostree import Repo
from reconcile.rpm import header as h
from reconcile.rpm.header import Header
from reconcile.rpm.nevra import Nevra, pkgcache_ref
from reconcile.rpm.payload import read_payload_files
from reconcile.rpm.scriptlets import RUN, ScriptKind
from reconcile.rpm.treerules import tree_path

SYSUSERS_DIRS = ("/usr/lib/sysusers.d/", "/etc/sysusers.d/")


class AccountKind(StrEnum):
    USER = "user"
    GROUP = "group"


@dataclass(frozen=True)
class AccountRequest:
    kind: AccountKind
    name: str
    id: int | None = None
    group: str | None = None
    gecos: str = ""
    home: str = "/"
    shell: str = "/sbin/nologin"
    source: str = ""


@dataclass(frozen=True)
class Membership:
    user: str
    group: str
    source: str = ""


@dataclass
class Declared:
    """Everything a set of packages asks for; `ranges` replace the default system id range, as in sysusers."""

    accounts: list[AccountRequest] = field(default_factory=list)
    members: list[Membership] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def __iadd__(self, other: Declared) -> Declared:
        self.accounts += other.accounts
        self.members += other.members
        self.ranges += other.ranges
        return self

    def __bool__(self) -> bool:
        return bool(self.accounts or self.members)

    def creates(self, kind: AccountKind, name: str) -> str | None:
        """Where the declaration that creates this user or group comes from, or None."""
        for r in self.accounts:
            if r.name == name and r.kind == kind:
                return r.source
            if kind is AccountKind.GROUP and r.kind is AccountKind.USER and (r.group or r.name) == name:
                return r.source
        for mem in self.members:  # an `m` line creates a missing user and group implicitly
            if (mem.user if kind is AccountKind.USER else mem.group) == name:
                return mem.source
        return None


def sysusers_paths(hdr: Header) -> set[str]:
    return {f.path for f in h.file_entries(hdr) if f.path.startswith(SYSUSERS_DIRS) and stat.S_ISREG(f.mode)}


def sysusers_texts(repo: Repo, nevra: Nevra, rpm: Path | None, paths: set[str]) -> dict[str, bytes]:
    """The sysusers.d files' content, from the RPM file when there is one, else from its package cache commit."""
    if not paths:
        return {}
    if rpm is not None:
        with open(rpm, "rb") as f:
            return read_payload_files(f, h.read_rpm_headers(f), paths)
    commit = repo.resolve(pkgcache_ref(nevra))
    out = {}
    for path in paths:
        where = tree_path(path, allow_skeleton=False)
        found = repo.lookup_path(commit, where) if commit and where else None
        if found and found[0] == "file":
            out[path] = repo.read_bytes(found[1], limit=1 << 20)
    return out


def declared(hdr: Header, package: str, sysusers: dict[str, bytes]) -> Declared:
    """A package's declarations: `sysusers` holds the content of its sysusers.d files (sysusers_paths)."""
    out = Declared(from_pre_script(hdr, package))
    for path, data in sorted(sysusers.items()):
        out += from_sysusers(data.decode("utf-8", "replace"), f"{package} {path}")
    return out


def from_pre_script(hdr: Header, package: str) -> list[AccountRequest]:
    """useradd/groupadd calls in a %pre script (the common `getent ... || useradd ...` idiom included)."""
    body = hdr.string(RUN[ScriptKind.PRE][0])
    requests = []
    for match in re.finditer(r"\b(useradd|groupadd)\b([^\n;|&]*)", body):
        if "#" in body[body.rfind("\n", 0, match.start()) + 1 : match.start()]:
            continue  # commented out
        try:
            words = shlex.split(match.group(2))
        except ValueError:
            continue
        options, name = _options(words)
        if not name:
            continue
        source = f"{package} %pre"
        if match.group(1) == "groupadd":
            requests.append(AccountRequest(AccountKind.GROUP, name, _int(options.get("-g")), source=source))
        else:
            group = options.get("-g")
            requests.append(
                AccountRequest(
                    AccountKind.USER,
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


def _field(words: list[str], i: int, default: str) -> str:
    return words[i] if len(words) > i and words[i] != "-" else default


def from_sysusers(text: str, source: str) -> Declared:
    """The `u`, `g`, `m` and `r` lines of a sysusers.d file (sysusers.d(5))."""
    out = Declared()
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) < 2:
            continue
        kind, name = words[0].rstrip("!"), words[1]
        ident = _field(words, 2, "")
        if kind == "g":
            out.accounts.append(AccountRequest(AccountKind.GROUP, name, _int(ident), source=source))
        elif kind == "u":
            uid, _, gid = ident.partition(":")
            group = gid if gid and not gid.isdigit() else name
            gecos, home, shell = _field(words, 3, ""), _field(words, 4, "/"), _field(words, 5, "/sbin/nologin")
            out.accounts.append(AccountRequest(AccountKind.USER, name, _int(uid), group, gecos, home, shell, source))
        elif kind == "m" and ident:
            out.members.append(Membership(name, ident, source))
        elif kind == "r" and ident:
            low, _, high = ident.partition("-")
            if _int(low) is not None and _int(high or low) is not None:
                out.ranges.append((int(low), int(high or low)))
    return out

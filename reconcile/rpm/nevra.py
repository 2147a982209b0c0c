"""Package identity: NEVRA values, their wire form, and package-cache ref names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconcile.rpm import header as h

PKGCACHE_PREFIX = "reconcile/pkg"
_SAFE = re.compile(r"[A-Za-z0-9.\-]")


@dataclass(frozen=True, order=True, slots=True)
class Nevra:
    name: str
    epoch: int
    version: str
    release: str
    arch: str

    @property
    def evr(self) -> str:
        """`[epoch:]version-release`, the epoch omitted when 0 (as the plan format specifies)."""
        prefix = f"{self.epoch}:" if self.epoch else ""
        return f"{prefix}{self.version}-{self.release}"

    def __str__(self) -> str:
        return f"{self.name}-{self.evr}.{self.arch}"

    def as_tuple(self) -> tuple[str, str, str, str, str]:
        """The `(sssss)` form stored in commit metadata."""
        return (self.name, str(self.epoch), self.version, self.release, self.arch)

    @classmethod
    def from_tuple(cls, t: tuple[str, str, str, str, str] | list[str]) -> Nevra:
        name, epoch, version, release, arch = t
        return cls(name, int(epoch or 0), version, release, arch)

    @classmethod
    def from_header(cls, hdr: h.Header) -> Nevra:
        return cls(
            hdr.string(h.NAME),
            hdr.integer(h.EPOCH, 0) or 0,
            hdr.string(h.VERSION),
            hdr.string(h.RELEASE),
            hdr.string(h.ARCH),
        )

    @classmethod
    def parse(cls, text: str) -> Nevra:
        """The inverse of str(): `name-[epoch:]version-release.arch`."""
        name_evr, _, arch = text.rpartition(".")
        rest, _, release = name_evr.rpartition("-")
        name, _, version = rest.rpartition("-")
        if not (name and version and release and arch):
            raise ValueError(f"{text!r} is not a NEVRA")
        return cls.from_evr(name, f"{version}-{release}", arch)

    @classmethod
    def from_evr(cls, name: str, evr: str, arch: str) -> Nevra:
        epoch = 0
        if ":" in evr:
            e, evr = evr.split(":", 1)
            epoch = int(e or 0)
        version, _, release = evr.rpartition("-")
        return cls(name, epoch, version, release, arch)


def _escape(part: str) -> str:
    out = []
    for ch in part:
        if ch == "_":
            out.append("__")
        elif _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode())
    return "".join(out)


def pkgcache_ref(nevra: Nevra) -> str:
    """`reconcile/pkg/<name>/<evr>.<arch>`, characters outside [A-Za-z0-9.-] escaped as `_XX`."""
    return f"{PKGCACHE_PREFIX}/{_escape(nevra.name)}/{_escape(nevra.evr)}.{_escape(nevra.arch)}"


def rpm_ostree_pkgcache_ref(nevra: Nevra) -> str:
    """Where rpm-ostree caches a package: `rpmostree/pkg/...`, quoted the same way (`rpmostree-rpm-util.cxx`)."""
    return f"rpmostree/pkg/{_escape(nevra.name)}/{_escape(nevra.evr)}.{_escape(nevra.arch)}"


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version segment comparison (tilde sorts before anything, caret after the base version)."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not a[i].isalnum() and a[i] not in "~^":
            i += 1
        while j < len(b) and not b[j].isalnum() and b[j] not in "~^":
            j += 1
        for mark in "~^":
            ca = i < len(a) and a[i] == mark
            cb = j < len(b) and b[j] == mark
            if ca or cb:
                if not (ca and cb):
                    if mark == "~":
                        return -1 if ca else 1
                    if i >= len(a):
                        return -1
                    if j >= len(b):
                        return 1
                    return -1 if ca else 1
                i += 1
                j += 1
                break
        else:
            if i >= len(a) or j >= len(b):
                break
            numeric = a[i].isdigit()
            si, sj = i, j
            test = str.isdigit if numeric else str.isalpha
            while i < len(a) and test(a[i]):
                i += 1
            while j < len(b) and test(b[j]):
                j += 1
            sa, sb = a[si:i], b[sj:j]
            if not sb:
                return 1 if numeric else -1
            if numeric:
                sa, sb = sa.lstrip("0"), sb.lstrip("0")
                if len(sa) != len(sb):
                    return 1 if len(sa) > len(sb) else -1
            if sa != sb:
                return 1 if sa > sb else -1
            continue
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def evr_compare(a: Nevra, b: Nevra) -> int:
    if a.epoch != b.epoch:
        return 1 if a.epoch > b.epoch else -1
    return rpmvercmp(a.version, b.version) or rpmvercmp(a.release, b.release)

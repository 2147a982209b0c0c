"""Names of the commit metadata keys reconcile writes, and reading them back (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcile.ostree import Variant
from reconcile.rpm.nevra import Nevra

PKGLIST = "reconcile.rpmdb.pkglist"
LAYERED = "reconcile.layered.packages"
LAYERED_SOURCES = "reconcile.layered.sources"
REQUESTED = "reconcile.layered.requested"
REQUESTED_NAMES = "reconcile.layered.requested-names"  # layered packages a request chose
REMOVED_BASE = "reconcile.removed-base-packages"
BASE = "reconcile.base-checksum"
STATE_DIGEST = "reconcile.state-digest"
FORMAT = "reconcile.format-version"
VERSION = "version"

# Package-cache commits.
PKG_NEVRA = "reconcile.nevra"
PKG_HEADER = "reconcile.header"
PKG_CHECKSUM = "reconcile.repodata-checksum"
PKG_OWNERS = "reconcile.owners"
PKG_POLICY = "reconcile.sepolicy"
PKG_IMPORT = "reconcile.import-format"
PKG_MODE = "reconcile.import-mode"


@dataclass(frozen=True)
class LayeredPackage:
    nevra: Nevra
    checksum: str
    repo: str


def layered_packages(meta: dict[str, Any]) -> list[LayeredPackage]:
    sources = dict(meta.get(LAYERED_SOURCES, {}))
    out = []
    for t in meta.get(LAYERED, []):
        nevra = Nevra.from_tuple(t)
        checksum, repo = sources.get(str(nevra), ("", ""))
        out.append(LayeredPackage(nevra, checksum, repo))
    return out


def nevra_list(nevras: list[Nevra]) -> Variant:
    return Variant("a(sssss)", [n.as_tuple() for n in nevras])


def sources_variant(packages: list[LayeredPackage]) -> Variant:
    return Variant("a{s(ss)}", {str(p.nevra): (p.checksum, p.repo) for p in packages})

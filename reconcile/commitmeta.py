"""The commit metadata reconcile writes, and the codecs that read and write it (DESIGN §3): `LayeredCommit` for
layered commits, `PackageCommit` for package-cache commits (compose writes a base's pkglist with the same names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconcile import ostree
from reconcile.container import config_version
from reconcile.ostree import Variant
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.rpmdb import read_headers

PKGLIST = "rpmostree.rpmdb.pkglist"  # rpm-ostree's key and type, on bases and layered commits alike
OLD_PKGLIST = "reconcile.rpmdb.pkglist"  # what commits built before 2026-12 carry instead
LAYERED = "reconcile.layered.packages"
LAYERED_SOURCES = "reconcile.layered.sources"
REQUESTED = "reconcile.layered.requested"
REQUESTED_NAMES = "reconcile.layered.requested-names"  # layered packages a request chose
REMOVED_BASE = "reconcile.removed-base-packages"
REPLACED_BASE = "reconcile.replaced-base-packages"  # new NEVRA -> (base NEVRA, repodata checksum, repo)
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


@dataclass(frozen=True)
class ReplacedBase:
    """A base package the layered commit replaced (`overrides.replace` / `replace-local`) by `package`."""

    base: Nevra
    package: LayeredPackage


def replaced_base(meta: Mapping[str, Any]) -> list[ReplacedBase]:
    out = []
    for new, (old, checksum, repo) in sorted(dict(meta.get(REPLACED_BASE, {})).items()):
        out.append(ReplacedBase(Nevra.parse(old), LayeredPackage(Nevra.parse(new), checksum, repo)))
    return out


def layered_packages(meta: Mapping[str, Any]) -> list[LayeredPackage]:
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


@dataclass(frozen=True)
class LayeredCommit:
    """A layered commit's metadata. A plain base reads as its own base with nothing layered."""

    base: str
    pkglist: list[Nevra] = field(default_factory=list)  # base (minus removals) plus layered, as rpm-ostree lists
    layered: list[LayeredPackage] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)  # the active request specs
    requested_names: list[str] | None = None  # layered packages a request chose (None: an older commit)
    removed_base: list[Nevra] = field(default_factory=list)
    replaced_base: list[ReplacedBase] = field(default_factory=list)
    state_digest: str | None = None
    format_version: int = 0
    version: str | None = None
    built_by: str | None = None  # "reconcile", "rpm-ostree" (client-layer metadata only), None: a plain base

    def to_metadata(self) -> dict[str, Any]:
        """reconcile's own keys; the pkglist goes with rpm-ostree's client-layer keys (rpmostree_meta)."""
        return {
            LAYERED: nevra_list([p.nevra for p in self.layered]),
            LAYERED_SOURCES: sources_variant(self.layered),
            REQUESTED: Variant("as", self.requested),
            REQUESTED_NAMES: Variant("as", self.requested_names or []),
            REMOVED_BASE: nevra_list(self.removed_base),
            REPLACED_BASE: Variant(
                "a{s(sss)}",
                {str(r.package.nevra): (str(r.base), r.package.checksum, r.package.repo) for r in self.replaced_base},
            ),
            BASE: Variant("s", self.base),
            STATE_DIGEST: Variant("s", self.state_digest or ""),
            FORMAT: Variant("u", self.format_version),
        }

    @classmethod
    def from_metadata(cls, commit: str, meta: Mapping[str, Any], *, with_pkglist: bool = True) -> LayeredCommit:
        """`with_pkglist=False` leaves `pkglist` empty: a deployment's state needs none of a base's packages."""
        listed = meta.get(PKGLIST, meta.get(OLD_PKGLIST, [])) if with_pkglist else []
        return cls(
            base=str(meta.get(BASE, commit)),
            pkglist=[Nevra.from_tuple(t) for t in listed],
            layered=layered_packages(meta),
            requested=list(meta.get(REQUESTED, [])),
            requested_names=list(meta[REQUESTED_NAMES]) if REQUESTED_NAMES in meta else None,
            removed_base=[Nevra.from_tuple(t) for t in meta.get(REMOVED_BASE, [])],
            replaced_base=replaced_base(meta),
            state_digest=meta.get(STATE_DIGEST),
            format_version=int(meta.get(FORMAT, 0)),
            version=commit_version(meta),
            built_by="reconcile" if FORMAT in meta else None,
        )


def package_list(repo: ostree.Repo, commit: str) -> list[Nevra]:
    """A commit's packages: its pkglist metadata, else (a base neither rpm-ostree nor reconcile composed) its rpmdb."""
    meta = repo.commit_metadata(commit)
    if PKGLIST in meta or OLD_PKGLIST in meta:
        return LayeredCommit.from_metadata(commit, meta).pkglist
    return sorted(Nevra.from_header(hdr) for hdr in read_headers(repo, commit))


def commit_version(meta: Mapping[str, Any]) -> str | None:
    """`version`, or for an imported container image its config's version label."""
    version = meta.get(VERSION)
    return version if isinstance(version, str) else config_version(meta)


@dataclass(frozen=True)
class PackageCommit:
    """A package-cache commit's metadata: what it was imported from and against."""

    nevra: Nevra
    header: bytes  # lead, signature header and header, as the RPM had them
    checksum: str  # of the RPM, from the repodata (or of the local file)
    owners: dict[str, int]  # the part of the owner map the package uses
    policy: str
    import_format: int
    mode: str

    def to_metadata(self) -> dict[str, Any]:
        return {
            PKG_NEVRA: Variant("(sssss)", self.nevra.as_tuple()),
            PKG_HEADER: ostree.bytes_variant(self.header),
            PKG_CHECKSUM: Variant("s", self.checksum),
            PKG_OWNERS: Variant("a{si}", self.owners),
            PKG_POLICY: Variant("s", self.policy),
            PKG_IMPORT: Variant("u", self.import_format),
            PKG_MODE: Variant("s", self.mode),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> PackageCommit | None:
        """None for a commit that is not a (complete) package-cache commit."""
        if PKG_NEVRA not in meta or not meta.get(PKG_HEADER):
            return None
        return cls(
            nevra=Nevra.from_tuple(meta[PKG_NEVRA]),
            header=bytes(meta[PKG_HEADER]),
            checksum=str(meta.get(PKG_CHECKSUM, "")),
            owners=dict(meta.get(PKG_OWNERS, {})),
            policy=str(meta.get(PKG_POLICY, "")),
            import_format=int(meta.get(PKG_IMPORT, 0)),
            mode=str(meta.get(PKG_MODE, "")),
        )

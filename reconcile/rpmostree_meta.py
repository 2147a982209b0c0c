"""rpm-ostree's client-layer commit metadata. Every layered commit carries it, so rpm-ostree, Cockpit and Zincati
see a reconcile deployment as layered; a commit that carries only it (rpm-ostree built it) is read back as a
`LayeredCommit`. Keys and GVariant types: rpm-ostree's `src/libpriv/rpmostree-core.cxx::rpmostree_context_commit`
(the writer) and `src/libpriv/rpmostree-util.cxx::rpmostree_deployment_get_layered_info` (the reader, which
`g_assert`s the keys of its `clientlayer_version`: so all of them are written, or none)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.ostree import Repo, Variant
from reconcile.rpm.nevra import Nevra, rpm_ostree_pkgcache_ref

CLIENTLAYER = "rpmostree.clientlayer"  # b: the commit is a client layer on its parent
CLIENTLAYER_VERSION = "rpmostree.clientlayer_version"  # u: which of the keys below the reader may assert
PACKAGES = "rpmostree.packages"  # as: the request patterns active at assembly
MODULES = "rpmostree.modules"  # as: always empty; older rpm-ostree fails without it (coreos/rpm-ostree#5048)
REMOVED = "rpmostree.removed-base-packages"  # av of (sstsss): base packages left out
REPLACED_LOCAL = "rpmostree.replaced-base-packages"  # a(vv): (new, old) for local replacements
REPLACED_REMOTE = "rpmostree.replaced-base-remote-packages"  # a{sv}: "repo=ID" -> a(vv) (new, old)
PKGLIST = "rpmostree.rpmdb.pkglist"  # a(sssss): every package of the tree, as `rpm-ostree db` reads it
RPMMD_REPOS = "rpmostree.rpmmd-repos"  # aa{sv}: {id: s, timestamp: t} of the repos resolved against
STATE = "rpmostree.state-sha512"  # s: identifies the layering state (rpm-ostree compares it on upgrade)
SPEC = "rpmostree.spec"  # a{sv}: the layer's treespec, clientlayer_version 0 (before 2017)
PKG_HEADER = "rpmostree.metadata"  # ay, on rpm-ostree's package-cache commits: lead, signature and header

WRITTEN_VERSION = 6  # the clientlayer_version whose keys are all written here (rpm-ostree writes 6 too)
LOCAL_REPO = "@local"


@dataclass(frozen=True)
class Replacement:
    """A base package (`old`) replaced by `new`, from a repo (its id) or a local RPM (`@local`)."""

    new: Nevra
    old: Nevra
    repo: str


def nevra_variant(n: Nevra) -> Variant:
    """rpm-ostree's `(sstsss)` NEVRA: the NEVRA string, name, epoch, version, release, arch."""
    return Variant("(sstsss)", (str(n), n.name, n.epoch, n.version, n.release, n.arch))


def pkglist_variant(nevras: Iterable[Nevra]) -> Variant:
    return Variant("a(sssss)", [n.as_tuple() for n in sorted(nevras)])


def state_sha512(state_digest: str) -> str:
    """A SHA-512 that changes exactly when reconcile's state digest does (it cannot equal rpm-ostree's own)."""
    return hashlib.sha512(f"reconcile-state:{state_digest}".encode()).hexdigest()


def client_layer(
    pkglist: Iterable[Nevra],
    active_requests: list[str],
    removed: list[Nevra],
    replaced: list[Replacement],
    repos: list[tuple[str, int]],
    state_digest: str,
) -> dict[str, Any]:
    """Every key rpm-ostree writes for a client layer of clientlayer_version 6 (`version` comes from the base)."""
    remote: dict[str, list[tuple[Variant, Variant]]] = {}
    for r in replaced:
        if r.repo != LOCAL_REPO:
            remote.setdefault(f"repo={r.repo}", []).append((nevra_variant(r.new), nevra_variant(r.old)))
    return {
        CLIENTLAYER: Variant("b", True),
        CLIENTLAYER_VERSION: Variant("u", WRITTEN_VERSION),
        PACKAGES: Variant("as", sorted(active_requests)),
        MODULES: Variant("as", []),
        REMOVED: Variant("av", [nevra_variant(n) for n in sorted(removed)]),
        REPLACED_LOCAL: Variant(
            "a(vv)", [(nevra_variant(r.new), nevra_variant(r.old)) for r in replaced if r.repo == LOCAL_REPO]
        ),
        REPLACED_REMOTE: Variant("a{sv}", {k: Variant("a(vv)", v) for k, v in sorted(remote.items())}),
        PKGLIST: pkglist_variant(pkglist),
        RPMMD_REPOS: Variant(
            "aa{sv}", [{"id": Variant("s", i), "timestamp": Variant("t", max(t, 0))} for i, t in sorted(repos)]
        ),
        STATE: Variant("s", state_sha512(state_digest)),
    }


def cached_header(repo: Repo, nevra: Nevra, sha256: str) -> bytes | None:
    """Lead, signature header and header of a local RPM rpm-ostree layered: its `requested-local` pin is the
    SHA-256 of exactly these bytes (`rpmostree.metadata` of its `rpmostree/pkg/...` commit, rpmostree-importer.cxx)."""
    commit = repo.resolve(rpm_ostree_pkgcache_ref(nevra))
    if commit is None:
        return None
    raw = repo.commit_metadata(commit).get(PKG_HEADER)
    if not isinstance(raw, bytes) or hashlib.sha256(raw).hexdigest() != sha256:
        return None
    return raw


def is_client_layer(meta: Mapping[str, Any]) -> bool:
    """As rpm-ostree decides it (`rust/src/daemon.rs::deployment_layeredmeta_from_commit_impl`)."""
    flag = meta.get(CLIENTLAYER)
    return bool(flag) if flag is not None else SPEC in meta


@dataclass(frozen=True)
class ClientLayer:
    """What an rpm-ostree-built client layer says about itself."""

    version: int
    requested: list[str]
    removed: list[Nevra]
    replaced: list[Replacement]
    pkglist: list[Nevra] | None  # None: the commit has no rpmdb.pkglist
    state: str | None


def read_client_layer(commit: str, meta: Mapping[str, Any]) -> ClientLayer:
    """The client-layer keys of `meta`, checked as rpm-ostree's reader asserts them: ValueError names the key."""
    version = _typed(commit, meta, CLIENTLAYER_VERSION, int, 0)
    if version >= 1:
        requested = [str(s) for s in _typed(commit, meta, PACKAGES, list)]
    else:
        spec = _typed(commit, meta, SPEC, dict)
        requested = [str(s) for s in spec.get("packages", [])]
    removed, replaced = [], []
    if version >= 2:
        removed = [_nevra(commit, REMOVED, v) for v in _typed(commit, meta, REMOVED, list)]
        replaced = _pairs(commit, REPLACED_LOCAL, _typed(commit, meta, REPLACED_LOCAL, list), LOCAL_REPO)
    if version >= 6:
        for source, pairs in sorted(_typed(commit, meta, REPLACED_REMOTE, dict).items()):
            replaced += _pairs(commit, REPLACED_REMOTE, pairs, source.removeprefix("repo="))
    pkglist = [Nevra.from_tuple(t) for t in meta[PKGLIST]] if PKGLIST in meta else None
    state = meta.get(STATE)
    return ClientLayer(version, requested, removed, replaced, pkglist, state if isinstance(state, str) else None)


def _pairs(commit: str, key: str, pairs: list[Any], repo: str) -> list[Replacement]:
    return [Replacement(_nevra(commit, key, new), _nevra(commit, key, old), repo) for new, old in pairs]


def _typed(commit: str, meta: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    if key not in meta:
        if default is not None:
            return default
        raise ValueError(f"the rpm-ostree client layer {commit[:12]} lacks {key}, which its clientlayer_version needs")
    value = meta[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"{key} of the rpm-ostree client layer {commit[:12]} is not of rpm-ostree's type")
    return value


def _nevra(commit: str, key: str, value: Any) -> Nevra:
    """A `(sstsss)` NEVRA (its string first)."""
    try:
        return Nevra.parse(str(value[0]))
    except (ValueError, TypeError, IndexError):
        raise ValueError(f"{key} of the rpm-ostree client layer {commit[:12]} holds {value!r}, not a NEVRA") from None

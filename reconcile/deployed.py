"""What is deployed now: a read-only snapshot of one deployment, from its origin keyfile and commit metadata."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from reconcile import commitmeta, rpmostree_meta
from reconcile.commitmeta import LayeredPackage, ReplacedBase
from reconcile.errors import ReconcileError, UsageError
from reconcile.kargs import split_options
from reconcile.origin_keyfile import read_origin_keyfile
from reconcile.ostree import Deployment, Repo, Sysroot


@dataclass(frozen=True)
class DeploymentState:
    stateroot: str
    index: int
    checksum: str
    serial: int
    booted: bool
    refspec: str | None
    requested: list[str]
    local: list[str]
    override_remove: list[str]
    recommends: bool
    ignore_scripts: list[str]
    releasever: str | None
    localpkg_gpgcheck: bool | None
    base_checksum: str
    layered: list[LayeredPackage]
    active_requests: list[str]
    requested_names: list[str] | None  # None for commits built before it was recorded
    removed_base: list[str]
    state_digest: str | None
    format_version: int
    version: str | None
    timestamp: int
    unsupported_origin_keys: list[str] = field(default_factory=list)  # rpm-ostree keys reconcile cannot honour
    container_image: str | None = None  # `container-image-reference`: an imported container image is the base
    pinned_commit: str | None = None  # `override-commit`, when the pin was by commit
    pinned_version: str | None = None  # the pin was by version (its commit is in `override-commit`)
    override_replace: list[str] = field(default_factory=list)  # the origin's overrides.replace specs
    override_replace_local: list[str] = field(default_factory=list)  # its replace-local pins
    replaced_base: list[ReplacedBase] = field(default_factory=list)  # base packages the commit replaced
    kernel_args: list[str] | None = None  # its bootconfig `options` without libostree's ostree=; None: not read
    staged: bool = False  # finalized at shutdown (ostree-finalize-staged.service)
    pinned: bool = False  # `ostree admin pin`: never removed by cleanup or garbage collection
    built_by: str | None = None  # who layered the commit: "reconcile" or "rpm-ostree"; None: a plain base

    @property
    def id(self) -> str:
        return f"{self.checksum}.{self.serial}"

    @functools.cached_property  # asked once per resolved package: built once
    def kept_builds(self) -> set[tuple[str, str]]:
        """(NEVRA, repodata checksum) of every package layered now: what a new plan can reuse as is."""
        return {(str(p.nevra), p.checksum) for p in [*self.layered, *(r.package for r in self.replaced_base)]}

    def keeps(self, nevra: str, checksum: str) -> bool:
        """The build is layered now. rpm-ostree records no repodata checksums: any build of the NEVRA is the one."""
        kept = self.kept_builds
        return (nevra, checksum) in kept or (self.built_by == "rpm-ostree" and (nevra, "") in kept)

    @property
    def is_layered(self) -> bool:
        return self.state_digest is not None

    @property
    def inactive_requests(self) -> list[str]:
        active = set(self.active_requests)
        return [r for r in self.requested if r not in active]

    def normalized_origin(self) -> dict[str, Any]:
        """The same shape as DesiredOrigin.normalized(), to compare what is deployed with what is desired."""
        return {
            "baserefspec": self.refspec,
            "container_image": self.container_image,
            "base_commit": self.pinned_commit,
            "base_version": self.pinned_version,
            "requested": sorted(self.requested),
            "local": sorted(self.local),
            "override_remove": sorted(self.override_remove),
            "override_replace": sorted(self.override_replace),
            "override_replace_local": sorted(self.override_replace_local),
            "recommends": self.recommends,
            "ignore_scripts": sorted(self.ignore_scripts),
            "releasever": self.releasever,
            "localpkg_gpgcheck": self.localpkg_gpgcheck,
        }


def read_deployment(sysroot: Sysroot, repo: Repo, dep: Deployment, index: int) -> DeploymentState:
    fields = read_origin_keyfile(dep.get_origin())
    checksum = dep.get_csum()
    commit = read_layered(repo, checksum)
    booted = sysroot.booted()
    return DeploymentState(
        stateroot=dep.get_osname(),
        index=index,
        checksum=checksum,
        serial=dep.get_deployserial(),
        booted=booted is not None and booted.equal(dep),
        refspec=fields.refspec,
        container_image=fields.container_image,
        pinned_commit=fields.override_commit if fields.base_version is None else None,
        pinned_version=fields.base_version,
        requested=fields.requested,
        local=fields.local,
        override_remove=fields.removals,
        override_replace=fields.replace,
        override_replace_local=fields.replace_local,
        replaced_base=commit.replaced_base,
        recommends=fields.recommends,
        ignore_scripts=fields.ignore_scripts,
        releasever=fields.releasever,
        localpkg_gpgcheck=fields.localpkg_gpgcheck,
        base_checksum=commit.base,
        layered=commit.layered,
        active_requests=commit.requested,
        requested_names=commit.requested_names,
        removed_base=[str(n) for n in commit.removed_base],
        state_digest=commit.state_digest,
        format_version=commit.format_version,
        version=commit.version,
        timestamp=repo.commit_timestamp(checksum),
        unsupported_origin_keys=fields.unsupported,
        kernel_args=_kernel_args(dep),
        staged=dep.is_staged(),
        pinned=dep.is_pinned(),
        built_by=commit.built_by,
    )


def read_layered(repo: Repo, checksum: str) -> commitmeta.LayeredCommit:
    """A commit's layering, whoever built it: reconcile's own keys (read without the pkglist, which a deployment's
    state does not need), else rpm-ostree's client-layer keys."""
    meta = repo.commit_metadata(checksum)
    if commitmeta.FORMAT in meta or not rpmostree_meta.is_client_layer(meta):
        return commitmeta.LayeredCommit.from_metadata(checksum, meta, with_pkglist=False)
    try:
        layer = rpmostree_meta.read_client_layer(checksum, meta)
    except ValueError as e:
        raise ReconcileError(f"Cannot read the deployed commit {checksum}: {e}.") from None
    base = repo.commit_parent(checksum)
    if base is None or not repo.has_commit(base):
        raise ReconcileError(
            f"The deployed commit {checksum} is an rpm-ostree client layer, but its parent (the base) "
            + ("is not recorded." if base is None else f"{base} is not in the repo."),
            hint="Pull the base commit into the sysroot's repo (ostree pull), then run reconcile again.",
        )
    pkglist = layer.pkglist if layer.pkglist is not None else commitmeta.package_list(repo, checksum)
    in_base = set(commitmeta.package_list(repo, base))
    replacing = {r.new for r in layer.replaced}
    return commitmeta.LayeredCommit(
        base=base,
        pkglist=pkglist,
        # rpm-ostree records no repodata checksum: a plan finds each package's build in the repos again
        layered=[LayeredPackage(n, "", "") for n in pkglist if n not in in_base and n not in replacing],
        requested=layer.requested,
        removed_base=layer.removed,
        replaced_base=[ReplacedBase(r.old, LayeredPackage(r.new, "", r.repo)) for r in layer.replaced],
        state_digest=layer.state or "",
        version=commitmeta.commit_version(meta),
        built_by="rpm-ostree",
    )


def _kernel_args(dep: Deployment) -> list[str]:
    bootconfig = dep.get_bootconfig()
    return split_options(bootconfig.get("options") if bootconfig is not None else None)


def all_deployments(sysroot: Sysroot, repo: Repo) -> list[DeploymentState]:
    return [read_deployment(sysroot, repo, dep, i) for i, dep in enumerate(sysroot.deployments())]


def current_deployment(sysroot: Sysroot, repo: Repo, stateroot: str | None) -> tuple[DeploymentState, Deployment]:
    """The default deployment of the stateroot: the one that boots next, which is what new layers build on."""
    deps = sysroot.deployments()
    if not deps:
        raise ReconcileError(
            f"The sysroot {sysroot.path} has no deployment to layer onto.",
            hint="Deploy a base first (ostree admin deploy), then run reconcile.",
        )
    names = list(dict.fromkeys(d.get_osname() for d in deps))
    if stateroot is None:
        booted = sysroot.booted()
        if booted is not None:
            stateroot = booted.get_osname()
        elif len(names) == 1:
            stateroot = names[0]
        else:
            raise UsageError(f"The sysroot has several stateroots ({', '.join(names)}); pick one with --stateroot.")
    for i, dep in enumerate(deps):
        if dep.get_osname() == stateroot:
            return read_deployment(sysroot, repo, dep, i), dep
    raise UsageError(f"The sysroot has no deployment of the stateroot {stateroot!r} (it has: {', '.join(names)}).")


@dataclass(frozen=True)
class Roles:
    """Positions (in boot order) of a stateroot's pending and rollback deployments."""

    pending: list[int]
    rollback: list[int]


def roles(deps: list[Deployment], booted: Deployment | None, stateroot: str) -> Roles:
    """As rpm-ostree: pending is what comes before the booted deployment, rollback what comes after it. In a
    sysroot not booted into this stateroot the default stands in for both sides: it is the pending one (what
    the next boot takes), and the rollback deployments are the ones after it."""
    mine = [i for i, d in enumerate(deps) if d.get_osname() == stateroot]
    at = next((i for i in mine if booted is not None and booted.equal(deps[i])), None)
    if at is None:
        return Roles(pending=mine[:1] if len(mine) > 1 else [], rollback=mine[1:])
    return Roles(pending=[i for i in mine if i < at], rollback=[i for i in mine if i > at])

"""The deployed system as the planner sees it on a real host: a libostree sysroot, its repo's base commits and
their rpmdb, and the package cache in that repo (ports.DeployedSystem)."""

from __future__ import annotations

from pathlib import Path

from reconcile.accounts import sysusers_texts
from reconcile.base import BaseChoice, BaseWanted, choose_base, record_newest
from reconcile.commitmeta import VERSION, commit_version
from reconcile.container import META_CONFIG
from reconcile.context import Context
from reconcile.deployed import DeploymentState, current_deployment
from reconcile.ostree import Deployment, Repo
from reconcile.pkgcache import PackageCache, owners_in_commit
from reconcile.planner.local import LocalPackage, cached_local
from reconcile.rpm import header as h
from reconcile.rpm.header import FileEntry, Header
from reconcile.rpm.nevra import Nevra, pkgcache_ref
from reconcile.rpm.rpmdb import TreeRpmdbReader, read_headers
from reconcile.rpm.treerules import Owners, PathRefused, tree_path
from reconcile.selinux import policy_id

_OS_RELEASE = ("usr/lib/os-release", "etc/os-release", "usr/etc/os-release")


class HostPackages:
    """The package cache of the sysroot's repo, read only."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.cache = PackageCache(repo, owners=None, labeler=None, mode="layer")

    def cached_raw(self, nevra: Nevra, checksum: str) -> bytes | None:
        return self.cache.cached_raw(nevra, checksum)

    def holds(self, nevra: Nevra) -> bool:
        return self.repo.resolve(pkgcache_ref(nevra)) is not None

    def sysusers(self, nevra: Nevra, rpm: Path | None, paths: set[str]) -> dict[str, bytes]:
        return sysusers_texts(self.repo, nevra, rpm, paths)


class OstreeSystem:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.repo = ctx.repo
        self.arch = ctx.arch
        self.reporter = ctx.reporter
        self.packages = HostPackages(ctx.repo)
        self.deployment: Deployment | None = None  # the libostree deployment `current` read, for its /etc
        self._described: dict[str, tuple[str | None, int]] = {}

    def current(self, stateroot: str | None) -> DeploymentState:
        state, self.deployment = current_deployment(self.ctx.sysroot, self.repo, stateroot)
        return state

    def base_commit(self, wanted: BaseWanted, origin: Path) -> BaseChoice:
        choice = choose_base(self.repo, wanted, origin, self.ctx.fetch.deadline)
        if choice.newest is not None and self.deployment is not None:
            version, timestamp = self.describe_commit(choice.newest)
            cachedir = self.ctx.cachedir(self.deployment.get_osname())
            record_newest(cachedir, wanted.refspec, choice.newest, version, timestamp)
        if choice.fetched is not None:
            f = choice.fetched
            self.reporter.info(
                f"Fetched the base {wanted.refspec} to plan: {f.objects} objects, {f.bytes} bytes in {f.seconds:.1f} s."
            )
        return choice

    def cached_local(self, pin: str, origin: Path) -> LocalPackage:
        return cached_local(pin, origin, self.packages.cache)

    def base_headers(self, base: str) -> list[Header]:
        return read_headers(self.repo, base)

    def describe_commit(self, commit: str) -> tuple[str | None, int]:
        if commit not in self._described:
            # Only the keys the version comes from: unpacking a layered commit's package lists costs 10 ms.
            variants = self.repo.commit_metadata_variants(commit)
            meta = {key: variants[key].unpack() for key in (VERSION, META_CONFIG) if key in variants}
            self._described[commit] = commit_version(meta), self.repo.commit_timestamp(commit)
        return self._described[commit]

    def solv_cache(self, base: str, stateroot: str) -> Path | None:
        return self.ctx.cachedir(stateroot) / f"base-{base}.solv"

    def layered_headers(self, current: DeploymentState) -> dict[str, Header]:
        """The rpmdb headers of the packages layered now (base replacements too), read from the deployed commit."""
        packages = [*current.layered, *(r.package for r in current.replaced_base)]
        layered = {str(p.nevra) for p in packages}
        if not layered:
            return {}
        found = {}
        with TreeRpmdbReader(self.repo, current.checksum) as db:
            for hdr in db.named({p.nevra.name for p in packages}):
                if str(Nevra.from_header(hdr)) in layered:
                    found[str(Nevra.from_header(hdr))] = hdr
        return found

    def os_release_version(self, base: str) -> str | None:
        for path in _OS_RELEASE:
            text = self.repo.read_text(base, path)
            if text is None:
                continue
            for line in text.splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "VERSION_ID" and value.strip().strip("\"'"):
                    return value.strip().strip("\"'")
        return None

    def owners(self, base: str) -> Owners:
        return owners_in_commit(self.repo, base)

    def policy_id(self, base: str) -> str:
        return policy_id(self.repo, base)

    def base_entries(self, base: str, paths: list[str], removed: set[str]) -> dict[str, list[tuple[str, FileEntry]]]:
        """The base side costs what the layered packages touch: their directories are looked up in the base
        tree, and only paths found there are looked up in the base rpmdb's index."""
        # A base fetched in part has no dirtrees to look in: its rpmdb alone says which paths it owns.
        in_base = paths if self.repo.is_partial(base) else self._paths_in_tree(base, paths)
        out: dict[str, list[tuple[str, FileEntry]]] = {}
        if not in_base:
            return out
        parsed: dict[str, dict[str, FileEntry]] = {}  # owner -> its file list by path, parsed once
        with TreeRpmdbReader(self.repo, base) as db:
            for path in in_base:
                for hdr in db.owners(path):
                    owner = str(Nevra.from_header(hdr))
                    if owner in removed:
                        continue
                    if owner not in parsed:
                        parsed[owner] = {}
                        for f in h.file_entries(hdr):
                            parsed[owner].setdefault(f.path, f)
                    out.setdefault(path, []).append((owner, parsed[owner][path]))
        return out

    def _paths_in_tree(self, commit: str, paths: list[str]) -> list[str]:
        """Which package paths already exist in a commit, reading one dirtree per directory touched."""
        listings: dict[str, set[str]] = {}
        found = []
        for path in paths:
            try:
                where = tree_path(path, allow_skeleton=False)
            except PathRefused:
                continue  # refused by the tree rules
            if not where:
                continue
            parent, _, name = where.rpartition("/")
            if parent not in listings:
                entry = self.repo.lookup_path(commit, parent) if parent else ("dir", self.repo.commit_root(commit)[0])
                names: set[str] = set()
                if entry and entry[0] == "dir":
                    listing = self.repo.load_dirtree(entry[1])
                    names = {n for n, _ in listing.files} | {n for n, _t, _m in listing.dirs}
                listings[parent] = names
            if name in listings[parent]:
                found.append(path)
        return found

"""The packages an apply must fetch: from the host's repos (opened only when something must be fetched),
verified by rpm before import, and dropped from the download cache once a deployment holds them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reconcile.context import Context
from reconcile.errors import DownloadError, StalePlanError
from reconcile.ostree import Deployment
from reconcile.pkgcache import PackageCache
from reconcile.planner import model as m
from reconcile.repos.host import open_deployment_repos
from reconcile.repos.keys import accept_keys
from reconcile.repos.source import RepoSet, wanted

if TYPE_CHECKING:
    from reconcile.apply.bundle import Bundle


class PackageFetcher:
    def __init__(
        self,
        ctx: Context,
        plan: m.Plan,
        dep: Deployment,
        reposdir: Path | None,
        localpkg_gpgcheck: bool | None,
        *,
        saved: bool,
        bundle: Bundle | None = None,
    ) -> None:
        self.ctx, self.plan, self.dep, self.reposdir = ctx, plan, dep, reposdir
        self.bundle = bundle  # an offline bundle stands in for the host's repos
        self.localpkg_gpgcheck = localpkg_gpgcheck
        self.saved = saved
        self.cache_root = ctx.cachedir(plan.prior.stateroot)
        self._repos: RepoSet | None = None
        self.fetched: list[m.PinnedPackage] = []

    @property
    def repos(self) -> RepoSet:
        if self._repos is None and self.bundle is not None:
            self._repos = self.bundle.repo_set(self.ctx, self.cache_root, self.localpkg_gpgcheck)
        if self._repos is None:
            version = self.plan.target.releasever  # exactly what the plan read the repo files with
            self._repos = open_deployment_repos(
                self.ctx, self.dep, self.reposdir, self.cache_root, version, self.localpkg_gpgcheck, override=version
            )
        return self._repos

    def not_cached(self) -> list[m.PinnedPackage]:
        """Pinned packages the package cache does not hold (so they must be downloaded)."""
        cache = PackageCache(self.ctx.repo, None, None, mode="layer")
        return [p for p in self.plan.target.to_install if cache.cached_raw(p.parsed(), p.checksum) is None]

    def fetch(self, packages: list[m.PinnedPackage]) -> dict[str, Path]:
        """nevra -> a verified local file; a saved plan whose packages cannot be had any more is stale."""
        if not packages:
            return {}
        try:
            files = self.repos.download([wanted(p) for p in packages])
        except DownloadError as e:
            if not self.saved:
                raise
            raise StalePlanError(
                f"The plan is stale: a pinned package can no longer be fetched as planned. {e.message}",
                hint="Run `reconcile plan` again. Nothing was changed.",
            ) from None
        self.fetched += packages
        return files

    def finish(self) -> None:
        """After a deployment: its packages live in the package cache now, and its signing keys are known."""
        if self._repos is not None:
            self._repos.discard([wanted(p) for p in self.fetched])
        if self.plan.keys:
            accept_keys(self.cache_root, [k.fingerprint for k in self.plan.keys])

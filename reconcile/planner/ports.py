"""The three things the planner talks to, as small interfaces: the deployed system, the package source and the
resolver. Production: planner/ostree_system.py (libostree), planner/sources.py (librepo, rpm-md) and planner/solver.py
(libsolv). tests/inmemory.py holds in-memory systems and sources that drive the same planner and solver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import solv

from reconcile.base import BaseChoice, BaseWanted
from reconcile.deployed import DeploymentState
from reconcile.errors import ReconcileError
from reconcile.planner import model as m
from reconcile.planner.local import LocalPackage
from reconcile.planner.solver import Candidate, FileLists, SolveResult, Source
from reconcile.report import Reporter
from reconcile.repos.metadata import RepoMetadata
from reconcile.rpm.header import FileEntry, Header, RpmHeaders
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.treerules import Owners


class CachedPackages(Protocol):
    """The package cache: builds imported before, by NEVRA and repodata checksum."""

    def cached_raw(self, nevra: Nevra, checksum: str) -> bytes | None: ...

    def holds(self, nevra: Nevra) -> bool: ...

    def sysusers(self, nevra: Nevra, rpm: Path | None, paths: set[str]) -> dict[str, bytes]: ...


class DeployedSystem(Protocol):
    """The deployments, the base commits and their packages, and the package cache."""

    @property
    def reporter(self) -> Reporter: ...

    @property
    def packages(self) -> CachedPackages: ...

    def current(self, stateroot: str | None) -> DeploymentState: ...

    def base_commit(self, wanted: BaseWanted, origin: Path) -> BaseChoice:
        """The base commit to build on (fetched as far as planning reads it)."""
        ...

    def cached_local(self, pin: str, origin: Path) -> LocalPackage: ...

    def base_headers(self, base: str) -> list[Header]: ...

    def describe_commit(self, commit: str) -> tuple[str | None, int]:
        """A commit's `version` metadata (or None) and its timestamp."""
        ...

    def solv_cache(self, base: str, stateroot: str) -> Path | None: ...

    def layered_headers(self, current: DeploymentState) -> dict[str, Header]: ...

    def os_release_version(self, base: str) -> str | None: ...

    def owners(self, base: str) -> Owners: ...

    def policy_id(self, base: str) -> str: ...

    def base_entries(self, base: str, paths: list[str], removed: set[str]) -> dict[str, list[tuple[str, FileEntry]]]:
        """For each path the base has, its owners' entries (packages in `removed` do not count)."""
        ...


class Resolver(Protocol):
    """Dependency resolution with the base's packages installed and locked."""

    def add_base(self, headers: Callable[[], list[Header]], cache: Path | None = None) -> None: ...

    def add_layered(self, headers: list[Header], sources: dict[str, Source]) -> None: ...

    def add_local(self, hdr: Header, source: Source) -> solv.XSolvable: ...

    def add_repo(self, meta: RepoMetadata) -> None: ...

    def add_packages(self, repo_id: str, packages: list[tuple[Header, Source]], priority: int = 99) -> None: ...

    def add_filelists(self, fetch: FileLists) -> None: ...

    def base_release(self) -> str | None: ...

    def resolve(
        self,
        requests: list[str],
        recommends: bool,
        *,
        remove: tuple[str, ...] | list[str] = (),
        update: bool = False,
        local: tuple[solv.XSolvable, ...] | list[solv.XSolvable] = (),
        filelists: FileLists | None = None,
        replace: tuple[str, ...] | list[str] = (),
        replace_local: tuple[solv.XSolvable, ...] | list[solv.XSolvable] = (),
    ) -> SolveResult: ...


class PackageSource(Protocol):
    """The repos of one plan: their packages for the resolver, and the headers and files of what it chose."""

    @property
    def releasever(self) -> str | None: ...

    @property
    def warnings(self) -> list[str]: ...

    def feed(self, resolver: Resolver, *, force: bool) -> list[m.RepoUsed]: ...

    def filelists(self, meta: RepoMetadata) -> Path | None: ...

    def read_headers(self, candidates: list[Candidate], whole: bool) -> dict[str, RpmHeaders]: ...

    def download(self, candidates: list[Candidate]) -> dict[str, Path]: ...

    def discard(self, candidates: list[Candidate]) -> None: ...

    def signature_checks(
        self, raws: dict[str, tuple[str, bytes]], new: set[str]
    ) -> tuple[list[m.Check], list[m.SigningKey]]: ...

    def require_unavailable(self, new: list[Candidate], update: bool) -> list[str]:
        """Raises when a repo is down and the plan needs it; else the warnings for the repos skipped."""
        ...

    def unavailable_error(self, cause: ReconcileError) -> ReconcileError | None: ...


class SourceOpener(Protocol):
    """Opens the package source a deployment configures; `releasever` is the base's, detected."""

    def __call__(
        self, current: DeploymentState, releasever: str | None, local_check: bool | None, override: str | None
    ) -> PackageSource: ...

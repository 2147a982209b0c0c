"""The package source of one command: the enabled repos, their metadata, signing keys and package downloads.

Downloaded packages are kept in the cache until a deployment has used them, so an interrupted download
resumes, `apply --download-only` can stage everything ahead, and `--cache-only` can finish offline. Every
package from a `gpgcheck` repo is checked by rpm against the repo's keys before anything imports it; one
that fails is deleted again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconcile.errors import DownloadError, PackageError, ReconcileError, SignatureError
from reconcile.files import locked
from reconcile.openpgp import PublicKey
from reconcile.report import Reporter
from reconcile.repos.config import FetchMode, RepoConfig, RepoConfigs
from reconcile.repos.keys import KeyStore
from reconcile.repos.metadata import RepoMetadata, RepoUnavailable, fetch_filelists, refresh
from reconcile.repos.transfer import Download, Downloader, TransferError, local_path, repo_label
from reconcile.rpm import signatures

LOCAL_REPO = "@local"


@dataclass(frozen=True)
class WantedPackage:
    """What a download needs to know of a pinned package."""

    nevra: str
    repo: str
    checksum: str
    location: str
    baseurl: str
    size: int = 0


class Pinned(Protocol):
    """A package pinned by a plan or chosen by the solver: what a download needs of it."""

    @property
    def nevra(self) -> Any: ...
    @property
    def repo(self) -> str: ...
    @property
    def checksum(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def baseurl(self) -> str: ...
    @property
    def size(self) -> int: ...


def wanted(p: Pinned) -> WantedPackage:
    return WantedPackage(str(p.nevra), p.repo, p.checksum, p.location, p.baseurl, p.size)


class RepoSet:
    def __init__(
        self,
        configs: RepoConfigs,
        cache_root: Path,
        reporter: Reporter,
        mode: FetchMode | None = None,
        root: Path | None = None,
        *,
        localpkg_gpgcheck: bool = False,
    ) -> None:
        self.configs = configs.repos
        self.by_id = {c.id: c for c in configs.repos}
        self.warnings = list(configs.warnings)
        self.cache_root = cache_root
        self.mode = mode or FetchMode()
        self.reporter = reporter
        self.downloader = Downloader(reporter, self.mode.deadline)
        self.keys = KeyStore(
            cache_root, self.downloader, cache_only=self.mode.cache_only, refresh=self.mode.refresh, root=root
        )
        self.localpkg_gpgcheck = localpkg_gpgcheck
        self.unavailable: dict[str, RepoUnavailable] = {}
        self.releasever: str | None = None  # what $releasever was, for the plan to record

    # -- metadata ------------------------------------------------------------------------------------
    def load_metadata(self, *, force: bool = False) -> list[RepoMetadata]:
        """Every repo's metadata; an unreachable repo is skipped with a warning when skip_if_unavailable is
        set, and otherwise remembered in `unavailable` (the caller decides whether the plan needed it)."""
        out = []
        for cfg in self.configs:
            try:
                meta = refresh(
                    cfg,
                    self.cache_root,
                    self.downloader,
                    self._gnupg_home,
                    cache_only=self.mode.cache_only,
                    force=force or self.mode.refresh,
                )
            except RepoUnavailable as e:
                if cfg.skip_if_unavailable:
                    self.warnings.append(f"{e.message} The repo is skipped (skip_if_unavailable=1).")
                else:
                    self.unavailable[cfg.id] = e
                continue
            if "modules" in meta.kinds:
                self.warnings.append(
                    f"{repo_label(cfg)} has modular metadata; reconcile applies no module filtering, so packages "
                    "of every stream are candidates."
                )
            out.append(meta)
        return out

    def filelists(self, meta: RepoMetadata) -> Path | None:
        return fetch_filelists(meta, self.downloader, cache_only=self.mode.cache_only)

    def _gnupg_home(self, cfg: RepoConfig) -> Path:
        try:
            return self.keys.gnupg_home(self.keys.for_repo(cfg))
        except RepoUnavailable:
            raise
        except ReconcileError as e:  # its keys cannot be had: the repo cannot be used (skip_if_unavailable applies)
            raise RepoUnavailable(e.message, hint=e.hint) from None

    def keys_for(self, repo_id: str) -> list[PublicKey] | None:
        """The keys packages of `repo_id` must be signed with; None when that repo checks no signatures."""
        if repo_id == LOCAL_REPO:
            if not self.localpkg_gpgcheck:
                return None
            return [k for cfg in self.configs if cfg.gpgkeys for k in self.keys.for_repo(cfg)]
        cfg = self.by_id.get(repo_id)
        if cfg is None or not cfg.gpgcheck:
            return None
        return self.keys.for_repo(cfg)

    # -- packages ------------------------------------------------------------------------------------
    def package_path(self, p: WantedPackage) -> Path:
        """Where a downloaded package is kept until a deployment used it."""
        if p.repo == LOCAL_REPO:
            return _local_path(p)
        cfg = self.by_id.get(p.repo)
        key = cfg.cache_key if cfg is not None else hashlib.sha256(p.repo.encode()).hexdigest()[:16]
        return self.cache_root / "packages" / key / Path(p.location).name

    def download(self, packages: list[WantedPackage]) -> dict[str, Path]:
        """nevra -> verified local file, for every package (downloaded unless the cache has it)."""
        out: dict[str, Path] = {}
        todo: list[Download] = []
        missing: list[str] = []
        for p in packages:
            path = out[p.nevra] = self.package_path(p)
            if p.repo == LOCAL_REPO:
                _check_local(p, path)
                continue
            cfg = self.by_id.get(p.repo)
            if cfg is None:
                raise DownloadError(
                    f"{p.nevra} comes from the repo [{p.repo}], which is not configured (any more).",
                    hint="Add the repo back, or plan again.",
                )
            algorithm, _, digest = p.checksum.partition(":")
            if not digest:
                raise PackageError(f"The repo metadata of [{p.repo}] gives no checksum for {p.nevra}; refusing it.")
            if _complete(path, algorithm, digest):
                continue
            if self.mode.cache_only:
                missing.append(f"{p.nevra} [{p.repo}]")
            todo.append(Download(cfg, p.location, path, p.nevra, (algorithm, digest), p.size, resume=True))
        if missing:
            raise ReconcileError(
                f"--cache-only: {len(missing)} package(s) are neither in the package cache nor downloaded: "
                + ", ".join(missing)
                + ".",
                hint="Run `reconcile apply --download-only` while the repos are reachable. Nothing was changed.",
            )
        if todo:
            self._fetch_packages(todo)
        self.verify({p.nevra: (p, out[p.nevra]) for p in packages})
        return out

    def _fetch_packages(self, todo: list[Download]) -> None:
        """Applies fetch before they take the sysroot lock, so two may fetch at once: one at a time per cache,
        and what the other finished meanwhile is not fetched again."""
        where = self.cache_root / "packages"
        with locked(
            self.cache_root / ".packages.lock",
            f"the package downloads in {where}",
            self.reporter.info,
            self.downloader.deadline,
        ):
            todo = [d for d in todo if d.checksum is None or not _complete(d.dest, *d.checksum)]
            size = sum(d.size for d in todo)
            try:
                self.downloader.fetch(todo, f"Downloading {len(todo)} package(s), {size / 1048576:.1f} MiB")
            except TransferError as e:
                raise DownloadError(e.message, e.hint) from None

    def verify(self, files: dict[str, tuple[WantedPackage, Path]]) -> list[PublicKey]:
        """rpm's full signature check of every file whose repo asks for one; a failing file is deleted."""
        by_repo: dict[str, list[tuple[WantedPackage, Path]]] = {}
        for p, path in files.values():
            by_repo.setdefault(p.repo, []).append((p, path))
        signers: list[PublicKey] = []
        for repo_id, entries in sorted(by_repo.items()):
            keys = self.keys_for(repo_id)
            if keys is None:
                continue
            verdicts = signatures.check_files([path for _p, path in entries], self.keys.rpm_keyring(keys), keys)
            for p, path in entries:
                verdict = verdicts[path]
                if not verdict.ok:
                    if p.repo != LOCAL_REPO:
                        path.unlink(missing_ok=True)
                    raise SignatureError(signature_failure(p.nevra, repo_id, self.by_id.get(repo_id), verdict, keys))
                if verdict.signer is not None:
                    signers.append(verdict.signer)
        return signers

    def discard(self, packages: list[WantedPackage]) -> None:
        """Downloaded files a deployment has imported (the package cache holds them now)."""
        for p in packages:
            if p.repo != LOCAL_REPO:
                self.package_path(p).unlink(missing_ok=True)


def signature_failure(
    nevra: str, repo_id: str, cfg: RepoConfig | None, verdict: signatures.Verdict, keys: list[PublicKey]
) -> str:
    where = (
        f"[{repo_id}] ({cfg.source})"
        if cfg is not None
        else ("packages.local" if repo_id == LOCAL_REPO else f"[{repo_id}]")
    )
    listed = ", ".join(f"{k.key_id} ({k.user_ids[0] if k.user_ids else 'no user id'})" for k in keys) or "none"
    key = f"key id {verdict.key_id}" if verdict.key_id else "no key id"
    return (
        f"{nevra} from {where} fails its signature check: {verdict.problem} ({key}; the repo's keys: {listed}). "
        "It was not imported and nothing was deployed."
    )


def _local_path(p: WantedPackage) -> Path:
    return local_path(p.baseurl) / p.location


def _check_local(p: WantedPackage, path: Path) -> None:
    if not p.location:  # a pin whose only copy is the header in rpm-ostree's package cache
        raise PackageError(
            f"The local package {p.nevra} is known only from rpm-ostree's package cache, which holds its header but "
            "not its files in a form reconcile builds from.",
            hint="Put the RPM file's path in place of its <sha256>:<nevra> pin in packages.local, then plan again. "
            "Nothing was changed.",
        )
    algorithm, _, digest = p.checksum.partition(":")
    if not _complete(path, algorithm, digest):
        raise PackageError(f"The local package {path} is missing or changed since the plan was made ({p.nevra}).")


def is_downloaded(repos: RepoSet, p: WantedPackage) -> bool:
    """A downloaded file is there whole (its checksum is the repo metadata's)."""
    algorithm, _, digest = p.checksum.partition(":")
    return _complete(repos.package_path(p), algorithm, digest)


def _complete(path: Path, algorithm: str, digest: str) -> bool:
    """The file is there whole: its checksum is the one the metadata promises."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, algorithm).hexdigest() == digest.lower()
    except (OSError, ValueError):
        return False

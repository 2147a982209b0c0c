"""rpm-md metadata through librepo: `repomd.xml` (checked against a metalink's hashes, and against
`repomd.xml.asc` with `repo_gpgcheck`), then `primary` and, on demand, `filelists`, each kept under its checksum.

Within `metadata_expire` a plan makes no network request for a repo (as dnf), unless the repo file changed
since; `file://` repos are always read again, which costs no network. `--cache-only` uses what is cached."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librepo

from reconcile import stopping
from reconcile.errors import ReconcileError
from reconcile.files import clear_dead, locked, private_tempdir, write_atomically
from reconcile.repos.config import RepoConfig
from reconcile.repos.transfer import (
    Download,
    Downloader,
    TransferError,
    local_path,
    looks_corrupt,
    new_handle,
    repo_label,
    watch,
)

log = logging.getLogger("reconcile.repos")
_NS = {"repo": "http://linux.duke.edu/metadata/repo"}
_STATE = "state.json"
_CORRUPT_CODES = {"LRE_BADCHECKSUM", "LRE_MLBAD", "LRE_MLXML", "LRE_REPOMDXML", "LRE_XMLPARSER", "LRE_INCOMPLETEREPO"}
_GPG_CODES = {"LRE_BADGPG", "LRE_GPGERROR", "LRE_GPGNOTSUPPORTED"}


@dataclass(frozen=True)
class MetadataFile:
    """One file listed in repomd.xml: where it is and what it must hash to."""

    href: str
    algorithm: str
    checksum: str
    size: int = 0


@dataclass(frozen=True)
class RepoMetadata:
    config: RepoConfig
    baseurl: str
    mirrors: tuple[str, ...]
    repomd_sha256: str
    revision: str
    primary: Path
    primary_checksum: str
    filelists: MetadataFile | None
    cache: Path
    fetched_at: float
    kinds: tuple[str, ...] = field(default=())
    primary_href: str = ""
    timestamp: int = 0  # the newest <timestamp> of its data files: libdnf's "timestamp generated"

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def primary_url(self) -> str:
        return f"{self.baseurl.rstrip('/')}/{self.primary_href}"


class RepoUnavailable(ReconcileError):
    """A repo whose metadata cannot be had; `corrupt` when a server gave bad data rather than none."""

    def __init__(self, message: str, corrupt: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.corrupt = corrupt


def refresh(
    cfg: RepoConfig,
    cache_root: Path,
    downloader: Downloader,
    gnupg_home: Callable[[RepoConfig], Path],
    *,
    cache_only: bool = False,
    force: bool = False,
) -> RepoMetadata:
    """The repo's metadata: the cached copy when it is fresh (or when asked for the cache only), else fetched."""
    repo_cache = cache_root / "repos" / cfg.cache_key
    cached = _cached(cfg, repo_cache)
    if cache_only:
        if cached is None:
            raise RepoUnavailable(
                f"--cache-only: there is no cached metadata for {repo_label(cfg)}.",
                hint="Run once without --cache-only while the repo is reachable.",
            )
        downloader.use_mirrors(cfg, list(cached.mirrors))
        return cached
    if cached is not None and not force and _fresh(cfg, cached):
        log.info("metadata of [%s] is fresh (fetched %.0f s ago)", cfg.id, time.time() - cached.fetched_at)
        downloader.use_mirrors(cfg, list(cached.mirrors))
        return cached
    if cached is not None and not force and _local_unchanged(cfg, cached):
        log.info("metadata of [%s] is unchanged in %s", cfg.id, cached.baseurl)
        downloader.use_mirrors(cfg, list(cached.mirrors))
        return cached
    # Plans take no sysroot lock: two refreshing the same repo at once must not undo each other's files.
    with locked(repo_cache / ".lock", f"the metadata cache of [{cfg.id}]", downloader.reporter.info):
        return _fetch(cfg, repo_cache, downloader, gnupg_home)


def fetch_filelists(meta: RepoMetadata, downloader: Downloader, *, cache_only: bool = False) -> Path | None:
    """The repo's complete file lists (downloaded once per checksum); None when the repo has none."""
    if meta.filelists is None:
        return None
    local = meta.cache / f"{meta.filelists.checksum}-{Path(meta.filelists.href).name}"
    if not local.exists():
        if cache_only:
            raise RepoUnavailable(f"--cache-only: the file lists of {repo_label(meta.config)} are not cached.")
        _download(meta.config, downloader, meta.filelists, local, "file lists")
    return local


def _fresh(cfg: RepoConfig, cached: RepoMetadata) -> bool:
    if cfg.is_local:
        return False
    try:
        if cfg.source.stat().st_mtime > cached.fetched_at:
            return False  # the repo file was edited since (dnf's check_config_file_age)
    except OSError:
        return False
    return cfg.metadata_expire < 0 or time.time() - cached.fetched_at < cfg.metadata_expire


def _local_unchanged(cfg: RepoConfig, cached: RepoMetadata) -> bool:
    """A local repo's repomd.xml, read in place, is the one cached: a fetch through librepo would copy the same
    bytes. Not with repo_gpgcheck: its signature (or the keys) may have changed beside the same bytes."""
    if cfg.repo_gpgcheck or not cfg.is_local or not cached.baseurl.startswith("file:"):
        return False
    try:
        repomd = (local_path(cached.baseurl) / "repodata" / "repomd.xml").read_bytes()
    except OSError:
        return False
    return hashlib.sha256(repomd).hexdigest() == cached.repomd_sha256


def _cached(cfg: RepoConfig, repo_cache: Path) -> RepoMetadata | None:
    try:
        state = json.loads((repo_cache / _STATE).read_text())
        repomd = (repo_cache / "repomd.xml").read_bytes()
    except (OSError, ValueError):
        return None
    if cfg.repo_gpgcheck and not state.get("signature_checked"):
        return None
    try:
        meta = _parse(cfg, repomd, repo_cache, state.get("url", ""), state.get("mirrors", []), state.get("fetched", 0))
    except ReconcileError:
        return None
    return meta if meta.primary.exists() else None


def _fetch(
    cfg: RepoConfig, repo_cache: Path, downloader: Downloader, gnupg_home: Callable[[RepoConfig], Path]
) -> RepoMetadata:
    repo_cache.mkdir(parents=True, exist_ok=True)
    work = private_tempdir(repo_cache, ".fetch-")
    try:
        handle = new_handle(cfg)
        clock = watch(handle, downloader.deadline)
        handle.destdir = str(work)
        handle.yumdlist = []  # repomd.xml only: the rest only when its checksum changed
        handle.checksum = True
        failures: list[tuple[str, str]] = []

        @stopping.from_c
        def mirror_failed(_data: object, message: str, url: str, _what: str) -> int:
            failures.append((url, message))
            return int(librepo.CB_OK)

        handle.hmfcb = mirror_failed
        if cfg.repo_gpgcheck:
            handle.gpgcheck = True
            handle.gnupghomedir = str(gnupg_home(cfg))
        result = librepo.Result()
        log.debug("librepo: repomd.xml of [%s] from %s", cfg.id, cfg.metalink or cfg.mirrorlist or cfg.baseurls)
        try:
            with stopping.callback():  # librepo runs our callbacks meanwhile
                handle.perform(result)
        except librepo.LibrepoException as e:
            if clock.passed:
                raise RepoUnavailable(
                    f"The repomd.xml of {repo_label(cfg)} was too slow to fetch: {clock.describe()} "
                    f"(from {', '.join(dict.fromkeys(url for url, _why in failures)) or _sources(cfg)}).",
                    hint="Use a faster mirror, or raise --transfer-deadline for a slow link. Nothing was changed.",
                ) from None
            raise _unavailable(cfg, e, failures) from None
        info = result.getinfo(librepo.LRR_YUM_REPO)
        mirrors = [str(u) for u in (handle.getinfo(librepo.LRI_MIRRORS) or [])]
        url = str(info.get("url") or (mirrors[0] if mirrors else ""))
        ordered = list(dict.fromkeys([url, *mirrors, *cfg.baseurls]))
        repomd = Path(info["repomd"]).read_bytes()
        now = time.time()
        meta = _parse(cfg, repomd, repo_cache, url, ordered, now)
        downloader.use_mirrors(cfg, ordered)
        primary = _metadata_file(ET.fromstring(repomd), "primary", cfg)
        if primary is not None and not meta.primary.exists():
            _download(cfg, downloader, primary, meta.primary, "primary metadata")
        for name in ("repomd.xml", "repomd.xml.asc"):
            if (work / "repodata" / name).exists():
                os.replace(work / "repodata" / name, repo_cache / name)
        state = {"url": url, "mirrors": ordered, "fetched": now, "signature_checked": cfg.repo_gpgcheck}
        write_atomically(repo_cache / _STATE, json.dumps(state))
        _drop_stale(repo_cache, meta)
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(cfg: RepoConfig, downloader: Downloader, item: MetadataFile, local: Path, what: str) -> None:
    # Named by checksum and renamed into place only once librepo has verified it.
    clear_dead(local.parent, f"{local.name}.")  # what a killed plan left half-downloaded
    part = local.with_name(f"{local.name}.{os.getpid()}.part")  # two plans at once must not share a file
    download = Download(cfg, item.href, part, f"the {what}", (item.algorithm, item.checksum), item.size)
    try:
        downloader.fetch([download], f"Downloading the {what} of [{cfg.id}]", quiet=True)
        os.replace(part, local)
    except TransferError as e:
        raise RepoUnavailable(e.message, e.corrupt, e.hint) from None
    finally:
        part.unlink(missing_ok=True)


def _parse(
    cfg: RepoConfig, repomd: bytes, repo_cache: Path, url: str, mirrors: list[str], fetched: float
) -> RepoMetadata:
    try:
        root = ET.fromstring(repomd)
    except ET.ParseError as e:
        raise RepoUnavailable(f"The repomd.xml of {repo_label(cfg)} is corrupt: not valid XML ({e}).", True) from None
    primary = _metadata_file(root, "primary", cfg)
    if primary is None:
        raise RepoUnavailable(f"The repomd.xml of {repo_label(cfg)} lists no primary metadata.", True)
    kinds = tuple(d.get("type", "") for d in root.findall("repo:data", _NS))
    return RepoMetadata(
        config=cfg,
        baseurl=url,
        mirrors=tuple(mirrors),
        repomd_sha256=hashlib.sha256(repomd).hexdigest(),
        revision=root.findtext("repo:revision", default="", namespaces=_NS),
        primary=repo_cache / f"{primary.checksum}-{Path(primary.href).name}",
        primary_checksum=f"{primary.algorithm}:{primary.checksum}",
        filelists=_metadata_file(root, "filelists", cfg),
        cache=repo_cache,
        fetched_at=fetched,
        kinds=kinds,
        primary_href=primary.href,
        timestamp=max((_int(t.text) for t in root.findall("repo:data/repo:timestamp", _NS)), default=0),
    )


def _int(text: str | None) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0


def _metadata_file(root: ET.Element, kind: str, cfg: RepoConfig) -> MetadataFile | None:
    data = root.find(f"repo:data[@type='{kind}']", _NS)
    if data is None:
        return None
    location = data.find("repo:location", _NS)
    checksum = data.find("repo:checksum", _NS)
    if location is None or checksum is None or not location.get("href") or not checksum.text:
        raise RepoUnavailable(
            f"The repomd.xml of {repo_label(cfg)} is corrupt: its {kind} entry lacks a location or checksum.", True
        )
    algorithm = checksum.get("type", "sha256")
    size = data.findtext("repo:size", default="0", namespaces=_NS)
    return MetadataFile(
        location.get("href", ""),
        "sha1" if algorithm == "sha" else algorithm,
        checksum.text.strip(),
        int(size) if size.isdigit() else 0,
    )


def _drop_stale(repo_cache: Path, meta: RepoMetadata) -> None:
    """Metadata files of older repomd revisions, and what a killed process left (under the cache's lock)."""
    keep = {meta.primary.name.split("-")[0]} | ({meta.filelists.checksum} if meta.filelists else set())
    for path in repo_cache.iterdir():
        if path.name.startswith(".fetch-") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.endswith(".part"):
            with contextlib.suppress(FileNotFoundError):  # file lists download outside the lock: only old ones
                if time.time() - path.stat().st_mtime > 3600:
                    path.unlink()
        elif _stale(path, keep):
            path.unlink(missing_ok=True)


def _stale(path: Path, keep: set[str]) -> bool:
    fixed = path.name.startswith(".") or path.name in ("repomd.xml", "repomd.xml.asc", _STATE)
    return path.is_file() and not fixed and not any(path.name.startswith(k) for k in keep)


def _unavailable(cfg: RepoConfig, e: Any, failures: list[tuple[str, str]]) -> RepoUnavailable:
    code = next((name for name in dir(librepo) if name.startswith("LRE_") and getattr(librepo, name) == e.args[0]), "")
    detail = str(e.args[1]) if len(e.args) > 1 else str(e)
    tried = "; ".join(f"{url}: {why}" for url, why in dict.fromkeys(failures))
    where = repo_label(cfg)
    if code in _GPG_CODES:
        return RepoUnavailable(
            f"The repomd.xml of {where} fails repo_gpgcheck: {detail} (keys: {', '.join(cfg.gpgkeys)}).",
            True,
            hint="The metadata is not signed by a key the repo lists in gpgkey; it was not used. Nothing was changed.",
        )
    if code in _CORRUPT_CODES or "checksum" in detail.lower() or looks_corrupt(failures):
        return RepoUnavailable(
            f"The metadata of {where} is corrupt: {tried or f'{detail} (from {_sources(cfg)})'}.",
            True,
            hint="The repo may be mid-update, or a mirror serves damaged files; retry later. Nothing was changed.",
        )
    return RepoUnavailable(
        f"{where[0].upper()}{where[1:]} is unreachable: {tried or detail} (from {_sources(cfg)}).",
        hint="Check its baseurl, mirrorlist or metalink and that the server is up, or set skip_if_unavailable=1.",
    )


def _sources(cfg: RepoConfig) -> str:
    return cfg.metalink or cfg.mirrorlist or ", ".join(cfg.baseurls)

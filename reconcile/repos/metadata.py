"""rpm-md metadata: fetch `repomd.xml`, and keep a verified local copy of `primary` keyed by its checksum."""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.repos.config import RepoConfig
from reconcile.repos.fetch import download, join_url, open_url

log = logging.getLogger("reconcile.repos")
_NS = {"repo": "http://linux.duke.edu/metadata/repo"}
MAX_REPOMD = 16 * 1024 * 1024


@dataclass(frozen=True)
class MetadataFile:
    """One file listed in repomd.xml: where it is and what it must hash to."""

    href: str
    algorithm: str
    checksum: str


@dataclass(frozen=True)
class RepoMetadata:
    config: RepoConfig
    baseurl: str
    repomd_sha256: str
    revision: str
    primary: Path
    primary_checksum: str
    filelists: MetadataFile | None
    cache: Path

    @property
    def id(self) -> str:
        return self.config.id


def refresh(cfg: RepoConfig, cache_root: Path) -> RepoMetadata:
    """The current metadata of a repo: repomd.xml is always re-read (it is small), primary only when it changed."""
    errors = []
    for baseurl in cfg.baseurls:
        try:
            return _refresh_from(cfg, baseurl, cache_root)
        except ReconcileError as e:
            errors.append(e.message)
    raise ReconcileError(
        f"The repo [{cfg.id}] (from {cfg.source}) is unreachable: " + " ".join(errors),
        hint="Check its baseurl and that the server is up.",
    )


def _refresh_from(cfg: RepoConfig, baseurl: str, cache_root: Path) -> RepoMetadata:
    url = join_url(baseurl, "repodata/repomd.xml")
    with open_url(url) as f:
        repomd = f.read(MAX_REPOMD + 1)
    if len(repomd) > MAX_REPOMD:
        raise ReconcileError(f"{url} is larger than {MAX_REPOMD} bytes.")
    try:
        root = ET.fromstring(repomd)
    except ET.ParseError as e:
        raise ReconcileError(f"{url} is not valid XML ({e}).") from None
    revision = root.findtext("repo:revision", default="", namespaces=_NS)
    primary = _metadata_file(root, "primary", url)
    if primary is None:
        raise ReconcileError(f"{url} lists no primary metadata.")
    repo_cache = cache_root / "repos" / _safe(cfg.id)
    repo_cache.mkdir(parents=True, exist_ok=True)
    local = _fetch(cfg, baseurl, primary, repo_cache, "primary metadata")
    filelists = _metadata_file(root, "filelists", url)
    keep = {primary.checksum} | ({filelists.checksum} if filelists else set())
    for stale in repo_cache.iterdir():
        if not any(stale.name.startswith(k) for k in keep):
            stale.unlink()
    return RepoMetadata(
        config=cfg,
        baseurl=baseurl,
        repomd_sha256=hashlib.sha256(repomd).hexdigest(),
        revision=revision,
        primary=local,
        primary_checksum=f"{primary.algorithm}:{primary.checksum}",
        filelists=filelists,
        cache=repo_cache,
    )


def fetch_filelists(meta: RepoMetadata) -> Path | None:
    """The repo's complete file lists (downloaded once per checksum); None when the repo has none."""
    if meta.filelists is None:
        return None
    return _fetch(meta.config, meta.baseurl, meta.filelists, meta.cache, "file lists")


def _metadata_file(root: ET.Element, kind: str, url: str) -> MetadataFile | None:
    data = root.find(f"repo:data[@type='{kind}']", _NS)
    if data is None:
        return None
    location = data.find("repo:location", _NS)
    checksum = data.find("repo:checksum", _NS)
    if location is None or checksum is None or not location.get("href") or not checksum.text:
        raise ReconcileError(f"{url}: the {kind} entry lacks a location or checksum.")
    algorithm = checksum.get("type", "sha256")
    return MetadataFile(location.get("href", ""), "sha1" if algorithm == "sha" else algorithm, checksum.text.strip())


def _fetch(cfg: RepoConfig, baseurl: str, item: MetadataFile, repo_cache: Path, what: str) -> Path:
    local = repo_cache / f"{item.checksum}-{Path(item.href).name}"
    # Cached files are named by their checksum and only renamed into place once verified.
    if not local.exists():
        log.info("downloading the %s of %s", what, cfg.id)
        download(join_url(baseurl, item.href), local, item.algorithm, item.checksum, f"the {what} of [{cfg.id}]")
    return local


def _safe(repo_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)

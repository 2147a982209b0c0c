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
class RepoMetadata:
    config: RepoConfig
    baseurl: str
    repomd_sha256: str
    revision: str
    primary: Path
    primary_checksum: str

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
    primary = root.find("repo:data[@type='primary']", _NS)
    if primary is None:
        raise ReconcileError(f"{url} lists no primary metadata.")
    location = primary.find("repo:location", _NS)
    checksum = primary.find("repo:checksum", _NS)
    if location is None or checksum is None or not location.get("href") or not checksum.text:
        raise ReconcileError(f"{url}: the primary entry lacks a location or checksum.")
    href = location.get("href", "")
    algorithm = checksum.get("type", "sha256")
    algorithm = "sha1" if algorithm == "sha" else algorithm
    expected = checksum.text.strip()

    repo_cache = cache_root / "repos" / _safe(cfg.id)
    repo_cache.mkdir(parents=True, exist_ok=True)
    local = repo_cache / f"{expected}-{Path(href).name}"
    # Cached files are named by their checksum and only renamed into place once verified.
    if not local.exists():
        log.info("downloading primary metadata of %s", cfg.id)
        download(join_url(baseurl, href), local, algorithm, expected, f"the primary metadata of [{cfg.id}]")
    for stale in repo_cache.iterdir():
        if stale != local and not stale.name.startswith(expected):
            stale.unlink()
    return RepoMetadata(
        config=cfg,
        baseurl=baseurl,
        repomd_sha256=hashlib.sha256(repomd).hexdigest(),
        revision=revision,
        primary=local,
        primary_checksum=f"{algorithm}:{expected}",
    )


def _safe(repo_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)

"""Where a plan's packages come from: the host's repos (opened with the base's `$releasever`), what an
unreachable repo means for this plan, and header-only reads of the packages it adds."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from reconcile.context import Context
from reconcile.deployed import DeploymentState
from reconcile.errors import PackageError, ReconcileError, SignatureError
from reconcile.files import private_tempdir, write_atomically
from reconcile.planner import model as m
from reconcile.planner.ostree_system import OstreeSystem
from reconcile.planner.ports import CachedPackages, PackageSource, Resolver, SourceOpener
from reconcile.planner.signing import signature_checks
from reconcile.planner.solver import Candidate
from reconcile.repos.host import open_deployment_repos
from reconcile.repos.metadata import RepoMetadata
from reconcile.repos.source import LOCAL_REPO, RepoSet, is_downloaded, signature_failure, wanted
from reconcile.repos.transfer import Download, TransferError
from reconcile.rpm import header as h
from reconcile.rpm import signatures
from reconcile.rpm.nevra import Nevra


class RepoSource:
    """The host's repos as the planner's package source (ports.PackageSource): librepo and rpm-md."""

    def __init__(self, repos: RepoSet, packages: CachedPackages, header_cache: Path) -> None:
        self.repos = repos
        self.packages = packages
        self.header_cache = header_cache
        self.releasever = repos.releasever

    @property
    def warnings(self) -> list[str]:
        return self.repos.warnings

    def feed(self, resolver: Resolver, *, force: bool) -> list[m.RepoUsed]:
        used = []
        for meta in self.repos.load_metadata(force=force):
            resolver.add_repo(meta)
            used.append(_repo_used(meta))
        return used

    def filelists(self, meta: RepoMetadata) -> Path | None:
        return self.repos.filelists(meta)

    def read_headers(self, candidates: list[Candidate], whole: bool) -> dict[str, h.RpmHeaders]:
        return read_headers(candidates, self.packages, self.header_cache, self.repos, whole=whole)

    def download(self, candidates: list[Candidate]) -> dict[str, Path]:
        return self.repos.download([wanted(c) for c in candidates])

    def discard(self, candidates: list[Candidate]) -> None:
        self.repos.discard([wanted(c) for c in candidates])

    def signature_checks(
        self, raws: dict[str, tuple[str, bytes]], new: set[str]
    ) -> tuple[list[m.Check], list[m.SigningKey]]:
        return signature_checks(raws, self.repos, new)

    def require_unavailable(self, new: list[Candidate], update: bool) -> list[str]:
        return require_unavailable_repos(self.repos, new, self.packages, update)

    def unavailable_error(self, cause: ReconcileError) -> ReconcileError | None:
        return unavailable_error(self.repos, cause) if self.repos.unavailable else None


def repo_source_opener(ctx: Context, system: OstreeSystem, reposdir: Path | None) -> SourceOpener:
    """Opens the repos the current deployment's /etc configures (or `reposdir`)."""

    def open_source(
        current: DeploymentState, releasever: str | None, local_check: bool | None, override: str | None
    ) -> PackageSource:
        if system.deployment is None:
            raise RuntimeError("repo_source_opener: the system's current deployment was not read first")
        cache_root = ctx.cachedir(current.stateroot)
        repos = open_deployment_repos(
            ctx, system.deployment, reposdir, cache_root, releasever, local_check, override=override
        )
        return RepoSource(repos, system.packages, cache_root / "headers")

    return open_source


def _repo_used(meta: RepoMetadata) -> m.RepoUsed:
    cfg = meta.config
    return m.RepoUsed(
        id=cfg.id,
        file=str(cfg.source),
        url=meta.baseurl,
        revision=meta.revision,
        timestamp=meta.timestamp,
        repomd_sha256=meta.repomd_sha256,
        gpgcheck=cfg.gpgcheck,
        repo_gpgcheck=cfg.repo_gpgcheck,
    )


def require_unavailable_repos(repos: RepoSet, new: list[Candidate], cache: CachedPackages, update: bool) -> list[str]:
    """An unreachable repo fails the plan unless the plan needs nothing new: every package it adds is already in
    the package cache or downloaded, and no update was asked for. Returns the warnings for the repos it skipped."""
    if not repos.unavailable:
        return []
    missing = [
        c
        for c in new
        if c.repo != LOCAL_REPO and cache.cached_raw(c.nevra, c.checksum) is None and not _downloaded(repos, c)
    ]
    if update or missing:
        first = next(iter(repos.unavailable.values()))
        names = [str(c.nevra) for c in missing]
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        why = "--update asks every repo for newer versions" if update else f"it must download {listed}"
        others = [f"[{r}]" for r in list(repos.unavailable)[1:]]
        also = f" (also unavailable: {', '.join(others)})" if others else ""
        raise ReconcileError(f"{first.message}{also} The plan cannot go on without it: {why}.", hint=first.hint)
    return [
        f"{e.message} The plan needs no package from it (every package is already cached), so it goes on without it."
        for e in repos.unavailable.values()
    ]


def unavailable_error(repos: RepoSet, cause: ReconcileError) -> ReconcileError:
    """A resolution that failed while a repo was unreachable: the repo is the likelier cause, so it comes first."""
    first = next(iter(repos.unavailable.values()))
    others = [f"[{r}]" for r in list(repos.unavailable)[1:]]
    also = f" (also unavailable: {', '.join(others)})" if others else ""
    return ReconcileError(f"{first.message}{also} Without it: {cause.message}", hint=first.hint)


def _downloaded(repos: RepoSet, c: Candidate) -> bool:
    return is_downloaded(repos, wanted(c))


def read_headers(
    candidates: list[Candidate],
    cache: CachedPackages,
    header_cache: Path,
    repos: RepoSet | None,
    *,
    whole: bool = False,
) -> dict[str, h.RpmHeaders]:
    """Lead, signature and header of each package, reading as little as possible: the package cache, the header
    cache, a downloaded package, then the first bytes of each RPM (to its rpm:header-range end) in parallel
    through librepo. With `whole` (an apply, which needs the packages next) each RPM is downloaded whole
    instead: one request per package rather than two."""
    out: dict[str, h.RpmHeaders] = {}
    wanted_reads: list[tuple[Candidate, Download]] = []
    work = private_tempdir(header_cache, ".headers-")
    try:
        for c in candidates:
            raw = cache.cached_raw(c.nevra, c.checksum) or _stored(header_cache, c) or _downloaded_header(repos, c)
            if raw is not None:
                try:
                    out[str(c.nevra)] = h.read_rpm_headers(io.BytesIO(raw))
                    continue
                except h.HeaderError:
                    pass
            wanted_reads.append((c, _header_download(c, repos, work / f"{len(wanted_reads)}.hdr", whole)))
        if wanted_reads and repos is not None:
            title = f"{'Downloading' if whole else 'Reading the headers of'} {len(wanted_reads)} package(s)"
            try:
                repos.downloader.fetch([d for _c, d in wanted_reads], title)
            except TransferError as e:
                raise PackageError(e.message, e.hint) from None
        for c, d in wanted_reads:
            out[str(c.nevra)] = _parse_read(c, d, header_cache, repos)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _stored_path(header_cache: Path, c: Candidate) -> Path:
    return header_cache / f"{c.checksum.replace(':', '-')}.hdr"


def _stored(header_cache: Path, c: Candidate) -> bytes | None:
    try:
        return _stored_path(header_cache, c).read_bytes()
    except OSError:
        return None


def _downloaded_header(repos: RepoSet | None, c: Candidate) -> bytes | None:
    """The header of a package already downloaded whole (its checksum is checked again before import)."""
    if repos is None or c.repo == LOCAL_REPO:
        return None
    try:
        with open(repos.package_path(wanted(c)), "rb") as f:
            return h.read_rpm_headers(f).raw
    except (OSError, h.HeaderError):
        return None


def _header_download(c: Candidate, repos: RepoSet | None, dest: Path, whole: bool) -> Download:
    cfg = repos.by_id.get(c.repo) if repos is not None else None
    if repos is None or cfg is None:
        raise PackageError(f"The header of {c.nevra} is needed, but its repo [{c.repo}] is not configured.")
    if repos.mode.cache_only:
        raise ReconcileError(
            f"--cache-only: the header of {c.nevra} from [{c.repo}] has never been read.",
            hint="Plan once without --cache-only. Nothing was changed.",
        )
    if c.header_end and not whole:
        return Download(cfg, c.location, dest, f"the header of {c.nevra}", first_bytes=c.header_end)
    # Whole (no header range in the metadata, or apply needs it next): where apply will find it.
    algorithm, _, digest = c.checksum.partition(":")
    return Download(
        cfg, c.location, repos.package_path(wanted(c)), str(c.nevra), (algorithm, digest), c.size, resume=True
    )


def _parse_read(c: Candidate, d: Download, header_cache: Path, repos: RepoSet | None) -> h.RpmHeaders:
    url = f"{c.baseurl.rstrip('/')}/{c.location}"
    try:
        with open(d.dest, "rb") as f:
            headers = h.read_rpm_headers(f)
        headers.verify_header_digest()
    except (OSError, h.HeaderError) as e:
        keys = repos.keys_for(c.repo) if repos is not None and isinstance(e, h.HeaderError) else None
        if keys is not None:  # a signed repo: rpm's verdict names the key, which says more than our digest
            verdict = signatures.check_header(d.dest.read_bytes(), keys)
            if not verdict.ok:
                cfg = repos.by_id.get(c.repo)  # type: ignore[union-attr]
                raise SignatureError(signature_failure(str(c.nevra), c.repo, cfg, verdict, keys)) from None
        raise PackageError(
            f"The download of {c.nevra} from [{c.repo}] ({url}) is corrupt: it is not a valid RPM ({e}).",
            hint="The repo may be mid-update, or a mirror serves damaged files; retry later. Nothing was changed.",
        ) from None
    if Nevra.from_header(headers.header) != c.nevra:
        raise PackageError(f"The repo [{c.repo}] promises {c.nevra} at {url}, but the file is another package.")
    write_atomically(_stored_path(header_cache, c), headers.raw)
    return headers

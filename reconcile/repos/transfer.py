"""Every byte reconcile reads from a repo goes through librepo, the download library under dnf and rpm-ostree:
mirror lists and metalinks, failover to the next mirror per file, resumed and parallel downloads, TLS with
client certificates, proxies and the `timeout`/`minrate` rule. Each file also has a deadline in all
(`--transfer-deadline`), so a mirror that is slow but never quite stalls cannot hold a command forever. This
module builds librepo handles from repo configs and turns librepo's per-mirror failures into one error that
names the repo, its file, every URL tried and what went wrong there."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librepo

from reconcile import __version__, stopping
from reconcile.errors import ReconcileError
from reconcile.report import Reporter
from reconcile.repos.config import DEADLINE, RepoConfig

log = logging.getLogger("reconcile.transfer")
# How librepo says a server answered with wrong bytes (as opposed to no answer).
_CORRUPT_SIGNS = ("checksum doesn't match", "Server reports Content-Length", "Expected size", "corrupt")


class TransferError(ReconcileError):
    """A file that could not be had from any URL of its repo; `corrupt` when a server gave wrong bytes."""

    def __init__(self, message: str, failures: list[tuple[str, str]], corrupt: bool, hint: str | None = None):
        super().__init__(message, hint)
        self.failures = failures
        self.corrupt = corrupt


@dataclass
class Download:
    """One file to fetch: a path relative to its repo's mirrors (or a whole URL), checked when a checksum is known."""

    repo: RepoConfig | None
    path: str
    dest: Path
    what: str
    checksum: tuple[str, str] | None = None  # (algorithm, hex)
    size: int = 0
    first_bytes: int = 0  # read only this many bytes from the start (a header-only read)
    resume: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    downloaded: int = 0
    ended: bool = False
    clock: Deadline | None = None


class Deadline:
    """One transfer's total bound, checked in librepo's progress callback (which it calls about once a second
    while the transfer runs, moving or not; a file still queued behind others has not started): past it, the
    transfer is aborted."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.received = 0.0
        self.passed = False

    @stopping.from_c
    def tick(self, received: float) -> int:
        self.received = received
        if stopping.requested():  # a signal waits for this transfer to end: end it now
            return int(librepo.CB_ABORT)
        if self.started is None:
            self.started = time.monotonic()
        elif time.monotonic() - self.started > self.seconds:
            self.passed = True
            return int(librepo.CB_ABORT)
        return int(librepo.CB_OK)

    def describe(self) -> str:
        took = time.monotonic() - (self.started or time.monotonic())
        return (
            f"not done within the transfer deadline of {self.seconds:g} s (--transfer-deadline): "
            f"{self.received:.0f} bytes in {took:.0f} s, {self.received / max(took, 0.001):.0f} bytes/s"
        )


def watch(handle: Any, seconds: float) -> Deadline:
    """The deadline of a handle's own transfers (repomd.xml, a metalink or mirror list)."""
    clock = Deadline(seconds)
    handle.progresscb = lambda _data, _total, now: clock.tick(now)
    return clock


def repo_label(cfg: RepoConfig | None) -> str:
    return f"the repo [{cfg.id}] ({cfg.source})" if cfg is not None else "the network"


def new_handle(cfg: RepoConfig | None, urls: Iterable[str] = ()) -> Any:
    """A librepo handle carrying every transfer option of the repo (dnf's mapping, libdnf `lrHandleInitRemote`)."""
    h = librepo.Handle()
    h.repotype = librepo.YUMREPO
    h.useragent = f"reconcile/{__version__}"
    h.interruptible = True
    if cfg is None:
        return h
    urls = list(urls) or list(cfg.baseurls)
    if urls:
        h.urls = urls
    if cfg.metalink and not urls:
        h.metalinkurl = cfg.metalink
    elif cfg.mirrorlist and not urls:
        h.mirrorlisturl = cfg.mirrorlist
        if "metalink" in cfg.mirrorlist:  # dnf's compatibility rule: such a "mirrorlist" is a metalink
            h.metalinkurl = cfg.mirrorlist
    h.sslverifypeer = cfg.sslverify
    h.sslverifyhost = 2 if cfg.sslverify else 0
    h.sslverifystatus = cfg.sslverifystatus
    for option in ("sslcacert", "sslclientcert", "sslclientkey"):
        value = getattr(cfg, option)
        if value:
            setattr(h, option, str(local_path(value)))
    if cfg.proxy is not None:
        h.proxy = cfg.proxy
    if cfg.proxy_username:
        h.proxyuserpwd = f"{cfg.proxy_username}:{cfg.proxy_password or ''}"
    h.proxy_sslverifypeer = cfg.proxy_sslverify
    h.proxy_sslverifyhost = 2 if cfg.proxy_sslverify else 0
    for option in ("proxy_sslcacert", "proxy_sslclientcert", "proxy_sslclientkey"):
        value = getattr(cfg, option)
        if value:
            setattr(h, option, str(local_path(value)))
    if cfg.username:
        h.userpwd = f"{cfg.username}:{cfg.password or ''}"
    if cfg.ip_resolve in ("4", "ipv4", "6", "ipv6"):
        h.ipresolve = librepo.IPRESOLVE_V4 if "4" in cfg.ip_resolve else librepo.IPRESOLVE_V6
    h.lowspeedlimit = cfg.minrate
    h.lowspeedtime = cfg.timeout
    h.connecttimeout = cfg.timeout
    h.maxparalleldownloads = cfg.max_parallel_downloads
    h.maxdownloadspermirror = cfg.max_parallel_downloads  # dnf caps this at librepo's 3; the option says more
    return h


def local_path(value: str) -> Path:
    """A `file://` URL (or a plain path) as a path: the one reading of local URLs."""
    if value.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(value).path))
    return Path(value)


class Downloader:
    """Runs librepo downloads for several repos at once, with one handle per repo and `retries` rounds."""

    def __init__(self, reporter: Reporter, deadline: float = DEADLINE) -> None:
        self.reporter = reporter
        self.deadline = deadline
        self._handles: dict[str, Any] = {}
        self._mirrors: dict[str, list[str]] = {}

    def use_mirrors(self, cfg: RepoConfig, mirrors: list[str]) -> None:
        """Mirrors already resolved (from a metalink or mirror list at refresh): no second look-up."""
        if mirrors and self._mirrors.get(cfg.id) != mirrors:
            self._mirrors[cfg.id] = mirrors
            self._handles.pop(cfg.id, None)

    def handle(self, cfg: RepoConfig | None) -> Any:
        key = cfg.id if cfg is not None else ""
        if key not in self._handles:
            self._handles[key] = new_handle(cfg, self._mirrors.get(key, []))
        return self._handles[key]

    def fetch(self, items: list[Download], title: str, *, quiet: bool = False) -> None:
        """Download every item; raise a TransferError for the first that no URL could give."""
        if not items:
            return
        total = sum(d.size for d in items)
        if quiet:
            self._rounds(items, None)
        else:
            with self.reporter.transfer(title, len(items), total) as progress:
                self._rounds(items, progress)
        failed = [d for d in items if d.error is not None]
        if failed:
            raise describe_failure(failed[0])

    def _rounds(self, items: list[Download], progress: Any) -> None:
        """dnf's `retries`: rounds over what failed, resuming what was written. A corrupt file is not asked
        again (librepo already refetched it whole from every mirror), nor one that no URL has at all."""
        pending = items
        retries = max((d.repo.retries for d in items if d.repo is not None), default=0)
        for attempt in range(1, retries + 2):
            self._run(pending, progress)
            pending = [d for d in pending if d.error is not None and not _is_final(d)]
            if not pending or attempt > retries:
                return
            self.reporter.info(
                f"Retrying {len(pending)} download(s) (retry {attempt} of {retries}): "
                + ", ".join(d.what for d in pending[:3])
                + ("…" if len(pending) > 3 else "")
            )
            for d in pending:
                d.error = None
                d.ended = False
                d.resume = d.resume or (bool(d.checksum) and not d.first_bytes)

    def _run(self, items: list[Download], progress: Any) -> None:
        targets = []
        for d in items:
            d.dest.parent.mkdir(parents=True, exist_ok=True)
            if not d.resume and d.dest.exists():
                d.dest.unlink()
            algorithm, digest = d.checksum or ("", None)
            d.clock = Deadline(self.deadline)
            targets.append(
                librepo.PackageTarget(
                    d.path,
                    dest=str(d.dest),
                    checksum_type=librepo.checksum_str_to_type(algorithm) if digest else librepo.CHECKSUM_UNKNOWN,
                    checksum=digest,
                    expectedsize=d.size if not d.first_bytes else 0,
                    handle=self.handle(d.repo),
                    resume=d.resume,
                    cbdata=d,
                    progresscb=lambda item, total, now, p=progress: _progress(item, now, p),
                    endcb=lambda item, status, msg, p=progress: _ended(item, status, msg, p),
                    mirrorfailurecb=_mirror_failed,
                    byterangeend=d.first_bytes - 1 if d.first_bytes else 0,
                )
            )
            log.debug("download %s (%s) to %s", d.path, d.repo.id if d.repo else "url", d.dest)
        try:
            with stopping.callback():  # librepo runs our callbacks meanwhile
                librepo.download_packages(targets, failfast=False)
        except librepo.LibrepoException as e:
            if e.args and e.args[0] == librepo.LRE_INTERRUPTED:
                raise KeyboardInterrupt from None
            for d in items:
                if not d.ended:  # those that ended told their own outcome
                    d.error = d.error or str(e.args[1] if len(e.args) > 1 else e)
        for d, target in zip(items, targets, strict=True):
            if target.err and not d.ended and d.error is None:
                d.error = str(target.err)  # librepo gave up before it could report the end


@stopping.from_c
def _progress(item: Download, now: float, progress: Any) -> int:
    if progress is not None:
        progress.set_bytes(progress.bytes_done + int(now) - item.downloaded)
    item.downloaded = int(now)
    return item.clock.tick(now) if item.clock is not None else int(librepo.CB_OK)


@stopping.from_c
def _ended(item: Download, status: int, message: str | None, progress: Any) -> int:
    item.ended = True
    if status == librepo.TRANSFER_ERROR:
        item.error = message or "download failed"
    elif progress is not None:
        progress.file_done()
    return int(librepo.CB_OK)


@stopping.from_c
def _mirror_failed(item: Download, message: str, url: str) -> int:
    item.failures.append((url, message.split(" for " + url)[0] if url else message))
    return int(librepo.CB_OK)


def looks_corrupt(failures: list[tuple[str, str]]) -> bool:
    return any(any(sign in why for sign in _CORRUPT_SIGNS) for _url, why in failures)


def _is_corrupt(d: Download) -> bool:
    return looks_corrupt(d.failures)


def _is_final(d: Download) -> bool:
    """Another round cannot help: the file is corrupt, gone from every URL, or its deadline has passed."""
    return _is_corrupt(d) or _is_permanent(d) or (d.clock is not None and d.clock.passed)


def _is_permanent(d: Download) -> bool:
    """Every URL said the file is not there (HTTP 404/410, a missing file://): retrying cannot help."""
    gone = ("Status code: 404", "Status code: 410", "Couldn't open file")
    return bool(d.failures) and all(any(g in why for g in gone) for _url, why in d.failures)


def describe_failure(d: Download) -> TransferError:
    where = repo_label(d.repo)
    if _is_corrupt(d):
        detail = "; ".join(f"{url}: {why.strip()}" for url, why in _unique(d.failures))
        message = (
            f"The download of {d.what} from {where} is corrupt: its checksum or size differs from what the repo "
            f"metadata says ({detail or d.path})."
        )
        hint = "The repo may be mid-update, or a mirror serves damaged files; refresh and retry. Nothing was changed."
    elif d.clock is not None and d.clock.passed:
        url = d.failures[-1][0] if d.failures else d.path
        message = f"Cannot download {d.what} from {where}: {url} was too slow, {d.clock.describe()}."
        hint = "Use a faster mirror, or raise --transfer-deadline for a slow link. Nothing was changed."
    else:
        failures = [(url, _slow(d.repo, why)) for url, why in _unique(d.failures)]
        detail = "; ".join(f"{url}: {why}" for url, why in failures) or (d.error or "no URL to try")
        message = f"Cannot download {d.what} from {where}: {detail}."
        hint = "Check the repo's baseurl, mirrorlist or metalink, and that the server is up. Nothing was changed."
    return TransferError(message, d.failures, _is_corrupt(d), hint)


def _slow(cfg: RepoConfig | None, why: str) -> str:
    """curl's timeouts in the repo's own terms: which limit of the .repo file the server did not meet."""
    if cfg is None or not ("Curl error (28)" in why or "too slow" in why):
        return why
    return (
        f"too slow: less than {cfg.minrate} bytes/s for {cfg.timeout:g} s, or no connection within {cfg.timeout:g} s "
        f"(the repo's minrate and timeout; {why.strip()})"
    )


def _unique(failures: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(failures))

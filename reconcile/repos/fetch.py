"""Reading repo files over `file://` and `http(s)://`, every download checked against its checksum."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from reconcile.errors import PackageError, ReconcileError

log = logging.getLogger("reconcile.fetch")
TIMEOUT = 60
CHUNK = 1 << 20
_ALGORITHMS = {"sha256", "sha512", "sha384", "sha224", "sha1", "md5"}


def join_url(base: str, href: str) -> str:
    return base.rstrip("/") + "/" + href.lstrip("/")


@contextmanager
def open_url(url: str) -> Iterator[BinaryIO]:
    """A readable stream for `url`; failures become one clear ReconcileError."""
    scheme = urllib.parse.urlsplit(url).scheme
    log.debug("fetch %s", url)
    if scheme not in ("file", "http", "https"):
        raise ReconcileError(f"Unsupported URL scheme in {url} (use file://, http:// or https://).")
    try:
        if scheme == "file":
            f: BinaryIO = open(urllib.request.url2pathname(urllib.parse.urlsplit(url).path), "rb")  # noqa: SIM115
        else:
            f = urllib.request.urlopen(url, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        raise ReconcileError(f"Cannot fetch {url}: HTTP {e.code} {e.reason}.") from None
    except urllib.error.URLError as e:
        raise ReconcileError(f"Cannot reach {url}: {e.reason}.") from None
    except OSError as e:
        raise ReconcileError(f"Cannot read {url}: {e.strerror or e}.") from None
    try:
        yield f
    finally:
        f.close()


def _hasher(algorithm: str) -> hashlib._Hash:
    if algorithm not in _ALGORITHMS:
        raise ReconcileError(f"Unsupported checksum type {algorithm!r} in repo metadata.")
    return hashlib.new(algorithm)


def download(url: str, dest: Path, algorithm: str, expected: str, what: str) -> None:
    """Copy `url` to `dest`, streaming, and refuse it (removing `dest`) when its checksum differs."""
    digest = _hasher(algorithm)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with open_url(url) as src, open(tmp, "wb") as out:
            while True:
                try:
                    block = src.read(CHUNK)
                except OSError as e:
                    raise ReconcileError(f"Download of {url} failed: {e}.") from None
                if not block:
                    break
                digest.update(block)
                out.write(block)
        got = digest.hexdigest()
        if got != expected.lower():
            raise PackageError(
                f"The download of {what} from {url} is corrupt: its {algorithm} is {got}, "
                f"but the repo metadata says {expected}.",
                hint="The repo may be mid-update; refresh it and retry. Nothing was changed.",
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()

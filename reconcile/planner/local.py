"""Local RPMs requested in `packages.local`: files read once at plan time and pinned by their sha256, or
`<sha256>:<nevra>` pins of packages the package cache holds."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import InvalidInputError, PackageError
from reconcile.pkgcache import PackageCache, read_rpm
from reconcile.rpm import header as h
from reconcile.rpm.nevra import Nevra
from reconcile.rpmostree_meta import cached_header


@dataclass(frozen=True)
class LocalPackage:
    path: Path | None  # None for a package known only from the package cache (an rpm-ostree pin)
    sha256: str
    headers: h.RpmHeaders
    nevra: Nevra

    @property
    def pin(self) -> str:
        """The form rpm-ostree records in `[packages] requested-local`: `<sha256>:<nevra>`."""
        return f"{self.sha256}:{self.nevra}"


def read_local(path: str, origin: Path) -> LocalPackage:
    file = Path(path)
    if not file.is_absolute():
        file = origin.parent / file
    try:
        with open(file, "rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()  # streamed: a local RPM can be big
        headers = read_rpm(file, f"{origin}: the local package {path}")
    except OSError as e:
        raise PackageError(f"{origin}: the local package {path} cannot be read ({e.strerror}).") from None
    return LocalPackage(file, sha256, headers, Nevra.from_header(headers.header))


_PIN = re.compile(r"^(?P<sha256>[0-9a-f]{64}):(?P<nevra>\S+)$")


def is_pin(entry: str) -> bool:
    """`<sha256>:<nevra>`, rpm-ostree's form (a TOML origin may list it as well as a path: `reconcile init`)."""
    return _PIN.match(entry) is not None


def cached_local(pin: str, origin: Path, cache: PackageCache) -> LocalPackage:
    """An rpm-ostree `requested-local` entry, `<sha256>:<nevra>`: the package reconcile's cache commit holds, or
    the header of rpm-ostree's (enough to plan; a build needs the RPM file)."""
    match = _PIN.match(pin)
    if match is None:
        raise InvalidInputError(
            f"{origin}: [packages] requested-local entry {pin!r} is not `<sha256>:<nevra>` as rpm-ostree writes it."
        )
    try:
        nevra = Nevra.parse(match["nevra"])
    except ValueError:
        raise InvalidInputError(f"{origin}: {match['nevra']!r} in requested-local is not a NEVRA.") from None
    raw = cache.cached_raw(nevra, f"sha256:{match['sha256']}") or cached_header(cache.repo, nevra, match["sha256"])
    if raw is None:
        raise PackageError(
            f"{origin}: the local package {nevra} (sha256 {match['sha256'][:12]}…) is not in the package cache.",
            hint="List the RPM file itself in packages.local (a TOML origin takes a path as well as a pin).",
        )
    headers = h.read_rpm_headers(io.BytesIO(raw))
    return LocalPackage(None, match["sha256"], headers, Nevra.from_header(headers.header))

"""Local RPM files requested in `packages.local`: read once at plan time and pinned by their sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from reconcile.apply.pkgcache import read_rpm
from reconcile.errors import PackageError
from reconcile.rpm import header as h
from reconcile.rpm.nevra import Nevra


@dataclass(frozen=True)
class LocalPackage:
    path: Path
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

"""Download the pinned packages that the package cache does not hold, each checked against its repodata checksum."""

from __future__ import annotations

from pathlib import Path

from reconcile.errors import PackageError
from reconcile.planner.model import PinnedPackage
from reconcile.repos.fetch import download, join_url


def fetch_packages(packages: list[PinnedPackage], staging: Path) -> dict[str, Path]:
    """nevra -> local file; raises (leaving nothing behind in `staging`) on the first bad download."""
    staging.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for p in packages:
        algorithm, _, expected = p.checksum.partition(":")
        if not expected:
            raise PackageError(
                f"The repo metadata of [{p.repo}] gives no checksum for {p.nevra}; refusing to trust it."
            )
        dest = staging / f"{p.nevra}.rpm"
        download(join_url(p.baseurl, p.location), dest, algorithm, expected, f"{p.nevra} from [{p.repo}]")
        out[p.nevra] = dest
    return out

"""Live handles that steps share (sysroot, repo, cache, reporter), kept apart from frozen values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.ostree import Repo, Sysroot
from reconcile.report import Reporter
from reconcile.repos.config import FetchMode


@dataclass
class Context:
    sysroot: Sysroot
    repo: Repo
    reporter: Reporter
    arch: str
    cachedir_override: Path | None = None
    fetch: FetchMode = field(default_factory=FetchMode)

    @classmethod
    def open(
        cls, sysroot_path: Path, reporter: Reporter, cachedir: Path | None = None, fetch: FetchMode | None = None
    ) -> Context:
        if not (sysroot_path / "ostree" / "repo").is_dir():
            raise ReconcileError(f"{sysroot_path} is not an OSTree sysroot (it has no ostree/repo).")
        sysroot = Sysroot(sysroot_path)
        sysroot.load()
        return cls(sysroot, sysroot.repo(), reporter, os.uname().machine, cachedir, fetch or FetchMode())

    def cachedir(self, stateroot: str) -> Path:
        """The stateroot's own /var/cache/reconcile (the real /var/cache/reconcile on a booted host)."""
        if self.cachedir_override is not None:
            return self.cachedir_override
        return self.sysroot.path / "ostree" / "deploy" / stateroot / "var" / "cache" / "reconcile"

    def reload(self) -> None:
        """Read the sysroot again after it changed on disk (a lock taken, a deployment written): the repo
        handle is replaced too, so callers holding the old one must not keep using it."""
        self.sysroot.load()
        self.repo = self.sysroot.repo()

"""A sysroot: its deployments, its lock, and deploying a commit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from reconcile.errors import LockTimeoutError, OstreeError
from reconcile.ostree._gi import (
    Gio,
    GLib,
    OSTree,
    call,
    chatter_to_stderr,
    unwrap,
)
from reconcile.ostree.repo import Repo


class Sysroot:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.gi = OSTree.Sysroot.new(Gio.File.new_for_path(str(path)))
        self._locked = False

    def load(self) -> None:
        call(f"load sysroot {self.path}", self.gi.load, None)

    def repo(self) -> Repo:
        gi_repo = unwrap("sysroot repo", call("get_repo", self.gi.get_repo, None))
        return Repo(gi_repo, self.path / "ostree" / "repo")

    def deployments(self) -> list[OSTree.Deployment]:
        return list(self.gi.get_deployments())

    def booted(self) -> OSTree.Deployment | None:
        return self.gi.get_booted_deployment()

    def deployment_dir(self, dep: OSTree.Deployment) -> Path:
        return Path(self.gi.get_deployment_directory(dep).get_path())

    def lock(self, timeout: float, on_wait: Callable[[], None]) -> None:
        """Take the sysroot lock, waiting up to `timeout` seconds (telling the user once that it waits)."""
        deadline = time.monotonic() + timeout
        told = False
        while True:
            _, acquired = call("try_lock", self.gi.try_lock)
            if acquired:
                self._locked = True
                return
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"Another process holds the lock of the sysroot {self.path} and did not release it "
                    f"within {timeout:g} s.",
                    hint="Wait for the other operation to finish, or pass a longer --lock-timeout.",
                )
            if not told:
                on_wait()
                told = True
            time.sleep(0.2)

    def unlock(self) -> None:
        if self._locked:
            self.gi.unlock()
            self._locked = False

    def deploy(
        self,
        osname: str,
        commit: str,
        origin: GLib.KeyFile,
        merge: OSTree.Deployment | None,
        kernel_args: list[str] | None = None,
    ) -> OSTree.Deployment:
        """`kernel_args`: the whole argv of the new deployment (libostree adds ostree=); None keeps the merge's."""
        what = f"deploy_tree {osname} {commit}" + (f" kargs {' '.join(kernel_args)}" if kernel_args is not None else "")
        try:
            with chatter_to_stderr():
                dep = unwrap(what, call(what, self.gi.deploy_tree, osname, commit, origin, merge, kernel_args, None))
        except OstreeError:
            # deploy_tree leaves its half-written deployment directory behind; cleanup removes it.
            with contextlib.suppress(OstreeError):
                self.cleanup()
            raise
        flags = OSTree.SysrootSimpleWriteDeploymentFlags.NO_CLEAN
        with chatter_to_stderr():
            call("simple_write_deployment", self.gi.simple_write_deployment, osname, dep, merge, flags, None)
        return dep

    def stage(
        self,
        osname: str,
        commit: str,
        origin: GLib.KeyFile,
        merge: OSTree.Deployment | None,
        kernel_args: list[str] | None = None,
    ) -> OSTree.Deployment:
        """Stage for the next boot: libostree merges /etc and switches the bootloader at shutdown
        (ostree-finalize-staged.service). Only a booted sysroot can stage (libostree refuses otherwise).
        `kernel_args` as for `deploy`."""
        what = f"stage_tree {osname} {commit}"
        with chatter_to_stderr():
            return unwrap(what, call(what, self.gi.stage_tree, osname, commit, origin, merge, kernel_args, None))

    def write_deployments(self, deployments: list[OSTree.Deployment]) -> None:
        """The new boot order (the first is the default); deployments left out are removed. No prune here:
        the caller drops refs first and then prunes."""
        opts = OSTree.SysrootWriteDeploymentsOpts()
        opts.do_postclean = False
        with chatter_to_stderr():
            call("write_deployments", self.gi.write_deployments_with_options, deployments, opts, None)

    def prune(self) -> tuple[int, int]:
        """sysroot.cleanup() that says what it freed: deployment refs regenerated, then the repo pruned to its
        refs (depth 0, as libostree's own cleanup). Returns (objects pruned, bytes freed)."""
        with chatter_to_stderr():
            call("prepare_cleanup", self.gi.prepare_cleanup, None)
        repo = unwrap("sysroot repo", call("get_repo", self.gi.get_repo, None))
        flags = OSTree.RepoPruneFlags.REFS_ONLY
        _ok, _total, pruned, size = call("repo prune", repo.prune, flags, 0, None)
        return pruned, size

    def write_origin(self, dep: OSTree.Deployment, origin: GLib.KeyFile) -> None:
        call("write_origin_file", self.gi.write_origin_file, dep, origin, None)

    def cleanup(self) -> None:
        with chatter_to_stderr():
            call("sysroot cleanup", self.gi.cleanup, None)

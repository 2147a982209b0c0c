"""Running scriptlets against the deployment-to-be, and folding what they change back into a commit.

The tree is an overlayfs whose lower layer is a hardlink checkout of the layered commit: writes land in the
upper directory, so a repo object is never modified (the checkout's files ARE the objects). Each script runs
in bubblewrap with the tree as `/`, `/etc` bound to `/usr/etc`, throwaway tmpfs on /tmp, /var, /run and /boot, and
no network. The overlay is mounted only inside each script's own mount namespace, so no mount outlives a
run, killed or not. The upper directory, whiteouts and opaque directories included, then becomes a new commit.
(ostree-platform-notes §6 has the measured recipe.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconcile import ostree
from reconcile.errors import PackageError
from reconcile.ostree import MutableTree, Repo, SePolicy, Xattrs
from reconcile.process import dies_with_us, run
from reconcile.rpm.scriptlets import Scriptlet

log = logging.getLogger("reconcile.sandbox")

TIMEOUT = 600
OPAQUE = "trusted.overlay.opaque"
SANDBOX_BIN = "/run/reconcile/bin"
SCRIPT_PATH = "/run/reconcile/script"
# rpm-ostree's set (a subset of Docker's default): file ownership and modes, setuid/setgid, chroot, signals.
# Without CAP_SYS_ADMIN and CAP_MKNOD a script cannot mount or make devices, so it cannot reach the host's disks.
CAPABILITIES = [
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "sys_chroot",
    "setfcap",
]
# What a script may leave in the tree: /usr (and /etc, which is /usr/etc). Like rpm-ostree, the rest is dropped.
KEPT = "usr"
# useradd/groupadd in a script find the accounts reconcile already created from the package's declarations.
ACCOUNT_SHIM = """#!/bin/sh
# reconcile: accounts a package declares are created before its scripts run.
for name; do :; done
for db in /etc/passwd /usr/lib/passwd /etc/group /usr/lib/group; do
    [ -f "$db" ] && grep -q "^$name:" "$db" && exit 0
done
echo "$0: reconcile did not see $name declared before the scripts ran" >&2
exit 1
"""


@dataclass(frozen=True)
class ScriptRun:
    label: str
    seconds: float


class Sandbox:
    """An overlay over a hardlink checkout of `commit`; use as a context manager."""

    def __init__(self, repo: Repo, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        tmp = repo.path / "tmp"
        tmp.mkdir(exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="reconcile-scripts-", dir=tmp))
        self.lower, self.upper = self.work / "lower", self.work / "upper"
        self.merged, self.ovl_work, self.bin = self.work / "merged", self.work / "ovl-work", self.work / "bin"

    def __enter__(self) -> Sandbox:
        try:
            self.repo.checkout(self.commit, self.lower)
            # Mount points bwrap needs are made in the lower layer, so they never reach the upper one.
            for name in ("etc", "tmp", "var", "run", "proc", "dev", "boot", "sys"):
                target = self.lower / name
                if not target.exists() and not target.is_symlink():
                    target.mkdir()
            for d in (self.upper, self.merged, self.ovl_work, self.bin):
                d.mkdir()
            for tool in ("useradd", "groupadd"):
                shim = self.bin / tool
                shim.write_text(ACCOUNT_SHIM)
                shim.chmod(0o755)
            # One trial mount (in a namespace that ends with it) so a refusal is told as such, not as a script's.
            run(["unshare", "--mount", "--propagation", "private", "--", *self._mount()], "Mounting the overlay")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The checkout is read-only by nature (objects); unlinking its entries never touches the objects.
        shutil.rmtree(self.work, ignore_errors=True)

    def _mount(self) -> list[str]:
        options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.ovl_work}"
        options += ",redirect_dir=off,metacopy=off,index=off,xino=off"
        return ["mount", "-t", "overlay", "reconcile-scripts", "-o", options, str(self.merged)]

    def _bwrap(self, command: list[str], name: str, binds: list[str]) -> list[str]:
        """The overlay is mounted in a mount namespace of the script's own: the kernel removes it when bubblewrap
        ends, also when reconcile is killed (bubblewrap dies with its parent), so no mount outlives a run."""
        mount = " ".join(shlex.quote(a) for a in self._mount())
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-ec", f'{mount}; exec "$@"', "sh",
            "bwrap",
            "--bind", str(self.merged), "/",
            "--bind", str(self.merged / "usr" / "etc"), "/etc",
            "--dev", "/dev",
            "--proc", "/proc",
            "--ro-bind", "/proc/sys", "/proc/sys",  # the kernel's settings are the host's: read, never set
            "--tmpfs", "/sys",
            "--tmpfs", "/tmp",
            "--tmpfs", "/var",
            "--tmpfs", "/run",
            "--tmpfs", "/boot",  # the boot partition's mount point stays empty in the commit
            *binds,
            "--ro-bind", str(self.bin), SANDBOX_BIN,
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
            "--cap-drop", "ALL", *(arg for cap in CAPABILITIES for arg in ("--cap-add", f"cap_{cap}")),
            "--die-with-parent", "--new-session", "--chdir", "/", "--clearenv",
            "--setenv", "PATH", f"{SANDBOX_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "--setenv", "HOME", "/root",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "SYSTEMD_OFFLINE", "1",
            "--setenv", "RPM_PACKAGE_NAME", name,
            *command,
        ]  # fmt: skip

    def run(self, script: Scriptlet, arg: str, stdin: str = "") -> ScriptRun:
        """Run one scriptlet; a failure raises with the package, the script, its exit code and last output."""
        script_file = self.work / "script"
        script_file.write_text(script.body)
        command = [*script.prog, *([SCRIPT_PATH] if script.body else []), arg]
        argv = self._bwrap(command, script.nevra.name, ["--ro-bind", str(script_file), SCRIPT_PATH])
        # The one command a user replays by hand when a script fails: logged whole, with what it runs.
        log.debug("bubblewrap for %s (%s): %s", script.label, script.nevra, shlex.join(argv))
        log.debug("%s script (%s):\n%s", script.label, script_file, script.body)
        if stdin:
            log.debug("%s stdin: %d line(s): %s", script.label, stdin.count("\n"), stdin.replace("\n", " ")[:2000])
        what = f"The %{script.kind} scriptlet of {script.nevra}"
        hint = "Nothing was deployed. Fix the package, or list the script in [options] ignore_scripts."
        return ScriptRun(script.label, self._run(argv, stdin, what, hint))

    def rebuild_policy(self) -> ScriptRun | None:
        """When the scripts changed the SELinux policy store, rebuild the policy with the tree's own semodule
        (as libostree does at deploy); None when they did not, or the tree has no semodule."""
        semodule = [layer / "usr/sbin/semodule" for layer in (self.upper, self.lower)]
        if not (self.upper / "usr/etc/selinux").exists() or not any(path.exists() for path in semodule):
            return None
        argv = self._bwrap(["/usr/sbin/semodule", "-N", "--rebuild-if-modules-changed"], "reconcile", [])
        log.debug("bubblewrap for the SELinux policy rebuild: %s", shlex.join(argv))
        what = "Rebuilding the SELinux policy with the tree's semodule"
        hint = "Nothing was deployed. A layered package's policy module does not build against the base's policy."
        return ScriptRun("semodule --rebuild-if-modules-changed", self._run(argv, "", what, hint))

    @staticmethod
    def _run(argv: list[str], stdin: str, what: str, hint: str) -> float:
        start = time.monotonic()
        try:
            command = dies_with_us(argv)  # bubblewrap dies with its parent; this covers the shell before it
            proc = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise PackageError(f"{what} ran for over {TIMEOUT} s.", hint=hint) from None
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip().splitlines()[-10:]
            raise PackageError(
                f"{what} failed with exit code {proc.returncode}. "
                "Its last output: " + (" | ".join(output) if output else "(none)"),
                hint=hint,
            )
        return time.monotonic() - start

    def fold(self, tree: MutableTree, policy: SePolicy | None) -> list[str]:
        """Apply the upper layer to `tree`: whiteouts delete, opaque directories replace, the rest is written.
        Returns what the scripts wrote outside /usr and /etc, which is dropped (the path rules hold there)."""
        dropped = sorted(f"/{entry.name}" for entry in self.upper.iterdir() if entry.name != KEPT)
        for name in dropped:
            outside = self.upper / name.lstrip("/")
            shutil.rmtree(outside) if outside.is_dir() and not outside.is_symlink() else outside.unlink()
        root_meta = tree.get_metadata_checksum()
        for path, is_dir in sorted(_upper_entries(self.upper), key=lambda e: e[0].count("/"), reverse=True):
            full = self.upper / path
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout: the name was deleted
                ostree.tree_remove_path(tree, path)
                full.unlink()
            elif is_dir and _xattr(full, OPAQUE) == b"y":  # an opaque directory replaces the lower one
                ostree.tree_remove_path(tree, path)

        def xattrs(relpath: str) -> Xattrs | None:
            on_disk = self.upper / relpath.lstrip("/")
            pairs = []
            with contextlib.suppress(OSError):
                for name in os.listxattr(on_disk, follow_symlinks=False):
                    if not name.startswith("trusted.overlay."):
                        pairs.append((name.encode() + b"\0", os.getxattr(on_disk, name, follow_symlinks=False)))
            return Xattrs(ostree.Variant("a(ayay)", pairs))  # an empty list too: libostree then adds the label

        self.repo.write_directory(tree, self.upper, xattrs, policy)
        tree.set_metadata_checksum(root_meta)  # the upper directory's own root is not the tree's /
        return dropped


def _upper_entries(upper: Path) -> Iterator[tuple[str, bool]]:
    for dirpath, dirnames, filenames in os.walk(upper):
        rel = os.path.relpath(dirpath, upper)
        for name in dirnames:
            yield os.path.normpath(os.path.join(rel, name)), True
        for name in filenames:
            yield os.path.normpath(os.path.join(rel, name)), False


def _xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None

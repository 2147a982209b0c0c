"""Pulling from the repo's remotes through libostree: a commit with only the paths a plan reads, a ref's
history of commits, or a whole commit. Each pull is bounded (a total deadline and a stall limit, watched from a
thread that cancels it), stops when reconcile is asked to stop, and reports what it fetched."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from reconcile import stopping
from reconcile.errors import ReconcileError
from reconcile.ostree._gi import Gio, GLib, OSTree, call, chatter_to_stderr
from reconcile.ostree.repo import Repo

STALL_SECONDS = 30.0  # dnf's `timeout`: no byte for this long abandons the pull
_KEY_ID = re.compile(r"key ID ([0-9A-Fa-f]{8,40})")


@dataclass(frozen=True)
class Pulled:
    """What one pull fetched: bytes over the network, objects written, and how long it took."""

    bytes: int
    objects: int
    seconds: float
    tip: str | None = None  # what the ref points at on the remote (pulls by ref)


def remotes(repo: Repo) -> list[str]:
    return sorted(repo.gi.remote_list() or [])


def remote_url(repo: Repo, remote: str) -> str:
    try:
        return str(repo.gi.remote_get_url(remote)[1])
    except GLib.Error:
        return "?"


def require_remote(repo: Repo, remote: str, where: str) -> None:
    """An unknown remote is an error listing the configured ones."""
    known = remotes(repo)
    if remote not in known:
        listed = ", ".join(known) if known else "none"
        raise ReconcileError(
            f"{where} names the remote {remote!r}, which the sysroot's repo ({repo.path}) does not configure "
            f"(configured remotes: {listed}).",
            hint="Add it with `ostree remote add`, or fix the refspec. Nothing was changed.",
        )


def pull(
    repo: Repo,
    remote: str,
    ref: str,
    *,
    deadline: float,
    commit: str | None = None,
    subdirs: list[str] | None = None,
    history: bool = False,
) -> Pulled:
    """Pull `ref` from `remote`, or only one `commit` of it (by checksum, so no ref moves). `subdirs`: only these
    paths of the tree (the commit is then partial); `history`: every commit of the ref's history, nothing else."""
    options: dict[str, GLib.Variant] = {"refs": GLib.Variant("as", [commit or ref])}
    flags = OSTree.RepoPullFlags.NONE
    if subdirs is not None:
        options["subdirs"] = GLib.Variant("as", subdirs)
    if history:
        flags |= OSTree.RepoPullFlags.COMMIT_ONLY
        options["depth"] = GLib.Variant("i", -1)
    options["flags"] = GLib.Variant("i", int(flags))
    progress = OSTree.AsyncProgress.new()
    cancellable = Gio.Cancellable.new()
    watch = _Watch(progress, cancellable, deadline)
    what = f"pull {remote}:{ref}" + (f"@{commit[:12]}" if commit else "")
    tracking = f"{remote}:{ref}"
    before = repo.resolve(tracking)
    started = time.monotonic()
    watch.start()
    try:
        with chatter_to_stderr():
            call(what, repo.gi.pull_with_options, remote, GLib.Variant("a{sv}", options), progress, cancellable)
        tip = commit or repo.resolve(tracking)
    except ReconcileError as e:
        raise _pull_error(repo, remote, ref, watch, str(e)) from None
    finally:
        watch.stop()
        if repo.resolve(tracking) != before:  # planning looks, it does not move refs: `ostree pull` does that
            call(f"restore {tracking}", repo.gi.set_ref_immediate, remote, ref, before, None)
    seconds = time.monotonic() - started
    return Pulled(progress.get_uint64("bytes-transferred"), progress.get_uint("fetched"), seconds, tip)


def _pull_error(repo: Repo, remote: str, ref: str, watch: _Watch, message: str) -> ReconcileError:
    url = remote_url(repo, remote)
    detail = message.split(": ", 1)[1] if ": " in message else message
    if watch.reason:
        return ReconcileError(
            f"Pulling {ref} from the remote {remote!r} ({url}) was abandoned: {watch.reason}.",
            hint="Check the remote's server or the network, then try again. Nothing was changed.",
        )
    if "GPG" in detail or "signature" in detail.lower():
        key = _KEY_ID.search(detail)
        if key:
            why = f"it is signed by key {key[1]}, which the remote {remote!r} does not trust"
            hint = f"Import the remote's key (ostree remote gpg-import {remote}) if you trust it."
        else:
            why = "it carries no signature, and the remote has gpg-verify=true"
            hint = "Ask the publisher to sign its commits; do not turn gpg-verify off to get past this."
        return ReconcileError(
            f"The commit of {ref} on the remote {remote!r} ({url}) was refused: {why}. ({detail.strip()})",
            hint=hint + " Nothing was changed.",
        )
    if stopping.requested():
        return ReconcileError(f"Pulling {ref} from the remote {remote!r} was stopped.")
    return ReconcileError(
        f"Cannot pull {ref} from the remote {remote!r} ({url}): {detail.strip()}",
        hint=f"Check that the remote is reachable and has this ref (ostree remote refs {remote}). Nothing was changed.",
    )


class _Watch:
    """Cancels a pull that passed its deadline, moved no byte for STALL_SECONDS, or was asked to stop. It runs as
    a timeout source of the main context the pull iterates, so the progress object is never read from another
    thread (doing so from a watcher thread deadlocked libostree's progress lock, 2 of 6 test runs)."""

    def __init__(self, progress: OSTree.AsyncProgress, cancellable: Gio.Cancellable, deadline: float) -> None:
        self.progress, self.cancellable, self.deadline = progress, cancellable, deadline
        self.reason = ""
        self._source = 0
        self._started = self._last_move = 0.0
        self._last_bytes = 0

    def start(self) -> None:
        self._started = self._last_move = time.monotonic()
        self._source = GLib.timeout_add(100, self._tick)

    def stop(self) -> None:
        if self._source:
            GLib.source_remove(self._source)
            self._source = 0

    @stopping.from_c
    def _tick(self) -> bool:
        now = time.monotonic()
        moved = self.progress.get_uint64("bytes-transferred")
        if moved != self._last_bytes:
            self._last_bytes, self._last_move = moved, now
        if now - self._started > self.deadline:
            self.reason = f"it took longer than the transfer deadline of {self.deadline:g} s ({moved} bytes)"
        elif now - self._last_move > STALL_SECONDS:
            self.reason = f"no data came for {STALL_SECONDS:g} s ({moved} bytes received)"
        elif stopping.requested():
            self.reason = "reconcile was asked to stop"
        if not self.reason:
            return True
        self.cancellable.cancel()
        self._source = 0
        return False

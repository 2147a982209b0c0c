"""The gi bindings of libostree, and the two wrappers every call goes through: logged, and every failure an
`OstreeError`.

See ../shared/docs/ostree-platform-notes.md for the traps this module steps around (checksum types, calls
that fail by returning False, enum fields, lazy trees).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from reconcile import stopping  # noqa: E402
from reconcile.errors import OstreeError  # noqa: E402

log = logging.getLogger("reconcile.ostree")
T = TypeVar("T")

Variant = GLib.Variant
KeyFile = GLib.KeyFile
MutableTree = OSTree.MutableTree
Deployment = OSTree.Deployment
NOT_FOUND = Gio.IOErrorEnum.NOT_FOUND


@dataclass(frozen=True)
class Xattrs:
    """An `a(ayay)` xattr list as libostree takes it (tree.xattrs makes one); gi values stay inside."""

    variant: Any

    def key(self) -> bytes:
        return bytes(self.variant.get_data_as_bytes().get_data())


@dataclass(frozen=True)
class TreeRoot:
    """The root of a mutable tree written to the repo (Repo.write_mtree), to commit (Repo.write_commit)."""

    file: Any


@dataclass(frozen=True)
class SePolicy:
    """A commit's SELinux policy, loaded by libostree (tree.sepolicy_from_commit)."""

    gi: Any
    name: str


AT_FDCWD = -100


def call(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run one libostree call, logging it and translating GLib errors."""
    log.debug("ostree: %s", what)
    try:
        with stopping.callback():  # the Python callbacks it may run (xattrs) must not take a signal
            return fn(*args)
    except GLib.Error as e:
        raise OstreeError(f"{what}: {e.message}") from e


def unwrap(what: str, result: Any) -> Any:
    """Unwrap `(ok, value...)` tuples; several gi calls report failure only through `ok`."""
    if isinstance(result, tuple):
        if not result[0]:
            raise OstreeError(f"{what}: libostree reported failure")
        return result[1] if len(result) == 2 else result[1:]
    if result is False:
        raise OstreeError(f"{what}: libostree reported failure")
    return result


@contextlib.contextmanager
def chatter_to_stderr() -> Iterator[None]:
    """libostree prints progress (e.g. "Freed objects: ...") on stdout, which is reserved for our output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def is_not_found(e: GLib.Error) -> bool:
    return bool(e.matches(Gio.io_error_quark(), NOT_FOUND))

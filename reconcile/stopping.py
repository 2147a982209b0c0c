"""SIGINT, SIGTERM and SIGHUP stop reconcile at a safe point, with the clean-up of an exception.

Python runs a signal handler between any two bytecodes, also inside PyGObject's own Python code (an attribute
lookup, a GError's conversion) and inside a callback libostree or librepo called: an exception raised there
comes out as another one (an AttributeError, "Converting the GError failed") or is printed and dropped. So the
handler only records the signal there and looks again a moment later, until the main thread is in code of
ours; then it raises KeyboardInterrupt (SIGINT) or Terminated, and context managers unmount, abort and
delete as they do for any error."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RETRY = 0.02  # seconds until a signal that came at an unsafe point is looked at again
_UNSAFE_PARTS = tuple(f"{os.sep}{package}{os.sep}" for package in ("gi", "librepo", "libarchive"))
_pending = 0
_callbacks = 0


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the main thread is, as KeyboardInterrupt is for SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def install() -> None:
    for s in STOPS:
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)


def requested() -> int:
    """The signal that asked reconcile to stop, or 0."""
    return _pending


def finished() -> None:
    """The command's work is over, done or failed: a late signal must not change its outcome."""
    for s in STOPS:
        signal.signal(s, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def callback() -> Iterator[None]:
    """Around a C call that may run Python callbacks (libostree, librepo), or around such a callback's body: no
    stop is raised in it (one raised at a callback's first line would be printed and dropped by PyGObject)."""
    global _callbacks
    _callbacks += 1
    try:
        yield
    finally:
        _callbacks -= 1


def from_c(fn: Callable[P, R]) -> Callable[P, R]:
    """A function C code calls back: its body is a `callback()`."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with callback():
            return fn(*args, **kwargs)

    return run


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = _pending or signum
    _stop_if_safe(frame)


def _on_alarm(_signum: int, frame: FrameType | None) -> None:
    if _pending:
        _stop_if_safe(frame)


def _stop_if_safe(frame: FrameType | None) -> None:
    if _unsafe(frame):
        signal.setitimer(signal.ITIMER_REAL, RETRY)
        return
    for s in STOPS:  # a second signal must not cut the clean-up short
        signal.signal(s, signal.SIG_IGN)
    if _pending == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(_pending)


def _unsafe(frame: FrameType | None) -> bool:
    if _callbacks:
        return True
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _UNSAFE_PARTS):
            return True
        frame = frame.f_back
    return False

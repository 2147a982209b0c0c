"""Files shared between processes: written so that readers see the old content or the new, never a part (a
temporary file beside it, renamed into place), locked with a bounded wait that says what it waits for, and
temporary directories named by their process, so the next run removes what a killed one left."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reconcile.errors import LockTimeoutError


def private_tempdir(parent: Path, prefix: str) -> Path:
    """A new directory `prefix<pid>.<random>` in `parent`, after removing those of processes that are gone."""
    parent.mkdir(parents=True, exist_ok=True)
    clear_dead(parent, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=parent))


def clear_dead(parent: Path, prefix: str) -> None:
    """Remove the `prefix<pid>.…` files and directories in `parent` whose process no longer runs."""
    for left in parent.glob(f"{glob.escape(prefix)}*"):
        pid, dot, _rest = left.name[len(prefix) :].partition(".")
        if dot and pid.isdigit() and not _running(int(pid)):
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomically(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """`mode` defaults to the existing file's, else 0644."""
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(path: Path, what: str, waiting: Callable[[str], None], timeout: float = 120.0) -> Iterator[None]:
    """An exclusive flock on `path`, waiting at most `timeout` seconds (and saying so once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeoutError(f"Another reconcile held {what} for more than {timeout:.0f} s.") from None
                if not said:
                    waiting(f"Waiting for another reconcile to finish with {what}…")
                    said = True
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

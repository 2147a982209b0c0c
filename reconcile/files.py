"""Files shared between processes: written so that readers see the old content or the new, never a part (a
temporary file beside it, renamed into place), and locked with a bounded wait that says what it waits for."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reconcile.errors import LockTimeoutError


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

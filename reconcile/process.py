"""Running external programs: every argv is logged so it can be replayed, failures become ReconcileError."""

from __future__ import annotations

import functools
import logging
import shlex
import shutil
import subprocess
from collections.abc import Sequence

from reconcile.errors import ReconcileError

log = logging.getLogger("reconcile.process")


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def dies_with_us(argv: Sequence[str]) -> list[str]:
    """`argv` under `setpriv --pdeathsig KILL`: the kernel ends it when reconcile dies, by SIGKILL too, so no
    rpm or umount outlives a killed apply. A program that is not installed raises FileNotFoundError, as if run."""
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(argv[0])
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


def run(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run `argv`; return its stdout, or raise naming `what` with the last lines of its output."""
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(dies_with_us(argv), capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise ReconcileError(f"{what}: the program {argv[0]} is not installed.") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise ReconcileError(f"{what} failed (exit code {proc.returncode}): {tail}")
    return proc.stdout

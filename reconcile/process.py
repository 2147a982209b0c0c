"""Running external programs: every argv is logged so it can be replayed, failures become ReconcileError."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence

from reconcile.errors import ReconcileError

log = logging.getLogger("reconcile.process")


def run(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run `argv`; return its stdout, or raise naming `what` with the last lines of its output."""
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise ReconcileError(f"{what}: the program {argv[0]} is not installed.") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise ReconcileError(f"{what} failed (exit code {proc.returncode}): {tail}")
    return proc.stdout

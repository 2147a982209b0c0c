"""The `reconcile` command's first step: a no-op `plan` is answered from its record before anything heavy is
imported (noop_memo); everything else goes to the real command line."""

from __future__ import annotations

import sys


def main() -> int:
    from reconcile.noop_memo import answer

    code = answer(sys.argv[1:])
    if code is not None:
        return code
    from reconcile.cli import main as run

    return run()

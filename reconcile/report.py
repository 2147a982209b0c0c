"""Progress and messages for people, on stderr: rich on a TTY (NO_COLOR respected), plain lines otherwise.

stdout is reserved for the command's result (the plan, status, or a JSON document). rich is imported only
for a terminal: a hook calling reconcile from a script should not pay for it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepTiming:
    name: str
    seconds: float


@dataclass
class Reporter:
    quiet: bool = False
    timings: list[StepTiming] = field(default_factory=list)
    _console: Any = None

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty()

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def _line(self, message: str, style: str = "") -> None:
        if self.interactive:
            self.console.print(message, style=style, markup=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._line(message)

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}", "yellow")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named, timed step; shown as a spinner on a TTY and as one line otherwise."""
        start = time.monotonic()
        if not self.quiet and self.interactive:
            with self.console.status(name + "…"):
                yield
        else:
            yield
        elapsed = time.monotonic() - start
        self.timings.append(StepTiming(name, elapsed))
        if not self.quiet:
            self._line(f"{name}: done in {elapsed:.2f} s", "dim")

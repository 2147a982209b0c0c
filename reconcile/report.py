"""Progress and messages for people, on stderr: rich on a TTY (NO_COLOR respected), plain lines otherwise.

stdout is reserved for the command's result (the plan, status, or a JSON document)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console


@dataclass
class StepTiming:
    name: str
    seconds: float


@dataclass
class Reporter:
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    timings: list[StepTiming] = field(default_factory=list)

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", markup=False)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named, timed step; shown as a spinner on a TTY and as one line otherwise."""
        start = time.monotonic()
        if self.quiet:
            yield
        elif self.interactive:
            with self.console.status(name + "…"):
                yield
        else:
            yield
        elapsed = time.monotonic() - start
        self.timings.append(StepTiming(name, elapsed))
        if not self.quiet:
            self.console.print(f"{name}: done in {elapsed:.2f} s", style="dim", markup=False)

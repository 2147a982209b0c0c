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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconcile.journal import Journal


@dataclass
class StepTiming:
    name: str
    seconds: float


@dataclass
class Reporter:
    quiet: bool = False
    timings: list[StepTiming] = field(default_factory=list)
    journal: Journal | None = None  # set when systemd runs us: structured entries beside the plain lines
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

    def event(self, message: str, message_id: str, **fields: object) -> None:
        """A structured journal entry (nothing without a journal): what a fleet's log search keys on."""
        if self.journal is not None:
            self.journal.send(message, MESSAGE_ID=message_id, **fields)

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

    @contextlib.contextmanager
    def transfer(self, name: str, files: int, total_bytes: int) -> Iterator[TransferProgress]:
        """A timed step with a progress bar on a TTY (bytes, rate, files done of total)."""
        progress = TransferProgress(files, total_bytes)
        with self.step(name) if not (self.interactive and not self.quiet) else _timed(self, name):
            if self.interactive and not self.quiet:
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )

                columns = (
                    TextColumn(name),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TextColumn("{task.fields[done]}/{task.fields[files]} files"),
                    TimeRemainingColumn(),
                )
                with Progress(*columns, console=self.console, transient=True) as bar:
                    task = bar.add_task(name, total=total_bytes or None, done=0, files=files)
                    progress.on_change = lambda p: bar.update(task, completed=p.bytes_done, done=p.files_done)
                    yield progress
            else:
                yield progress


@dataclass
class TransferProgress:
    files: int
    total_bytes: int
    bytes_done: int = 0
    files_done: int = 0
    on_change: Any = None

    def set_bytes(self, done: int) -> None:
        self.bytes_done = done
        if self.on_change is not None:
            self.on_change(self)

    def file_done(self) -> None:
        self.files_done += 1
        if self.on_change is not None:
            self.on_change(self)


@contextlib.contextmanager
def _timed(reporter: Reporter, name: str) -> Iterator[None]:
    """Like Reporter.step, without its spinner (a progress bar replaces it)."""
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    reporter.timings.append(StepTiming(name, elapsed))
    reporter._line(f"{name}: done in {elapsed:.2f} s", "dim")

"""Timing and memory helpers: repetitions, min/median, side by side with a baseline, and the machine."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.data import exampleos
from benchmarks.peaks import TreePeaks, tree_peaks


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=exampleos.sysroot_env(), cwd=cwd, check=False)
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = run(argv, cwd)
    return time.perf_counter() - start, proc


def repeat(reps: int, measure: Callable[[], float], reset: Callable[[], None] | None = None) -> Series:
    """`measure` returns one sample in seconds; `reset` puts the system back between samples. Dirty pages
    are flushed before each sample: otherwise a sample's syncfs pays for what the reset wrote."""
    series = Series()
    for _ in range(reps):
        if reset is not None:
            reset()
        os.sync()
        series.seconds.append(measure())
    return series


def apply_timings(proc: subprocess.CompletedProcess[str]) -> dict[str, float]:
    """Step durations from `reconcile apply --json`."""
    return {t["step"]: t["seconds"] for t in json.loads(proc.stdout)["result"]["timings"]}


def peaks_of(argv: list[str]) -> TreePeaks:
    """Peak resident set of `argv` itself and of each of its children, every one its own (benchmarks/peaks.py):
    wait4's ru_maxrss would hold this process's own peak too and the largest child's (benchmarks/NOTES.md)."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: the tracer cannot drain a pipe while it waits
        peaks = tree_peaks(argv, stdout=subprocess.DEVNULL, stderr=err, env=exampleos.sysroot_env())
        if peaks.returncode not in (0, 2):
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} failed ({peaks.returncode}):\n{err.read().decode()[-3000:]}")
    return peaks


def machine() -> str:
    cores = os.cpu_count()
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    disk = _disk_of(Path(__file__))
    return f"{cores} cores, {mem_kib / 1024 / 1024:.1f} GiB RAM, {disk}, {platform.system()} {platform.release()}"


def _disk_of(path: Path) -> str:
    dev = os.stat(path).st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    rotational = Path(f"/sys/block/{name}/queue/rotational")
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout.strip()
    kind = "reported rotational" if rotational.exists() and rotational.read_text().strip() == "1" else "SSD"
    return f"disk {name} ({kind}, {fs})"


def self_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

"""The benchmark harness runs end to end at its quick size, so it cannot rot (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.root, pytest.mark.ostree]  # the harness builds real sysroots


def test_quick_benchmarks_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out.read_text()
    for row in ("| P1 |", "| P2 |", "| P2b |", "| P3 |", "| P4 |", "| P5 |", "| P6 |", "| P7 |", "| P8 |"):
        assert row in report, report
    assert "Machine: " in report and " cores, " in report

"""Kill it: SIGKILL, SIGTERM and SIGINT at every step boundary of an apply that runs scriptlets, and at random
points inside the steps. After each, before anything runs again: `ostree admin status` works, the old
deployment is there, `ostree fsck` is clean, nothing is mounted and the origin file is as it was. Then the
next apply converges and leaves no temporary directory. `make test` runs a smoke of a few kills;
`make reliability` (RECONCILE_RELIABILITY=full) runs them all: docs/reliability.md has the figures."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Host, needs_sandbox
from support import RECONCILE, File, Package, exampleos
from test_signals import mounts_below

pytestmark = needs_sandbox
FULL = os.environ.get("RECONCILE_RELIABILITY") == "full"
SEED = int(os.environ.get("RECONCILE_RELIABILITY_SEED", "13"))
RANDOM_KILLS = 48 if FULL else 1
PACKAGES = [
    Package(
        "busy",
        files=tuple(File(f"/usr/share/busy/{i}", f"{i}\n" * 200) for i in range(40)),
        scripts={"pre": "sleep 0.2", "post": "mkdir -p /usr/share/busy-post && echo done > /usr/share/busy-post/x"},
    ),
    Package("quiet", files=(File("/usr/share/quiet/a", "a\n"),), scripts={"posttrans": "sleep 0.2"}),
]
WANTED = [p.name for p in PACKAGES]


@dataclass
class Run:
    """One apply, stopped by `sig` after its `boundary`-th step line, or after `delay` seconds."""

    sig: signal.Signals
    boundary: int | None = None
    delay: float | None = None

    def __str__(self) -> str:
        where = f"after step {self.boundary}" if self.boundary is not None else f"at {self.delay:.2f} s"
        return f"{self.sig.name} {where}"


def _apply(host: Host) -> subprocess.Popen[str]:
    argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    return subprocess.Popen(
        [*map(str, argv), "--yes"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=exampleos.sysroot_env(),
    )


def _stop(host: Host, run: Run) -> tuple[int, list[str]]:
    """Start an apply and stop it as `run` says; its exit status and the lines it printed."""
    proc = _apply(host)
    lines: list[str] = []
    boundary = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if run.boundary is not None and sum(": done in " in x for x in lines) > run.boundary:
                boundary.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if run.boundary is not None:
            boundary.wait(timeout=120)
        else:
            time.sleep(run.delay or 0)
        if proc.poll() is None:
            proc.send_signal(run.sig)  # the process this test started, by its PID
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    return proc.returncode, lines


def _check_after(host: Host, before: dict, old: str, run: Run, code: int, lines: list[str]) -> list[str]:
    """What must hold after a stopped apply, before any re-run; the failures, in words."""
    problems = []
    repo = host.sysroot / "ostree" / "repo"
    status = subprocess.run(["ostree", "admin", "status", f"--sysroot={host.sysroot}"], capture_output=True, text=True)
    if status.returncode != 0:
        problems.append(f"ostree admin status fails: {status.stderr.strip()}")
    now = host.state()
    if old not in now["deployments"]:
        problems.append(f"the old deployment {old} is gone: {now['deployments']}")
    if now["origin_file"] != before["origin_file"]:
        problems.append("the origin file changed")
    fsck = subprocess.run(["ostree", "fsck", f"--repo={repo}"], capture_output=True, text=True)
    if fsck.returncode != 0 or "no errors found" not in fsck.stdout:
        problems.append(f"ostree fsck: {(fsck.stdout + fsck.stderr).strip()[-400:]}")
    deadline = time.monotonic() + 10  # bubblewrap dies with its parent; its mount namespace with it
    while mounts_below(repo / "tmp") and time.monotonic() < deadline:
        time.sleep(0.05)
    if mounts_below(repo / "tmp"):
        problems.append(f"still mounted: {mounts_below(repo / 'tmp')}")
    if run.sig != signal.SIGKILL and code not in (0, 128 + run.sig):
        problems.append(f"exit {code} after {run.sig.name}: {lines[-3:]}")
    if any("Traceback" in line for line in lines):
        problems.append("a traceback")
    return problems


def _converges(host: Host) -> list[str]:
    """The next apply finishes, the one after it has nothing to do, and no temporary directory is left."""
    problems = []
    first = host.run("apply")
    if first.code != 0:
        return [f"the re-run failed: {first.stderr.strip()[-400:]}"]
    second = host.run("apply")
    if second.code != 0 or "Nothing to do" not in second.stdout:
        problems.append(f"the second re-run did not find the deployment converged: {second.stdout} {second.stderr}")
    left = [p.name for p in (host.sysroot / "ostree" / "repo" / "tmp").iterdir() if p.name.startswith("reconcile-")]
    if left:
        problems.append(f"temporary directories left: {left}")
    return problems


def _runs(steps: int, duration: float) -> list[Run]:
    rng = random.Random(SEED)
    boundaries = range(steps) if FULL else [steps // 2]
    runs = [Run(signal.SIGKILL, boundary=b) for b in boundaries]
    runs += [Run(signal.SIGKILL, delay=rng.uniform(0, duration)) for _ in range(RANDOM_KILLS)]
    if FULL:
        runs += [Run(sig, boundary=b) for sig in (signal.SIGTERM, signal.SIGINT) for b in range(steps)]
    return runs


def test_stopped_applies_lose_nothing_and_the_next_run_converges(host: Host) -> None:
    host.publish(PACKAGES)
    host.write_origin(WANTED)
    start = time.monotonic()
    measured = host.apply_ok()  # one whole apply: how many steps it has and how long it takes
    duration = time.monotonic() - start
    steps = sum(": done in " in line for line in measured.stderr.splitlines())
    failures = []
    runs = _runs(steps, duration)
    for run in runs:
        host.write_origin([])  # back to the base alone, so that every stopped apply has the packages to layer
        host.apply_ok()
        host.write_origin(WANTED)
        before = host.state()
        old = f"{host.default()['checksum']}.{host.default()['serial']}"
        code, lines = _stop(host, run)
        problems = _check_after(host, before, old, run, code, lines) + _converges(host)
        failures += [f"{run}: {p}" for p in problems]
    _report(
        f"stops: {len(runs)} runs ({steps} steps, {duration:.1f} s an apply, seed {SEED}); failures: {len(failures)}"
    )
    assert not failures, "\n".join(failures)
    assert len(runs) >= (60 if FULL else 2)


def _start(host: Host, command: str, *extra: str) -> subprocess.Popen[str]:
    argv = [RECONCILE, command, "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    return subprocess.Popen(
        [*map(str, argv), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=exampleos.sysroot_env(),
    )


def _finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    try:
        return [(p.wait(timeout=600), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # processes this test started, by their PIDs


def test_concurrent_applies_with_plans_beside_them_make_one_deployment(host: Host) -> None:
    """Each round: applies and plans of one origin at once. One apply deploys, the others plan again and find
    nothing to do; every plan succeeds; the repo stays clean."""
    host.publish(PACKAGES)
    applies, rounds = (10, 5) if FULL else (3, 1)
    failures = []
    for round_ in range(rounds):
        host.write_origin(WANTED if round_ % 2 == 0 else [])
        before = len(host.status()["deployments"])
        procs = [_start(host, "apply", "--yes", "--lock-timeout", "300") for _ in range(applies)]
        procs += [_start(host, "plan", "--json") for _ in range(applies)]
        results = _finish(procs)
        failures += [f"round {round_}: exit {code}: {err.strip()[-300:]}" for code, _out, err in results if code != 0]
        deployed = sum("Deployed " in out for code, out, _err in results[:applies])
        if deployed != 1:
            failures.append(f"round {round_}: {deployed} applies deployed, not one")
        if len(host.status()["deployments"]) not in (before, before + 1):
            failures.append(f"round {round_}: deployments {before} -> {len(host.status()['deployments'])}")
        host.check_with_ostree()
    _report(f"concurrent: {rounds} round(s) of {applies} applies and {applies} plans; failures: {len(failures)}")
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not FULL, reason="make reliability only (tests/test_concurrency.py has ten)")
def test_two_hundred_plans_on_a_fresh_cache_ten_at_a_time(host: Host) -> None:
    host.publish(PACKAGES)
    host.write_origin(WANTED)
    failures = []
    for batch in range(20):
        if host.cachedir.exists():
            shutil.rmtree(host.cachedir)  # every batch races on a fresh metadata and header cache
        results = _finish([_start(host, "plan", "--json") for _ in range(10)])
        failures += [f"batch {batch}: exit {code}: {err.strip()[-300:]}" for code, _out, err in results if code != 0]
    _report(f"plans: 200 on a fresh cache, 10 at a time; failures: {len(failures)}")
    assert not failures, "\n".join(failures)


def _report(line: str) -> None:
    with Path(os.environ.get("RECONCILE_RELIABILITY_REPORT", "/dev/null")).open("a") as f:
        f.write(line + "\n")


@pytest.mark.skipif(not FULL, reason="make reliability only")
def test_the_kill_points_reach_inside_the_commit_transaction() -> None:
    """The random points must land inside steps too, not only on boundaries (a guard on the generator)."""
    runs = _runs(12, 10.0)
    assert sum(r.delay is not None for r in runs) >= 40

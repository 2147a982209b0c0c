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
PER_STEP = 4
# To replay one failure: RECONCILE_RELIABILITY_ONLY="SIGINT after step 9" RECONCILE_RELIABILITY_REPEAT=20
ONLY = os.environ.get("RECONCILE_RELIABILITY_ONLY", "")
REPEAT = int(os.environ.get("RECONCILE_RELIABILITY_REPEAT", "1"))
NUL = b"\0"
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
    step: str = ""  # the step `delay` falls in

    def __str__(self) -> str:
        where = f"after step {self.boundary}" if self.boundary is not None else f"at {self.delay:.2f} s ({self.step})"
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
    left = _processes_naming(host.sysroot)
    if left:
        problems.append(f"processes outlived the apply: {left}")
    if run.sig != signal.SIGKILL and code not in (0, 128 + run.sig):
        problems.append(f"exit {code} after {run.sig.name}: {lines[-3:]}")
    if any("Traceback" in line for line in lines):
        problems.append("a traceback: " + " | ".join(lines[-25:]))
    return problems


def _processes_naming(path: Path) -> list[str]:
    """Processes whose command line names `path` (a child of a killed apply would: rpm, bwrap, umount),
    given a few seconds to die with their parent."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
                if str(path).encode() in cmdline:
                    found.append(f"{entry.name}: {cmdline.replace(NUL, b' ')[:200]!r}")
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


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


def _measure(host: Host) -> list[tuple[str, float]]:
    """The steps of one whole apply, each with the time it ended, in seconds from the start."""
    start = time.monotonic()
    proc = _apply(host)
    assert proc.stderr is not None
    ends = [(line.split(": done in ")[0], time.monotonic() - start) for line in proc.stderr if ": done in " in line]
    assert proc.wait(timeout=300) == 0
    return ends


def _runs(ends: list[tuple[str, float]]) -> list[Run]:
    """SIGKILL at each step boundary and at PER_STEP random points inside each step; SIGTERM and SIGINT at each
    boundary. The smoke: one boundary and one point inside the step that commits; SIGTERM and SIGINT early."""
    rng = random.Random(SEED)
    spans = [(name, ends[i - 1][1] if i else 0.0, end) for i, (name, end) in enumerate(ends)]
    if not FULL:
        name, begin, end = next((s for s in spans if "commit" in s[0].lower()), max(spans, key=lambda s: s[2] - s[1]))
        smoke = [Run(signal.SIGKILL, boundary=len(ends) // 2), Run(signal.SIGKILL, delay=(begin + end) / 2, step=name)]
        # Right after the rpmdb is read, a signal used to land inside PyGObject and come out as an AttributeError.
        return [*smoke, Run(signal.SIGTERM, boundary=0), Run(signal.SIGINT, boundary=0)]
    runs = [Run(signal.SIGKILL, boundary=b) for b in range(len(ends))]
    runs += [Run(signal.SIGKILL, delay=rng.uniform(b, e), step=n) for n, b, e in spans for _ in range(PER_STEP)]
    runs += [Run(sig, boundary=b) for sig in (signal.SIGTERM, signal.SIGINT) for b in range(len(ends))]
    return runs


def test_stopped_applies_lose_nothing_and_the_next_run_converges(host: Host) -> None:
    host.publish(PACKAGES)
    host.write_origin(WANTED)
    host.apply_ok()  # the packages are in the package cache from now on, as for every stopped run below
    host.write_origin([])
    host.apply_ok()
    host.write_origin(WANTED)
    ends = _measure(host)
    failures = []
    runs = [r for r in _runs(ends) if ONLY in str(r)] * REPEAT
    for run in runs:
        host.write_origin([])  # back to the base alone, so that every stopped apply has the packages to layer
        host.apply_ok()
        host.write_origin(WANTED)
        before = host.state()
        old = f"{host.default()['checksum']}.{host.default()['serial']}"
        code, lines = _stop(host, run)
        problems = _check_after(host, before, old, run, code, lines) + _converges(host)
        failures += [f"{run}: {p}" for p in problems]
    kills = sum(r.sig == signal.SIGKILL for r in runs)
    _report(
        f"stops: {kills} SIGKILL and {len(runs) - kills} SIGTERM/SIGINT over {len(ends)} steps "
        f"({ends[-1][1]:.1f} s an apply, seed {SEED}); failures: {len(failures)}"
    )
    assert not failures, "\n".join(failures)
    assert kills >= (60 if FULL else 2) or ONLY


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
def test_the_kill_points_reach_inside_every_step() -> None:
    """A guard on the generator: every step gets kills inside it, not only at its boundaries."""
    ends = [("a", 1.0), ("b", 1.5), ("c", 4.0)]
    runs = _runs(ends)
    assert {r.step for r in runs if r.delay is not None} == {"a", "b", "c"}
    assert all(0 <= (r.delay or 0) <= 4.0 for r in runs)

"""Concurrent runs: edits of one origin file all land, one after the other; plans share the caches safely."""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from conftest import Host, needs_sandbox
from servers import Faults, serve
from support import RECONCILE, File, Package, exampleos
from test_signals import apply_until_the_script_sleeps

PACKAGES = [Package(f"many{i}", files=(File(f"/usr/share/many/{i}", f"{i}\n"),)) for i in range(6)]


def test_six_concurrent_adds_all_land(host: Host) -> None:
    host.publish(PACKAGES)
    host.write_origin([])
    argv = ["--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    procs = [
        subprocess.Popen(
            [RECONCILE, "add", p.name, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=exampleos.sysroot_env(),
        )
        for p in PACKAGES
    ]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    assert all(code == 0 for code, _ in results), results
    requested = tomllib.loads(host.origin.read_text())["packages"]["requested"]
    assert sorted(requested) == sorted(p.name for p in PACKAGES), requested


def test_an_edit_that_cannot_get_the_file_says_so_and_changes_nothing(host: Host) -> None:
    import fcntl

    host.publish(PACKAGES[:1])
    host.write_origin([])
    before = host.origin.read_text()
    with open(host.origin.parent / f".{host.origin.name}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = host.run(
            "add", PACKAGES[0].name, "--origin", host.origin, "--reposdir", host.reposdir, "--lock-timeout", "0.5"
        )
    assert result.code == 4, result.stderr
    assert f"Waiting for another reconcile to finish with the origin file {host.origin}" in result.stderr
    assert f"Another reconcile held the origin file {host.origin} for more than" in result.stderr
    assert host.origin.read_text() == before


def test_ten_concurrent_plans_on_a_fresh_cache_all_succeed(host: Host) -> None:
    """They race to write the repo metadata, the .solv caches and the header cache; every one must win."""
    host.publish(PACKAGES)
    host.write_origin([p.name for p in PACKAGES])
    argv = ["plan", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir, "--json"]
    procs = [
        subprocess.Popen(
            [RECONCILE, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=exampleos.sysroot_env(),
        )
        for _ in range(10)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _out, _err in results), [err for code, _out, err in results if code]
    assert len({out for _code, out, _err in results if '"added"' in out}) >= 1
    leftovers = [p for p in host.cachedir.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert not leftovers, leftovers


@needs_sandbox
def test_an_apply_that_waited_for_the_lock_plans_again_against_what_the_first_deployed(host: Host) -> None:
    """The second apply plans and fetches without the lock, then finds the deployment moved: it plans again
    (nothing to do) instead of stacking a second deployment or calling its plan stale."""
    pause = Package("pause", files=(File("/usr/share/pause/a", "a\n"),), scripts={"post": "exec sleep 3"})
    host.publish([pause])
    host.write_origin(["pause"])
    argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    first, _sleeper = apply_until_the_script_sleeps(host)
    second = subprocess.Popen(
        [*map(str, argv), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=exampleos.sysroot_env(),
    )
    try:
        _out1, err1 = first.communicate(timeout=120)
        out2, err2 = second.communicate(timeout=120)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()  # processes this test started, by their PIDs
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "Waiting for the lock" in err2 and "planning again" in err2, err2
    assert "Nothing to do" in out2, out2
    assert len(host.status()["deployments"]) == 2, "one new deployment, not two"


@pytest.mark.parametrize(
    ("slow", "prefix"), [("repomd.xml", ".fetch-"), (".rpm", ".headers-")], ids=["metadata", "header"]
)
def test_what_a_killed_plan_left_in_the_caches_goes_with_the_next_plan(host: Host, slow: str, prefix: str) -> None:
    """Killed while it fetched: its temporary directory (named by its pid) stays, and the next plan removes it."""
    repo = host.publish(PACKAGES[:1], examples=False)
    host.write_origin([PACKAGES[0].name])
    with serve(repo, Faults(trickle={slow: 50})) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        argv = ["plan", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
        proc = subprocess.Popen([RECONCILE, *map(str, argv)], stderr=subprocess.DEVNULL, env=exampleos.sysroot_env())
        try:
            deadline = time.monotonic() + 60
            left: list[Path] = []
            while not left and time.monotonic() < deadline:
                # The slow fetch's own directory: a quick one before it (metadata) may be gone by the kill.
                left = [p for p in host.cachedir.rglob(f"{prefix}{proc.pid}.*") if p.is_dir()]
                time.sleep(0.05)
            assert left, "the test needs a plan killed while it fetched"
            proc.kill()  # the process this test started, by its PID
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert all(p.exists() for p in left)
        server.faults.trickle.clear()
        assert host.run("plan").code == 0
    assert not any(p.exists() for p in left), left

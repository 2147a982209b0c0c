"""SIGTERM and SIGHUP (what systemd, `timeout` and a closed terminal send) stop reconcile as Ctrl-C does: a
message, the exit status 128+N, nothing changed, nothing mounted, and no script left running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Host, needs_sandbox
from support import RECONCILE, File, Package, exampleos

pytestmark = needs_sandbox

SLOW = Package(
    "slowpost", files=(File("/usr/share/slowpost/a", "a\n"),), scripts={"post": "echo started\nexec sleep 300"}
)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descendant(root: int, comm: str) -> int | None:
    """A process named `comm` below `root` (the scripts run in bubblewrap's own pid namespace)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != comm:
                continue
        except OSError:
            continue
        pid: int | None = int(entry.name)
        while pid not in (None, 0, 1):
            if pid == root:
                return int(entry.name)
            pid = _parent(pid)  # type: ignore[arg-type]
    return None


def apply_until_the_script_sleeps(host: Host) -> tuple[subprocess.Popen[str], int]:
    """An apply of the origin, started and waited for until a %post sleeps; (the apply, the sleep's pid)."""
    argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    proc = subprocess.Popen(
        [*map(str, argv), "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=exampleos.sysroot_env(),
    )
    deadline = time.monotonic() + 120
    sleeper = None
    while sleeper is None and time.monotonic() < deadline and proc.poll() is None:
        sleeper = _descendant(proc.pid, "sleep")
        time.sleep(0.05)
    if sleeper is None:
        proc.kill()
        raise AssertionError(f"the %post script never started: {proc.communicate()[1]}")
    return proc, sleeper


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_during_a_scriptlet_stops_the_apply_cleanly(host: Host, sig: signal.Signals) -> None:
    host.publish([SLOW])
    host.write_origin(["slowpost"])
    before = host.state()
    proc, sleeper = apply_until_the_script_sleeps(host)
    try:
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("Interrupted." if sig == signal.SIGINT else f"Stopped by {sig.name}.")
    assert not Path(f"/proc/{sleeper}").exists(), "the script ended with reconcile"
    assert not mounts_below(host.sysroot / "ostree" / "repo" / "tmp"), "the overlay is unmounted"
    assert host.state() == before, "no deployment, no ref, the origin as it was"
    leftovers = list((host.sysroot / "ostree" / "repo" / "tmp").glob("reconcile-scripts-*"))
    assert not leftovers, leftovers


def mounts_below(directory: Path) -> list[str]:
    """Mount points under `directory` in any mount namespace of this machine (not only our own)."""
    points = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines = (entry / "mountinfo").read_text().splitlines()
            except OSError:
                continue
            points.update(line.split(" ")[4] for line in lines if line.split(" ")[4].startswith(str(directory)))
    return sorted(points)


def test_a_killed_apply_leaves_no_mount_and_the_next_apply_removes_its_files(host: Host) -> None:
    """SIGKILL runs no clean-up: the kernel removes the overlay with the script's mount namespace, and the next
    apply removes the directories the killed one left."""
    host.publish([SLOW])
    host.write_origin(["slowpost"])
    before = host.state()
    tmp = host.sysroot / "ostree" / "repo" / "tmp"
    proc, sleeper = apply_until_the_script_sleeps(host)
    try:
        assert mounts_below(tmp), "the test needs a run killed while its overlay is mounted"
        proc.kill()
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{sleeper}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{sleeper}").exists(), "the script died with its parent"
        assert not mounts_below(tmp), "the overlay went with the script's mount namespace"
        assert [p for p in tmp.iterdir() if p.name.startswith("reconcile-scripts-")], "the test needs leftovers"
        assert host.state() == before
        host.write_origin([])
        host.apply_ok()
        assert not [p for p in tmp.iterdir() if p.name.startswith("reconcile-")], list(tmp.iterdir())
    finally:
        if proc.poll() is None:
            proc.kill()
        for point in mounts_below(tmp):  # never leave a mount behind in our own namespace, should one be there
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def test_a_killed_apply_takes_its_rpm_with_it(host: Host, tmp_path: Path) -> None:
    """SIGKILL runs no handler, so the kernel must end the children: an `rpm --justdb` (here a stand-in that
    takes its time) dies with reconcile instead of writing into a tree nobody will commit."""
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("rpm")
    (shim / "rpm").write_text(
        '#!/bin/sh\ncase "$*" in *--justdb*) exec python3 -c "import time; time.sleep(60)" "$@";; esac\n'
        f'exec {real} "$@"\n'
    )
    (shim / "rpm").chmod(0o755)
    host.publish([])
    host.write_origin(["hello"])
    argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
    env = {**exampleos.sysroot_env(), "PATH": f"{shim}:{os.environ['PATH']}"}
    proc = subprocess.Popen([*map(str, argv), "--yes"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        rpm = None
        while rpm is None and time.monotonic() < deadline and proc.poll() is None:
            rpm = next((pid for pid, cmd in _commands() if "--justdb" in cmd and str(host.sysroot) in cmd), None)
            time.sleep(0.05)
        assert rpm is not None, f"the apply never ran rpm --justdb: {proc.communicate(timeout=60)[1]}"
        proc.kill()
        proc.wait(timeout=60)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{rpm}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{rpm}").exists(), "rpm outlived the killed apply"
    finally:
        if proc.poll() is None:
            proc.kill()


def _commands() -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append(
                    (int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                )
            except OSError:
                continue
    return out

"""The shipped units (systemd-analyze verify) and the service's command under a real journald: exit status tells
changed from unchanged from failed, and the journal gets structured entries (plan digest, each scriptlet)."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Host, needs_sandbox
from support import RECONCILE, Dir, File, Package, exampleos

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "share" / "systemd"
SERVICE, TIMER = "reconcile-apply.service", "reconcile-apply.timer"
JOURNALD = Path("/lib/systemd/systemd-journald")

SCRIPTED = Package(
    "journaled",
    files=(Dir("/usr/share/journaled"), File("/usr/share/journaled/a", "a\n")),
    scripts={"post": "echo post > /usr/share/journaled/post-ran"},
)


def _verify(tmp_path: Path, units: Path) -> subprocess.CompletedProcess[str]:
    """verify in a root holding the distribution's units, ours, and `reconcile` where systemd looks for it."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for unit in (SERVICE, TIMER):
        shutil.copy(units / unit, root / "usr/lib/systemd/system" / unit)
    wrapper = root / "usr/bin/reconcile"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\nexec {RECONCILE} "$@"\n')
    wrapper.chmod(0o755)
    man = tmp_path / "man" / "man8"
    man.mkdir(parents=True)
    shutil.copy(ROOT / "share/man/reconcile.8", man)  # Documentation=man:reconcile(8) must resolve
    env = {**os.environ, "MANPATH": str(man.parent)}
    argv = ["systemd-analyze", "verify", f"--root={root}", SERVICE, TIMER]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    proc = _verify(tmp_path, UNITS)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The guard above can fail: verify only warns on a bad timer value, so its output must be empty too."""
    broken = tmp_path / "units"
    shutil.copytree(UNITS, broken)
    timer = broken / TIMER
    timer.write_text(timer.read_text().replace("OnBootSec=1h", "OnBootSec=an hour"))
    proc = _verify(tmp_path, broken)
    assert "OnBootSec" in proc.stderr or "an hour" in proc.stderr, proc.stderr


def _service() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / SERVICE)
    return parser


def test_the_timer_starts_the_service_and_changed_counts_as_success() -> None:
    service = _service()
    assert service["Service"]["Type"] == "oneshot"
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[:2] == ["reconcile", "apply"] and "--yes" in argv and "--detailed-exitcode" in argv
    assert service["Service"]["SuccessExitStatus"] == "2"  # 2 = a deployment was staged; other codes fail the unit
    assert service["Service"]["SyslogIdentifier"] == "reconcile"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(UNITS / TIMER)
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert timer.get("Timer", "Unit", fallback=SERVICE) == SERVICE  # a timer starts its namesake service


def _service_argv(host: Host) -> list[str]:
    """The service's ExecStart, aimed at the test sysroot."""
    argv = shlex.split(_service()["Service"]["ExecStart"])
    argv[0] = RECONCILE
    return [*argv, "--sysroot", str(host.sysroot), "--origin", str(host.origin), "--reposdir", str(host.reposdir)]


def _under_journald(tmp_path: Path, commands: list[list[str]]) -> tuple[list[int], list[dict]]:
    """Run each command as systemd runs a service (output to the journal, JOURNAL_STREAM naming that stream,
    identifier reconcile), under a real journald in a private mount namespace; its exit codes and entries."""
    tmp_path.mkdir()
    codes = tmp_path / "codes"
    runs = "".join(
        "rc=0; systemd-cat -t reconcile sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$@\"' "
        f"sh {shlex.join(argv)} || rc=$?; echo $rc >> {codes}\n"
        for argv in commands
    )
    script = tmp_path / "journald.sh"
    script.write_text(
        "set -e\nmount -t tmpfs tmpfs /run\nmkdir -p /run/systemd/journal\n"
        # journald needs the cgroup tree, which a chroot or container may not have mounted
        "mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup\n"
        f"{JOURNALD} & journald=$!\n"
        "for i in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.05; done\n"
        'kill -0 $journald || { echo "systemd-journald did not start" >&2; exit 1; }\n'
        f"{runs}"
        "journalctl --sync 2>/dev/null || sleep 0.5\n"
        f"journalctl -D /run/log/journal -o json --no-pager SYSLOG_IDENTIFIER=reconcile > {tmp_path / 'journal.json'}\n"
        "kill $journald; wait $journald || true\n"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", str(script)],
        capture_output=True,
        text=True,
        env=exampleos.sysroot_env(),
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = [json.loads(line) for line in (tmp_path / "journal.json").read_text().splitlines()]
    return [int(c) for c in codes.read_text().split()], entries


@needs_sandbox
@pytest.mark.skipif(not JOURNALD.exists(), reason="systemd-journald is not installed")
def test_the_service_command_under_journald(tmp_path: Path, host: Host) -> None:
    host.publish([SCRIPTED])
    host.write_origin(["journaled"])
    saved = tmp_path / "plan.json"
    assert host.run("plan", "-o", saved).code == 0
    apply_saved = [RECONCILE, "apply", str(saved), "--yes", "--detailed-exitcode", "--sysroot", str(host.sysroot)]
    apply_saved += ["--reposdir", str(host.reposdir)]

    codes, entries = _under_journald(tmp_path / "j", [apply_saved, _service_argv(host)])
    assert codes == [2, 0]  # changed, then nothing to do: both count as success (SuccessExitStatus=2)
    assert {e["SYSLOG_IDENTIFIER"] for e in entries} == {"reconcile"}
    assert any(e["_TRANSPORT"] == "stdout" for e in entries)  # the plain lines too, as systemd keeps them
    structured = [e for e in entries if e["_TRANSPORT"] == "journal"]

    (script,) = [e for e in structured if e.get("SCRIPT_TYPE") == "%post"]
    assert script["PKG"] == "journaled" and script["NEVRA"] == SCRIPTED.nevra
    assert int(script["EXEC_TIME_MS"]) >= 0 and script["MESSAGE"].startswith("Executed %post for journaled in ")

    plans = [e for e in structured if "HAS_CHANGES" in e]
    assert [(p["HAS_CHANGES"], p["SAVED_PLAN"]) for p in plans] == [("1", "1"), ("0", "0")]
    # A saved plan's digest is its file's sha256sum: `journalctl PLAN_DIGEST=$(sha256sum …)` finds its run.
    assert plans[0]["PLAN_DIGEST"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    assert plans[0]["LAYERED"] == SCRIPTED.nevra and plans[0]["ORIGIN"] == str(host.origin)
    results = [e for e in structured if "RESULT" in e]
    assert [r["RESULT"] for r in results] == ["changed", "unchanged"]
    default = host.default()
    assert results[0]["DEPLOYMENT"] == f"{default['checksum']}.{default['serial']}"
    assert results[0]["PLAN_DIGEST"] == plans[0]["PLAN_DIGEST"]
    assert len({e["MESSAGE_ID"] for e in structured}) == 3  # plan, script, result: one ID each

    host.write_origin(["no-such-package"])
    codes, entries = _under_journald(tmp_path / "k", [_service_argv(host)])
    assert codes[0] not in (0, 2), codes  # a failed unit
    (failed,) = [e for e in entries if e.get("PRIORITY") == "3" and e["_TRANSPORT"] == "journal"]
    assert "no-such-package" in failed["MESSAGE"] and failed["EXIT_STATUS"] == str(codes[0])


@pytest.mark.parametrize("ours", [True, False])
def test_the_journal_is_used_only_when_the_stream_is_ours(ours: bool) -> None:
    """JOURNAL_STREAM inherited from a parent whose journal stream is not our stderr/stdout: plain lines only."""
    code = "from reconcile.journal import stream_is_ours; print(stream_is_ours())"
    set_it = "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)" if ours else "JOURNAL_STREAM=$(stat -L -c %d:%i /)"
    shell = f'export {set_it}; exec "$0" -c "$1"'
    out = subprocess.run(["sh", "-c", shell, sys.executable, code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(ours)

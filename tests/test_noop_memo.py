"""The no-op `plan` answered from its record (reconcile/noop_memo.py): the same bytes as a real plan, nothing heavy
imported, and never used once anything the plan was made from has changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Host
from support import RECONCILE, Package, exampleos, ostree

from reconcile import noop_memo

HEAVY = {"pydantic", "gi", "solv", "networkx", "tomlkit", "librepo", "rpm", "argparse"}
OURS = ("reconcile.cli", "reconcile.planner", "reconcile.ostree")


def _argv(host: Host) -> list[str]:
    return ["plan", "--sysroot", str(host.sysroot), "--origin", str(host.origin), "--reposdir", str(host.reposdir)]


def plan(host: Host, *extra: str) -> tuple[int, str, list[str]]:
    """`reconcile plan --json`: its exit code, its output without the timestamp, and the modules it imported."""
    argv = [sys.executable, "-X", "importtime", RECONCILE, *_argv(host), "--json", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=exampleos.sysroot_env(), check=False, timeout=600)
    imported = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", proc.stderr, re.M)
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    imported = [m.strip() for m in imported]
    assert planned_for_real(imported) or not errors, errors  # an answer from the record says nothing else
    return proc.returncode, re.sub(r'"created": "[^"]*"', '"created": ""', proc.stdout), imported


def planned_for_real(imported: list[str]) -> bool:
    return any(m.split(".")[0] in HEAVY or m.startswith(OURS) for m in imported)


def assert_same_as_real(host: Host, *extra: str) -> tuple[int, str, list[str]]:
    """The plan as the memo may answer it, against a real plan (--debug is never answered from a record)."""
    code, out, imported = plan(host, *extra)
    real_code, real_out, real_imported = plan(host, *extra, "--debug")
    assert planned_for_real(real_imported)
    assert (code, out) == (real_code, real_out)
    return code, out, imported


@pytest.fixture
def converged(host: Host) -> Host:
    host.publish([Package("tiny")])
    host.write_origin(["tiny"])
    host.apply_ok()
    return host


def test_a_second_noop_plan_is_answered_without_planning(converged: Host) -> None:
    host = converged
    code, first, imported = plan(host)
    assert code == 0 and planned_for_real(imported)
    assert json.loads(first)["has_changes"] is False
    records = list((host.cachedir / noop_memo.RECORD_DIR).glob("*.json"))
    assert len(records) == 1
    code, second, imported = plan(host)
    assert (code, second) == (0, first)
    assert not planned_for_real(imported), imported
    # --detailed-exitcode and the text format are commands of their own, answered the same way
    for extra in (["--detailed-exitcode"], ["--format", "markdown"]):
        assert_same_as_real(host, *extra)
        assert not planned_for_real(plan(host, *extra)[2])


def test_every_input_of_the_plan_is_checked(converged: Host) -> None:
    host = converged
    assert_same_as_real(host)
    assert not planned_for_real(plan(host)[2])

    host.write_origin(["tiny"], extra="\n# a comment changes the file, not the plan\n")
    _code, out, imported = assert_same_as_real(host)
    assert planned_for_real(imported) and json.loads(out)["has_changes"] is False

    fragments = host.origin.parent / "origin.d"
    fragments.mkdir()
    (fragments / "10-more.toml").write_text('[packages]\nrequested = ["hello"]\n')
    _code, out, imported = assert_same_as_real(host)
    assert planned_for_real(imported) and json.loads(out)["has_changes"] is True
    (fragments / "10-more.toml").unlink()
    assert json.loads(assert_same_as_real(host)[1])["has_changes"] is False

    newer = host.add_base("newer", [Package("base-extra")])
    repo = host.sysroot / "ostree" / "repo"
    old_base = ostree(f"--repo={repo}", "rev-parse", exampleos.BASE_REF).strip()
    ostree(f"--repo={repo}", "refs", "--force", f"--create={exampleos.BASE_REF}", newer.commit)
    _code, out, imported = assert_same_as_real(host)
    assert planned_for_real(imported) and json.loads(out)["base"]["direction"] != "same"
    ostree(f"--repo={repo}", "refs", "--force", f"--create={exampleos.BASE_REF}", old_base)
    assert json.loads(assert_same_as_real(host)[1])["has_changes"] is False

    host.write_origin(["tiny"])
    plan(host)  # recorded for this very file
    assert not planned_for_real(plan(host)[2])
    host.write_origin([])  # a new default deployment (the origin file asks the same again), then the old one back
    host.apply_ok()
    host.write_origin(["tiny"])
    assert json.loads(assert_same_as_real(host)[1])["has_changes"] is True
    assert host.run("rollback").code == 0
    _code, out, imported = assert_same_as_real(host)
    assert planned_for_real(imported) and json.loads(out)["has_changes"] is False
    assert not planned_for_real(plan(host)[2])


def test_a_record_anyone_could_have_written_is_not_read(converged: Host) -> None:
    host = converged
    plan(host)
    (record,) = (host.cachedir / noop_memo.RECORD_DIR).glob("*.json")
    record.chmod(0o666)
    assert planned_for_real(plan(host)[2])


def test_plans_that_are_not_noops_leave_no_record(host: Host) -> None:
    host.publish([Package("tiny")])
    host.write_origin(["tiny"])
    code, _out, imported = plan(host, "--detailed-exitcode")
    assert code == 2 and planned_for_real(imported)
    code, _out, imported = plan(host, "--detailed-exitcode")
    assert code == 2 and planned_for_real(imported)
    assert not list((host.cachedir / noop_memo.RECORD_DIR).glob("*.json"))


def test_options_it_does_not_know_mean_a_real_plan() -> None:
    assert noop_memo.options(["plan", "--json", "--sysroot", "/x"]) == {"--json": "", "--sysroot": "/x"}
    assert noop_memo.options(["plan", "--origin=/o"]) == {"--origin": "/o"}
    for argv in (["plan", "--update"], ["plan", "--out", "f"], ["plan", "--debug"], ["apply"], ["plan", "--sys", "/"]):
        assert noop_memo.options(argv) is None, argv


def test_editing_reconcile_itself_is_an_input(tmp_path: Path) -> None:
    code = tmp_path / "pkg"
    (code / "sub").mkdir(parents=True)
    (code / "a.py").write_text("")
    (code / "sub" / "b.py").write_text("")
    before = noop_memo._content("code", str(code))
    stat = (code / "sub" / "b.py").stat()
    os.utime(code / "sub" / "b.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert noop_memo._content("code", str(code)) != before

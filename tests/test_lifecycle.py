"""Deployments over their life, end to end on real sysroots: rollback (and --update-origin), cleanup of the
rollback, the pending deployment and the cache, pinned deployments, and how apply writes a deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Host
from support import ostree, reconcile

from reconcile.errors import OstreeError
from reconcile.ostree import Sysroot

COMMENTED = """# the host's desired state
[origin]
baserefspec = "example/base"   # the base

[packages]
requested = [
  "hello",   # greeting
{extra}]
"""


def ids(host: Host) -> list[str]:
    return [d["id"] for d in host.status()["deployments"]]


def lifecycle(host: Host, command: str, *args: str | Path) -> tuple[int, dict, str]:
    result = reconcile(command, "--sysroot", host.sysroot, "--json", *args)
    return result.code, (result.json() if result.stdout.strip() else {}), result.stderr


def refs(host: Host, prefix: str = "reconcile/pkg") -> set[str]:
    listed = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "refs", "--list", prefix)
    return {f"{prefix}/{r}" for r in listed.split()}


def cache_listing(host: Host) -> list[str]:
    return sorted(str(p.relative_to(host.cachedir)) for p in host.cachedir.rglob("*"))


def two_applies(host: Host, first: list[str], second: list[str]) -> tuple[dict, dict]:
    """A default (`second`) with a rollback (`first`) behind it."""
    host.publish([])
    host.write_origin(first)
    host.apply_ok()
    older = host.default()
    host.write_origin(second)
    host.apply_ok()
    newer = host.default()
    assert ids(host) == [newer["id"], older["id"]]
    return newer, older


def test_rollback_swaps_and_says_the_origin_still_asks_for_the_other_state(host: Host) -> None:
    newer, older = two_applies(host, ["hello"], ["hello", "frob"])

    code, doc, err = lifecycle(host, "rollback", "--origin", host.origin)
    assert code == 0, err
    assert doc["default"] == older["id"] and doc["previous_default"] == newer["id"]
    assert doc["boot_order"] == [older["id"], newer["id"]] == ids(host)
    assert doc["origin_matches"] is False and doc["origin_updated"] is False
    assert "still asks for the other state" in doc["message"]
    status = host.status()["deployments"]
    assert status[0]["requested-packages"] == ["hello"] and status[1]["reconcile"]["rollback"] is True
    assert "(rollback)" in host.run("status").stdout

    plan = host.run("plan", "--json")
    assert plan.code == 0 and plan.json()["has_changes"] is True, "the origin file still asks for frob"

    # a second rollback undoes the first, as rpm-ostree's does
    code, doc, err = lifecycle(host, "rollback")
    assert code == 0, err
    assert ids(host) == [newer["id"], older["id"]] and doc["origin_matches"] is None


def test_rollback_update_origin_makes_the_next_plan_a_no_op_and_keeps_comments(host: Host) -> None:
    host.publish([])
    host.origin.write_text(COMMENTED.format(extra=""))
    host.apply_ok()
    older = host.default()
    host.origin.write_text(COMMENTED.format(extra='  "frob",   # the frobnicator\n'))
    host.apply_ok()

    code, doc, err = lifecycle(host, "rollback", "--origin", host.origin, "--update-origin")
    assert code == 0, err
    assert doc["default"] == older["id"] and doc["origin_updated"] is True
    text = host.origin.read_text()
    assert "# the host's desired state" in text and "# the base" in text and "# greeting" in text
    assert "frob" not in text
    assert text == COMMENTED.format(extra="")

    plan = host.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.stdout + plan.stderr
    before = host.state()
    again = host.apply_ok("--detailed-exitcode")
    assert "Nothing to do" in again.stdout
    assert host.state() == before, "apply does not redo what was rolled back"


def test_rollback_without_a_rollback_deployment_fails_and_changes_nothing(host: Host) -> None:
    host.write_origin([])
    before = host.state()
    code, doc, err = lifecycle(host, "rollback", "--origin", host.origin, "--update-origin")
    assert code == 1
    assert "has no rollback deployment" in err and "Traceback" not in err
    assert doc["error"]["exit_code"] == 1
    assert host.state() == before


def test_rollback_update_origin_with_an_invalid_origin_file_changes_nothing(host: Host) -> None:
    two_applies(host, ["hello"], ["hello", "frob"])
    host.origin.write_text('[origin]\nbaserefspec = "example/base"\n\n[packages]\nrequested = [""]\n')
    before = host.state()
    code, doc, err = lifecycle(host, "rollback", "--origin", host.origin, "--update-origin")
    assert code == 65, err
    assert "origin.toml:5" in err and doc["error"]["exit_code"] == 65
    assert host.state() == before

    code, doc, err = lifecycle(host, "rollback", "--origin", host.origin)
    assert code == 0, err
    assert doc["origin_matches"] is None and "cannot be compared" in doc["message"]


def test_cleanup_rollback_removes_the_rollback_and_only_what_it_alone_used(host: Host) -> None:
    newer, older = two_applies(host, ["frob"], ["hello"])
    hello_refs = {r for r in refs(host) if "/hello" in r}
    assert hello_refs and any("/frob" in r for r in refs(host))
    cache = cache_listing(host)

    code, doc, err = lifecycle(host, "cleanup", "--rollback")
    assert code == 0, err
    assert doc["removed_deployments"] == [older["id"]] and ids(host) == [newer["id"]]
    assert refs(host) == hello_refs, "the package-cache refs only the rollback layered are dropped"
    assert doc["removed_package_refs"] and all("frob" in r for r in doc["removed_package_refs"])
    assert doc["objects_pruned"] > 0 and doc["removed_cache"] == []
    assert cache_listing(host) == cache, "--rollback leaves the cache alone"

    code, doc, err = lifecycle(host, "cleanup", "--rollback")
    assert code == 0 and doc["changed"] is False and doc["removed_deployments"] == []


def test_cleanup_pending_removes_the_default_of_a_sysroot_that_is_not_booted(host: Host) -> None:
    newer, older = two_applies(host, ["frob"], ["hello"])
    cache = cache_listing(host)

    code, doc, err = lifecycle(host, "cleanup", "--pending")
    assert code == 0, err
    assert doc["removed_deployments"] == [newer["id"]] and ids(host) == [older["id"]]
    assert all("/hello" not in r for r in refs(host)) and any("/frob" in r for r in refs(host))
    assert cache_listing(host) == cache

    before = host.state()
    code, _doc, err = lifecycle(host, "cleanup", "--pending")
    assert code == 0 and host.state() == before, "a single deployment is nobody's pending one"


def test_cleanup_of_both_sides_in_a_sysroot_that_is_not_booted_is_refused(host: Host) -> None:
    two_applies(host, ["frob"], ["hello"])
    before = host.state()
    code, _doc, err = lifecycle(host, "cleanup", "--pending", "--rollback")
    assert code == 1 and "no deployment at all" in err
    assert host.state() == before


def test_cleanup_cache_removes_cached_data_and_nothing_else(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    host.write_origin(["hello", "frob"])
    host.apply_ok("--download-only")
    assert host.downloaded(), "download-only leaves packages in the cache"
    assert (host.cachedir / "repos").is_dir() and list(host.cachedir.glob("base-*.solv"))
    accepted = host.cachedir / "keys" / "accepted" / "0EFAF06F3FF5A4DB"  # which keys an apply accepted: kept
    accepted.parent.mkdir(parents=True)
    accepted.touch()
    before = host.state()

    code, doc, err = lifecycle(host, "cleanup", "--cache")
    assert code == 0, err
    assert doc["removed_deployments"] == [] and doc["removed_cache"] and doc["bytes_freed"] > 0
    assert host.state() == before, "no deployment, origin or ref changed"
    assert not host.downloaded()
    left = cache_listing(host)
    files = [p for p in left if p.startswith(("repos/", "headers/")) and not (host.cachedir / p).is_dir()]
    assert all(p.endswith("/.lock") for p in files), left  # each repo keeps only its metadata lock
    assert not list(host.cachedir.glob("base-*.solv")) and accepted.exists()

    plan = host.run("plan", "--json")
    assert plan.code == 0 and plan.json()["has_changes"], "plans fetch what --cache removed again"


def test_cleanup_without_a_flag_says_what_it_could_remove(host: Host) -> None:
    newer, older = two_applies(host, ["frob"], ["hello"])
    before = host.state()
    code, doc, err = lifecycle(host, "cleanup")
    assert code == 0, err
    assert doc["changed"] is False and doc["asked"] == []
    assert doc["removable"]["rollback"] == [older["id"]] and doc["removable"]["pending"] == [newer["id"]]
    assert host.state() == before
    text = reconcile("cleanup", "--sysroot", host.sysroot)
    assert text.code == 0 and "--rollback would remove" in text.stdout


def test_a_pinned_deployment_survives_cleanup_and_applies(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    base_id = host.status()["deployments"][1]["id"]
    ostree("admin", f"--sysroot={host.sysroot}", "pin", "1")
    status = host.status()["deployments"]
    assert [d["pinned"] for d in status] == [False, True]

    for requested in (["frob"], ["hello", "frob"], []):
        host.write_origin(requested)
        host.apply_ok()
        assert base_id in ids(host), f"apply removed the pinned deployment ({requested})"
    assert len(ids(host)) == 3, "new + merge + the pinned one"

    code, doc, err = lifecycle(host, "cleanup", "--rollback")
    assert code == 0, err
    assert doc["pinned_kept"] == [base_id] and base_id not in doc["removed_deployments"]
    assert ids(host)[-1] == base_id and len(ids(host)) == 2
    pinned = [d for d in host.status()["deployments"] if d["pinned"]]
    assert [d["id"] for d in pinned] == [base_id]
    assert "pinned" in host.run("status").stdout


def test_apply_reports_that_it_wrote_the_deployment_directly_when_not_booted(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    result = host.apply_ok("--json")
    outcome = result.json()["result"]
    assert outcome["deploy_method"] == "written"
    assert "written directly: the sysroot is not booted" in outcome["message"]
    assert all(d["staged"] is False for d in host.status()["deployments"])
    text = host.run("status").stdout
    assert "staged" not in text


def test_libostree_refuses_to_stage_in_a_sysroot_that_is_not_booted(host: Host) -> None:
    """Why apply writes directly there: staging needs a booted deployment (the precondition, checked live)."""
    sysroot = Sysroot(host.sysroot)
    sysroot.load()
    assert sysroot.booted() is None
    before = host.state()
    with pytest.raises(OstreeError, match="Not currently booted"):
        sysroot.stage("example", host.base.commit, None, sysroot.deployments()[0])
    assert host.state() == before

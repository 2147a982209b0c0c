"""`apply --unchanged-exit-77`: 0 when something changed, 77 when nothing did, as `rpm-ostree install
--unchanged-exit-77` (the contract community.general.rpm_ostree_pkg relies on); errors keep their own codes."""

from __future__ import annotations

from pathlib import Path

from conftest import Host

FLAG = "--unchanged-exit-77"


def test_a_change_exits_0_and_the_same_apply_again_exits_77(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    before = host.state()
    download = host.run("apply", "--download-only", FLAG)  # fetches, deploys nothing: rpm-ostree says 77 too
    assert download.code == 77 and "nothing was deployed" in download.stdout, download.stderr
    assert host.state() == before
    first = host.run("apply", FLAG)
    assert first.code == 0, first.stderr
    assert "hello-1.2-1.noarch" in host.default()["reconcile"]["layered_packages"]
    state = host.state()
    second = host.run("apply", FLAG)
    assert second.code == 77, second.stderr
    assert "Nothing to do" in second.stdout
    assert host.state() == state


def test_an_origin_rewrite_or_a_kernel_argument_change_is_a_change(host: Host) -> None:
    host.publish([])
    host.write_origin(["example-shell"])  # inactive (the base has it): only the deployment's origin is rewritten
    deployments = host.state()["deployments"]
    rewrite = host.run("apply", FLAG)
    assert rewrite.code == 0 and "no new deployment" in rewrite.stdout, rewrite.stderr
    assert host.state()["deployments"] == deployments
    host.write_origin(["example-shell"], extra='\n[kargs]\nappend = ["quiet"]\n')
    kargs = host.run("apply", FLAG)
    assert kargs.code == 0, kargs.stderr
    assert host.default()["reconcile"]["kernel_args"][-1] == "quiet"
    assert host.run("apply", FLAG).code == 77


def test_a_saved_plan_exits_0_when_applied_and_77_when_it_had_nothing_to_do(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    plan = tmp_path / "plan.json"
    assert host.run("plan", "-o", plan).code == 0
    applied = host.run("apply", plan, FLAG)
    assert applied.code == 0, applied.stderr
    assert host.run("plan", "-o", plan).code == 0
    unchanged = host.run("apply", plan, FLAG, "--json")
    assert unchanged.code == 77, unchanged.stderr
    assert unchanged.json()["result"]["changed"] is False


def test_errors_keep_their_own_exit_codes(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    plan = tmp_path / "plan.json"
    assert host.run("plan", "-o", plan).code == 0
    host.apply_ok()
    assert host.run("apply", plan, FLAG).code == 3, "a stale plan stays exit 3"
    host.write_origin(["no-such-package"])
    assert host.run("apply", FLAG).code == 1, "a plan with errors stays exit 1"
    host.origin.write_text("[origin]\n")
    assert host.run("apply", FLAG).code == 65, "an invalid origin file stays exit 65"


def test_it_cannot_be_combined_with_detailed_exitcode(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    before = host.state()
    both = host.run("apply", FLAG, "--detailed-exitcode")
    assert both.code == 64 and "--detailed-exitcode" in both.stderr and FLAG in both.stderr, both.stderr
    assert host.state() == before

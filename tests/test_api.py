"""The Python API: plan, apply and status return the typed documents the CLI prints."""

from __future__ import annotations

from conftest import Host

from reconcile import api


def test_plan_apply_and_status_through_the_api(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    plan = api.plan(host.sysroot, host.origin, reposdir=host.reposdir)
    assert isinstance(plan, api.Plan) and plan.has_changes
    assert {e.name for e in plan.resolution.added} == {"hello", "hello-data"}

    before = host.state()
    declined = api.apply(host.sysroot, api.ApplyRequest(origin=host.origin, reposdir=host.reposdir), lambda _: False)
    assert declined.aborted and not declined.result.changed
    assert host.state() == before, "a declined review changes nothing"

    seen: list[api.Plan] = []
    report = api.apply(
        host.sysroot, api.ApplyRequest(origin=host.origin, reposdir=host.reposdir), lambda p: seen.append(p) or True
    )
    assert report.result.changed and report.result.deployment and len(seen) == 1
    assert [t.step for t in report.result.timings if t.step == "Deploying"] == ["Deploying"]

    status = api.status(host.sysroot)
    assert status.format_version == "2.0" and len(status.deployments) == 2
    assert status.deployments[0].reconcile.layered_packages == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]
    assert status.deployments[0].packages == ["hello"]
    assert host.status() == status.model_dump(mode="json"), "status --json prints the same document"

    again = api.apply(host.sysroot, api.ApplyRequest(origin=host.origin, reposdir=host.reposdir))
    assert not again.result.changed and again.result.deployment is None

"""End to end through the CLI on real sysroots: add, remove, base change, no-op, inactive, http repos."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import ComposedBase, Host, base_checksum, compose_base
from servers import serve
from support import File, Package, Symlink, exampleos, ostree, rpm_query


def nevras(dep: dict) -> set[str]:
    return set(dep["reconcile"]["layered_packages"])


def rpm_qa(tree: Path) -> set[str]:
    return set(rpm_query(tree, "-qa", "--qf", "%{NEVRA}\\n").split())


def test_add_layers_the_closure_and_deploys_it(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello", "frob"])

    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["has_changes"] is True
    added = {e["nevra"]: e for e in doc["resolution"]["added"]}
    assert set(added) == {
        "hello-1.2-1.noarch",
        "hello-data-1.2-1.noarch",
        "frob-3.0-2." + os.uname().machine,
        "frob-data-2.1-1.noarch",
        "libfrob-2.4-1." + os.uname().machine,
    }
    assert added["hello-1.2-1.noarch"]["reason"] == "requested"
    assert added["hello-data-1.2-1.noarch"]["reason"] == "dependency"
    assert added["hello-data-1.2-1.noarch"]["why"] == ["hello", "hello-data"]
    assert all(e["checksum"].startswith("sha256:") and e["repo"] == "test" for e in added.values())

    before = host.status()["deployments"]
    result = host.apply_ok()
    assert "Deployed" in result.stdout
    after = host.status()["deployments"]
    assert len(after) == 2
    new = after[0]
    assert base_checksum(new) == host.base.commit == before[0]["checksum"]
    assert new["checksum"] != host.base.commit
    assert new["requested-packages"] == ["frob", "hello"]
    assert nevras(new) == set(added)
    assert after[1]["checksum"] == before[0]["checksum"], "the previous deployment stays as the rollback"

    tree = host.deployment_path(new)
    assert (tree / "usr/bin/hello").read_text().startswith("#!/bin/sh")
    assert (tree / "usr/etc/hello.conf").exists(), "/etc content is relocated to /usr/etc"
    assert (tree / "etc/hello.conf").exists(), "and ostree's /etc merge brings it to /etc"
    assert rpm_qa(tree) == set(added) | {
        p.name.removesuffix(".rpm") for p in host.example_rpms if p.name.startswith("example-")
    }
    origin = next(tree.parent.glob(f"{new['checksum']}.{new['serial']}.origin")).read_text()
    assert "baserefspec=example/base" in origin
    assert "requested=frob;hello;" in origin


def test_metadata_of_the_layered_commit(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    new = host.default()
    repo = host.sysroot / "ostree/repo"
    show = ostree(f"--repo={repo}", "show", "--print-metadata-key=reconcile.layered.packages", new["checksum"])
    assert "hello-data" in show and "'1.2'" in show
    parent = ostree(f"--repo={repo}", "rev-parse", f"{new['checksum']}^").strip()
    assert parent == host.base.commit
    digest = ostree(f"--repo={repo}", "show", "--print-metadata-key=reconcile.state-digest", new["checksum"])
    assert len(digest.strip().strip("'")) == 64


def test_second_apply_is_a_no_op(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    state = host.state()
    objects = sorted(p.name for p in (host.sysroot / "ostree/repo/objects").rglob("*"))
    again = host.run("apply", "--detailed-exitcode")
    assert again.code == 0, again.stderr
    assert again.stdout.strip() == "Nothing to do: the deployment already matches the origin."
    assert host.state() == state
    assert sorted(p.name for p in (host.sysroot / "ostree/repo/objects").rglob("*")) == objects, "no new commit"
    plan = host.run("plan", "--detailed-exitcode")
    assert plan.code == 0
    assert plan.stdout.strip() == "No changes: the deployment already matches the origin."


def test_removing_a_request_rebuilds_from_the_base(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello", "frob"])
    host.apply_ok()
    host.write_origin(["hello"])
    plan = host.run("plan", "--json").json()
    removed = {e["name"] for e in plan["resolution"]["removed"]}
    assert removed == {"frob", "frob-data", "libfrob"}
    assert [c["address"] for c in plan["changes"]] == ["package/frob"]
    assert plan["changes"][0]["actions"] == ["delete"]

    host.apply_ok()
    new = host.default()
    assert nevras(new) == {"hello-1.2-1.noarch", "hello-data-1.2-1.noarch"}
    assert base_checksum(new) == host.base.commit
    tree = host.deployment_path(new)
    assert not (tree / "usr/bin/frob").exists()
    assert not (tree / "usr/lib/tmpfiles.d/reconcile-pkg-frob.conf").exists()
    assert (tree / "usr/bin/hello").exists()
    assert "frob-3.0-2." + os.uname().machine not in rpm_qa(tree)
    refs = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "refs", "--list", "reconcile/pkg")
    assert "reconcile/pkg/frob/" in refs, "the rollback deployment still layers frob: its cache ref stays"

    host.write_origin([])
    host.apply_ok()
    assert host.default()["checksum"] == host.base.commit, "nothing layered: the base itself is deployed"
    refs = ostree(f"--repo={host.sysroot / 'ostree/repo'}", "refs", "--list", "reconcile/pkg").split()
    assert sorted(refs) == ["reconcile/pkg/hello-data/1.2-1.noarch", "reconcile/pkg/hello/1.2-1.noarch"]


def test_base_change(host: Host, session_dir: Path, example_rpms: list[Path]) -> None:
    # A newer base: example-libs 2.2 and hello-data folded into the base.
    libs = host.rpms.build(
        Package(
            "example-libs",
            version="2.2",
            arch="native",
            provides=("libexample.so.1()(64bit)",),
            files=(
                File("/usr/lib64/libexample.so.1.2.2", "libexample 2.2\n", mode=0o755),
                Symlink("/usr/lib64/libexample.so.1", "libexample.so.1.2.2"),
            ),
        )
    )
    repo = exampleos.make_repo([p for p in example_rpms if "example-libs" not in p.name] + [libs], host.root / "b2")
    reposdir = host.root / "b2.repos.d"
    exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
    base2: ComposedBase = compose_base(
        host.root / "compose2", "example/base2", reposdir, [*exampleos.BASE_PACKAGES, "hello-data"]
    )
    exampleos.pull_base(host.sysroot, base2.repo, base2.ref)

    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    assert nevras(host.default()) == {"hello-1.2-1.noarch", "hello-data-1.2-1.noarch"}

    host.write_origin(["hello"], base="example/base2")
    plan = host.run("plan", "--json").json()
    base_change = [c for c in plan["changes"] if c["address"] == "base"]
    assert base_change and base_change[0]["actions"] == ["update"]
    assert [e["name"] for e in plan["resolution"]["removed"]] == ["hello-data"], "now provided by the new base"
    host.apply_ok()
    new = host.default()
    assert base_checksum(new) == base2.commit
    assert nevras(new) == {"hello-1.2-1.noarch"}
    tree = host.deployment_path(new)
    assert (tree / "usr/lib64/libexample.so.1.2.2").exists()
    assert "example-libs-2.2-1." + os.uname().machine in rpm_qa(tree)


def test_inactive_request_is_reported_not_an_error(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello", "example-libs"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["resolution"]["inactive"] == [
        {"spec": "example-libs", "provided_by": "example-libs-2.1-1." + os.uname().machine}
    ]
    assert "example-libs" not in {e["name"] for e in doc["resolution"]["added"]}
    host.apply_ok()
    dep = host.default()
    assert dep["reconcile"]["inactive_requests"] == ["example-libs"]
    assert dep["requested-packages"] == ["example-libs", "hello"]
    text = host.run("status").stdout
    assert "Inactive:  example-libs" in text


def test_only_inactive_requests_update_the_origin_without_a_new_deployment(host: Host) -> None:
    host.publish([])
    host.write_origin(["example-shell"])
    deployments = host.state()["deployments"]
    result = host.run("apply", "--detailed-exitcode")
    assert result.code == 2, result.stderr
    assert "no new deployment" in result.stdout
    assert host.state()["deployments"] == deployments
    assert host.default()["reconcile"]["inactive_requests"] == ["example-shell"]
    assert host.run("apply", "--detailed-exitcode").code == 0


def test_http_repo(host: Host) -> None:
    host.publish([])
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        host.write_origin(["frob"])
        host.apply_ok()
    assert "frob-3.0-2." + os.uname().machine in nevras(host.default())


def test_plan_detailed_exitcode(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    assert host.run("plan", "--detailed-exitcode").code == 2
    assert host.run("plan").code == 0
    applied = host.run("apply", "--detailed-exitcode")
    assert applied.code == 2, applied.stderr


def test_status_lists_deployments_in_boot_order(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    doc = host.status()
    first, second = doc["deployments"]
    assert first["reconcile"]["default"] and not second["reconcile"]["default"]
    for key in ("checksum", "base-checksum", "requested-packages", "packages", "base-commit-meta"):
        assert key in first
    assert {"layered_packages", "inactive_requests"} <= set(first["reconcile"])
    assert second["reconcile"]["layered_packages"] == [] and "base-checksum" not in second


def test_pending_deployment_is_what_plans_build_on(host: Host) -> None:
    """The default deployment (index 0) is the reference, even when an older one exists."""
    host.publish([])
    host.write_origin(["hello"])
    host.apply_ok()
    host.write_origin(["hello", "frob"])
    plan = host.run("plan", "--json").json()
    assert plan["prior"]["layered"] == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]
    assert {e["name"] for e in plan["resolution"]["added"]} == {"frob", "frob-data", "libfrob"}


def test_several_stateroots_need_a_choice(host: Host) -> None:
    ostree("admin", f"--sysroot={host.sysroot}", "os-init", "other")
    ostree("admin", f"--sysroot={host.sysroot}", "deploy", "--os=other", "--karg=root=LABEL=x", exampleos.BASE_REF)
    host.publish([])
    host.write_origin(["hello"])
    result = host.run("plan")
    assert result.code == 64, result.stderr
    assert "--stateroot" in result.stderr
    plan = host.run("plan", "--stateroot", "example", "--json")
    assert plan.code == 0, plan.stderr
    assert plan.json()["prior"]["stateroot"] == "example"

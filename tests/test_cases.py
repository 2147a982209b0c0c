"""Resolution scenarios as data: each `tests/cases/<name>/` holds `case.toml` (the packages to build and the
steps to run on a fresh host) and `expected.json` (what the last step's plan must say).

case.toml:
    [[package]]             # built with rpmbuild; keys are those of support.Package ("native" arch allowed)
    name = "a"; version = "1.0"; requires = ["b >= 2"]   # referred to as NAME-VERSION, or by `id`
    [base.alt]              # optional: another base, composed from the example base plus `add` packages
    add = ["example-libs-2.2"]
    [[step]]                # run in order; every step but the last must succeed
    publish = ["a-1.0"]     # NAME-VERSION of the packages above in the repo (default: all of them)
    requested = ["a"]
    command = "apply"       # or "plan"
    args = ["--update"]
    base = "alt"            # optional: the base ref of this step
    options = "recommends = false"
    origin_extra = "[overrides]\nremove = [...]"   # optional raw TOML appended to the origin

expected.json compares a projection of the plan (see `project`); "$ARCH" stands for the machine's arch.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import Host, compose_base
from support import Package, exampleos

CASES = Path(__file__).parent / "cases"
ARCH = os.uname().machine


def _package(spec: dict[str, Any]) -> Package:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "id"}
    return Package(**fields)


def _key(spec: dict[str, Any]) -> str:
    return spec.get("id") or f"{spec['name']}-{spec.get('version', '1.0')}"


def project(plan: dict[str, Any]) -> dict[str, Any]:
    """The parts of a plan a case pins down: request changes, the RPM diff with reasons, checks."""
    r = plan["resolution"]
    return {
        "exit_code": 0 if plan["applyable"] else 1,
        "has_changes": plan["has_changes"],
        "changes": [[c["address"], *c["actions"]] for c in plan["changes"]],
        "added": [[e["nevra"], e["reason"], e["why"]] for e in r["added"]],
        "removed": [e["nevra"] for e in r["removed"]],
        "upgraded": [[e["before"], e["after"]] for e in r["upgraded"]],
        "downgraded": [[e["before"], e["after"]] for e in r["downgraded"]],
        "inactive": [[i["spec"], i["provided_by"]] for i in r["inactive"]],
        "weak": sorted(e["name"] for e in r["added"] if e["weak"]),
        "checks": [[c["kind"], c["package"]] for c in plan["checks"]],
    }


def _load_expected(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text().replace("$ARCH", ARCH))


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if (p / "case.toml").exists()))
def test_case(name: str, host: Host) -> None:
    case = tomllib.loads((CASES / name / "case.toml").read_text())
    expected = _load_expected(CASES / name / "expected.json")
    packages = {_key(p): _package(p) for p in case.get("package", [])}
    for alias, spec in case.get("base", {}).items():
        extra = [host.rpms.build(packages[k]) for k in spec["add"]]
        replaced = {packages[k].name for k in spec["add"]}
        rpms = [p for p in host.example_rpms if p.name.rsplit("-", 2)[0] not in replaced] + extra
        repo = exampleos.make_repo(rpms, host.root / f"base-{alias}")
        reposdir = host.root / f"base-{alias}.repos.d"
        exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
        extra_names = [packages[k].name for k in spec["add"] if packages[k].name not in exampleos.BASE_PACKAGES]
        composed = compose_base(
            host.root / f"compose-{alias}", f"example/{alias}", reposdir, exampleos.BASE_PACKAGES + extra_names
        )
        exampleos.pull_base(host.sysroot, composed.repo, composed.ref)

    steps = case["step"]
    for i, step in enumerate(steps):
        host.publish([packages[k] for k in step.get("publish", packages)])
        base = f"example/{step['base']}" if "base" in step else exampleos.BASE_REF
        extra = f"\n[options]\n{step['options']}\n" if "options" in step else ""
        extra += step.get("origin_extra", "")
        host.write_origin(step.get("requested", []), base=base, extra=extra)
        command = step.get("command", "apply")
        if i < len(steps) - 1:
            result = host.run(command, *step.get("args", []))
            assert result.code == 0, (name, i, result.stderr)
            continue
        result = host.run("plan", "--json", *step.get("args", []))
        if "error" in expected:
            assert result.code == expected["exit_code"], result.stderr
            for needle in expected["error"]:
                assert needle in result.stderr, (needle, result.stderr)
            return
        assert result.code in (0, 1), result.stderr
        assert project(result.json()) == expected
        if command == "apply" and expected["exit_code"] == 0:
            host.apply_ok(*step.get("args", []))
            layered = {e[0] for e in expected["added"]} | {e[1] for e in expected["upgraded"]}
            assert layered <= set(host.default()["reconcile"]["layered_packages"])

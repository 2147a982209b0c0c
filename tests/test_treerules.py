"""One rule, one place: the plan and the payload importer judge a package's files by the same tree rules, and
an import that meets a refusal the plan did not report says that plan and apply disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Host
from support import File, Package
from test_hostile import special_spec

from reconcile.errors import PackageError
from reconcile.ostree import Repo
from reconcile.pkgcache import PackageCache
from reconcile.rpm.header import read_rpm_headers
from reconcile.rpm.nevra import Nevra, pkgcache_ref
from reconcile.rpm.treerules import Owners, Rule

STRANGER = Package("stranger", files=(File("/usr/share/stranger", "x", user="nosuchuser"),))
OUTSIDER = Package("outsider", files=(File("/srv/data/file", "x"),))

# rule -> how to build the package that breaks it
CASES = {
    Rule.UNKNOWN_OWNER: lambda host: host.rpms.build(STRANGER),
    Rule.FORBIDDEN_PATH: lambda host: host.rpms.build(OUTSIDER),
    Rule.SPECIAL_FILE: lambda host: host.rpms.build_spec("special-fifo", special_spec("fifo")),
}


def _import(repo: Repo, rpm: Path, mode: str) -> None:
    with open(rpm, "rb") as f:
        nevra = Nevra.from_header(read_rpm_headers(f).header)
    cache = PackageCache(repo, Owners({}, {}), None, mode=mode)
    with repo.transaction():
        cache.import_rpm(rpm, nevra, "0" * 64, "test")


@pytest.mark.parametrize("rule", CASES.keys(), ids=[r.value for r in CASES])
def test_the_plan_reports_what_the_importer_refuses(host: Host, rule: Rule) -> None:
    rpm = CASES[rule](host)
    host.publish([])
    host.write_origin([], extra=f'local = ["{rpm}"]\n')
    plan = host.run("plan", "--json")
    assert plan.code == 1, plan.stderr
    assert [c["kind"] for c in plan.json()["checks"] if c["severity"] == "error"] == [rule.value]

    repo = Repo.open(host.sysroot / "ostree" / "repo")
    before = host.state()
    with pytest.raises(PackageError) as refused:
        _import(repo, rpm, mode="layer")
    assert str(refused.value).startswith("Plan and apply disagree about "), refused.value
    assert "bug in reconcile" in (refused.value.hint or "")
    with open(rpm, "rb") as f:
        assert repo.resolve(pkgcache_ref(Nevra.from_header(read_rpm_headers(f).header))) is None
    assert host.state() == before, "the refused import moved no ref"


def test_a_compose_import_has_no_plan_to_disagree_with(host: Host) -> None:
    """Composing a base has no plan before it: the same rule refuses with its own words."""
    repo = Repo.open(host.sysroot / "ostree" / "repo")
    with pytest.raises(PackageError) as refused:
        _import(repo, host.rpms.build(STRANGER), mode="compose")
    message = str(refused.value)
    assert "disagree" not in message
    assert "/usr/share/stranger is owned by the user 'nosuchuser'" in message

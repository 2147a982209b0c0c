"""Accounts from sysusers.d `u`/`g`/`m`/`r` lines: the plan promises what apply creates, by the same code."""

from __future__ import annotations

import os

from conftest import Host
from support import File, Package

SYSUSERS = "/usr/lib/sysusers.d/ranged.conf"
RANGED = Package(
    "ranged",
    files=(
        File(
            SYSUSERS,
            "r - 500-510\n"
            "g rangedgrp -\n"
            'u rangeduser - "Ranged user" /var/lib/ranged\n'
            "m rangeduser rangedgrp\n"
            "m rangeduser users\n"
            "m helper helpers\n",
        ),
        File("/usr/share/ranged/state", "x\n", user="rangeduser", group="rangedgrp"),
        File("/usr/share/ranged/helper", "x\n", user="helper", group="helpers"),
    ),
)
# A sysusers.d file that does not declare the owner of its files.
UNDECLARED = Package(
    "undeclared",
    files=(
        File("/usr/lib/sysusers.d/other.conf", "u someoneelse -\n"),
        File("/usr/share/undeclared/x", "x\n", user="ghostuser"),
    ),
)
# Files owned by an account another layered package declares.
DATA = Package("ranged-data", requires=("ranged",), files=(File("/usr/share/ranged-data/x", "x\n", user="rangeduser"),))


def table(path: os.PathLike[str]) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in open(path).read().splitlines() if line}


def test_membership_and_range_lines_are_honoured(host: Host) -> None:
    host.publish([RANGED, DATA])
    host.write_origin(["ranged-data"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    messages = [c["message"] for c in plan.json()["checks"]]
    assert plan.json()["applyable"], messages
    for text in (
        "ranged-1.0-1.noarch: will create the user 'rangeduser' (sysusers.d) before import",
        "ranged-1.0-1.noarch: will create the user 'helper' (sysusers.d) before import",
        "ranged-1.0-1.noarch: will create the group 'helpers' (sysusers.d) before import",
        "ranged-data-1.0-1.noarch: will create the user 'rangeduser' (sysusers.d of ranged-1.0-1.noarch)",
        "ranged-1.0-1.noarch: will add the user 'rangeduser' to the group 'users' (sysusers.d).",
    ):
        assert any(m.startswith(text) for m in messages), (text, messages)

    host.apply_ok()
    tree = host.deployment_path(host.default())
    passwd, group = table(tree / "usr/etc/passwd"), table(tree / "usr/etc/group")
    ids = {int(passwd[u][2]) for u in ("rangeduser", "helper")} | {int(group[g][2]) for g in ("rangedgrp", "helpers")}
    assert all(500 <= i <= 510 for i in ids), ids
    assert group["rangedgrp"][3].split(",") == ["rangeduser"]
    assert group["helpers"][3].split(",") == ["helper"]
    assert group["users"][2] == "100" and group["users"][3].split(",") == ["rangeduser"], "a base group gains a member"
    assert passwd["rangeduser"][4:] == ["Ranged user", "/var/lib/ranged", "/sbin/nologin"]
    st = os.lstat(tree / "usr/share/ranged/state")
    assert (st.st_uid, st.st_gid) == (int(passwd["rangeduser"][2]), int(group["rangedgrp"][2]))
    assert os.lstat(tree / "usr/share/ranged/helper").st_gid == int(group["helpers"][2])
    assert os.lstat(tree / "usr/share/ranged-data/x").st_uid == int(passwd["rangeduser"][2])


def test_a_sysusers_file_that_does_not_declare_the_owner_is_an_error_in_the_plan(host: Host) -> None:
    host.publish([UNDECLARED])
    host.write_origin(["undeclared"])
    plan = host.run("plan", "--json")
    doc = plan.json()
    assert not doc["applyable"]
    assert any(
        c["kind"] == "unknown-owner" and "owned by the user 'ghostuser'" in c["message"] for c in doc["checks"]
    ), doc["checks"]
    before = host.state()
    result = host.run("apply")
    assert result.code != 0 and "ghostuser" in result.stderr, result.stderr
    assert host.state() == before


def test_a_range_too_small_for_the_accounts_is_a_clear_error(host: Host) -> None:
    crowded = Package(
        "crowded",
        files=(
            File("/usr/lib/sysusers.d/crowded.conf", "r - 700-700\nu first -\nu second -\n"),
            File("/usr/share/crowded/x", "x\n", user="second"),
        ),
    )
    host.publish([crowded])
    host.write_origin(["crowded"])
    before = host.state()
    result = host.run("apply")
    assert result.code == 1, result.stderr
    assert "No free system id is left for the account" in result.stderr and "700-700" in result.stderr
    assert "internal error" not in result.stderr
    assert host.state() == before

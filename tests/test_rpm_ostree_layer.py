"""rpm-ostree's client-layer commit metadata: every layered commit carries all of it with rpm-ostree's GVariant
types (read back with `ostree show`), and a commit that carries only it (rpm-ostree built it) is understood, so
the same declaration plans as a no-op on it and later changes build on it."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import Host
from support import File, Package, exampleos, ostree, reconcile, rpm_query
from test_replace import LIBS_3, NEEDS_LIBS_3, _replace

from reconcile.ostree import Repo
from reconcile.ostree._gi import GLib

ARCH = os.uname().machine

# What rpm-ostree's reader asserts for clientlayer_version 6, with the types it asks for
# (src/libpriv/rpmostree-util.cxx::rpmostree_deployment_get_layered_info: g_assert on each lookup), plus the
# keys its writer always adds (src/libpriv/rpmostree-core.cxx::rpmostree_context_commit) and their types, and
# rust/src/daemon.rs::deployment_layeredmeta_from_commit_impl (clientlayer: b, clientlayer_version: u).
CLIENT_LAYER_TYPES = {
    "rpmostree.clientlayer": "b",  # daemon.rs
    "rpmostree.clientlayer_version": "u",  # daemon.rs; rpmostree-core.cxx writes 6
    "rpmostree.packages": "as",  # rpmostree-util.cxx, asserted from version 1
    "rpmostree.removed-base-packages": "av",  # asserted from version 2
    "rpmostree.replaced-base-packages": "a(vv)",  # asserted from version 2
    "rpmostree.replaced-base-remote-packages": "a{sv}",  # asserted from version 6
    "rpmostree.modules": "as",  # rpmostree-core.cxx: older clients fail without it (#5048)
    "rpmostree.rpmdb.pkglist": "a(sssss)",  # rpmostree-core.cxx; read by src/lib/rpmostree-package.c
    "rpmostree.rpmmd-repos": "aa{sv}",  # rpmostree-core.cxx; src/app/rpmostree-builtin-status.cxx reads it
    "rpmostree.state-sha512": "s",  # rpmostree-core.cxx; src/daemon/rpmostree-sysroot-upgrader.cxx requires it
}
NEVRA_TYPE = "(sstsss)"  # rpmostree-core.cxx::gv_nevra_from_pkg: nevra, name, epoch, version, release, arch
HELLO = Package("hello-tool", requires=("hello-tool-data",), files=(File("/usr/bin/hello-tool", "#!/bin/sh\n"),))
HELLO_DATA = Package("hello-tool-data", files=(File("/usr/share/hello-tool/data", "data\n"),))
EXTRA = Package("extra-tool", files=(File("/usr/bin/extra-tool", "#!/bin/sh\n"),))


def _repo(host: Host) -> Path:
    return host.sysroot / "ostree" / "repo"


def _meta_text(host: Host, commit: str, key: str) -> str:
    return ostree(f"--repo={_repo(host)}", "show", f"--print-metadata-key={key}", commit).strip()


def _typed(host: Host, commit: str, key: str) -> GLib.Variant:
    """The key as `ostree show` prints it, parsed back with rpm-ostree's type: a different type fails to parse."""
    text = _meta_text(host, commit, key)
    try:
        value = GLib.Variant.parse(GLib.VariantType.new(CLIENT_LAYER_TYPES[key]), text, None, None)
    except GLib.Error as e:
        raise AssertionError(f"{key} = {text} is not of rpm-ostree's type {CLIENT_LAYER_TYPES[key]}: {e}") from e
    # ostree's ot_dump_variant prints commit objects big-endian; metadata is written in host order (as rpm-ostree)
    return value.byteswap() if sys.byteorder == "little" else value


def _nevra6(v: GLib.Variant) -> tuple:
    assert v.get_type_string() == NEVRA_TYPE, v.get_type_string()
    return tuple(v.unpack())


def _tuple6(nevra: str, name: str, version: str, release: str, arch: str) -> tuple:
    return (nevra, name, 0, version, release, arch)


def _rpmdb_list(tree: Path) -> list[tuple]:
    lines = rpm_query(tree, "-qa", "--qf", "%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH}\\n").split("\n")
    return sorted(tuple(line.split()) for line in lines if line.strip())


def _base(host: Host) -> str:
    return host.base.commit


def _parent(host: Host, commit: str) -> str:
    return ostree(f"--repo={_repo(host)}", "rev-parse", f"{commit}^").strip()


def test_a_layered_commit_carries_every_client_layer_key_with_rpm_ostrees_types(host: Host) -> None:
    host.publish([HELLO, HELLO_DATA])
    host.write_origin(["hello-tool"], extra='[overrides]\nremove = ["example-libs"]\n')
    host.apply_ok()
    dep = host.default()
    commit = dep["checksum"]
    assert _parent(host, commit) == _base(host), "rpm-ostree takes the parent as the base"
    values = {key: _typed(host, commit, key) for key in CLIENT_LAYER_TYPES}

    assert values["rpmostree.clientlayer"].unpack() is True
    assert values["rpmostree.clientlayer_version"].unpack() == 6
    assert values["rpmostree.packages"].unpack() == ["hello-tool"]
    assert values["rpmostree.modules"].unpack() == []
    av = values["rpmostree.removed-base-packages"]
    removed = [_nevra6(av.get_child_value(i).get_variant()) for i in range(av.n_children())]
    libs = f"example-libs-2.1-1.{ARCH}"
    assert removed == [_tuple6(libs, "example-libs", "2.1", "1", ARCH)]
    assert values["rpmostree.replaced-base-packages"].unpack() == []
    assert values["rpmostree.replaced-base-remote-packages"].unpack() == {}
    tree = host.deployment_path(dep)
    assert sorted(values["rpmostree.rpmdb.pkglist"].unpack()) == _rpmdb_list(tree), "the tree's own rpmdb"
    repos = values["rpmostree.rpmmd-repos"].unpack()
    assert [r["id"] for r in repos] == ["test"], repos
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 0 for r in repos), repos
    assert values["rpmostree.rpmmd-repos"].get_child_value(0).lookup_value("timestamp", None).get_type_string() == "t"
    assert re.fullmatch(r"[0-9a-f]{128}", values["rpmostree.state-sha512"].unpack())


def test_replacements_are_recorded_as_rpm_ostree_records_them(host: Host, tmp_path: Path) -> None:
    host.publish([LIBS_3, NEEDS_LIBS_3])
    host.write_origin(["needs-newer-libs"], extra=_replace(["example-libs >= 3"]))
    host.apply_ok()
    commit = host.default()["checksum"]
    remote = _typed(host, commit, "rpmostree.replaced-base-remote-packages")
    pairs = remote.lookup_value("repo=test", GLib.VariantType.new("a(vv)"))
    assert pairs is not None, remote
    (new, old) = [tuple(_nevra6(pairs.get_child_value(0).get_child_value(i).get_variant()) for i in (0, 1))][0]
    assert new == _tuple6(f"example-libs-3.0-1.{ARCH}", "example-libs", "3.0", "1", ARCH)
    assert old == _tuple6(f"example-libs-2.1-1.{ARCH}", "example-libs", "2.1", "1", ARCH)
    assert _typed(host, commit, "rpmostree.replaced-base-packages").unpack() == []

    local = host.rpms.build(dataclasses.replace(LIBS_3, release="2"))  # not the repo's build
    host.write_origin(["needs-newer-libs"], extra=_replace([], [local]))
    host.apply_ok()
    commit = host.default()["checksum"]
    replaced = _typed(host, commit, "rpmostree.replaced-base-packages")
    assert replaced.n_children() == 1
    pair = replaced.get_child_value(0)
    assert _nevra6(pair.get_child_value(0).get_variant())[0] == f"example-libs-3.0-2.{ARCH}"
    assert _nevra6(pair.get_child_value(1).get_variant())[0] == f"example-libs-2.1-1.{ARCH}"
    assert _typed(host, commit, "rpmostree.replaced-base-remote-packages").unpack() == {}


def as_rpm_ostree_built(host: Host, commit: str, drop: tuple[str, ...] = ()) -> str:
    """The same tree committed again with the `reconcile.*` keys stripped (and `drop`), as `ostree commit` makes it:
    what a host layered by rpm-ostree itself has."""
    meta = Repo.open(_repo(host)).commit_metadata_variants(commit)
    kept = {k: v for k, v in meta.items() if not k.startswith("reconcile.") and k not in drop}
    assert "rpmostree.clientlayer" in kept or "rpmostree.clientlayer" in drop
    args = [f"--add-metadata={k}={v.print_(True)}" for k, v in kept.items()]
    out = ostree(
        f"--repo={_repo(host)}",
        "commit",
        "--branch=test/rpm-ostree-layer",
        f"--tree=ref={commit}",
        f"--parent={_parent(host, commit)}",
        "--subject=rpm-ostree layer",
        *args,
    )
    new = out.strip()
    assert not any(k.startswith("reconcile.") for k in _keys(host, new))
    return new


def _keys(host: Host, commit: str) -> list[str]:
    return list(Repo.open(_repo(host)).commit_metadata_variants(commit))


def deploy_commit(host: Host, commit: str, readable: bool = True, origin: Path | None = None) -> None:
    """`ostree admin deploy` of `commit` with the default deployment's origin file (or `origin`), as rpm-ostree
    would leave it."""
    if origin is None:
        origin = host.deployed_origin()
    exampleos.run(
        [
            "ostree",
            "admin",
            f"--sysroot={host.sysroot}",
            "deploy",
            f"--os={exampleos.OSNAME}",
            f"--origin-file={origin}",
            "--karg=root=LABEL=example",
            commit,
        ]
    )
    if readable:
        assert host.default()["checksum"] == commit


SCENARIOS = {
    "requests-and-a-removal": ([HELLO, HELLO_DATA], ["hello-tool"], '[overrides]\nremove = ["example-libs"]\n'),
    "a-repo-replacement": ([LIBS_3, NEEDS_LIBS_3], ["needs-newer-libs"], _replace(["example-libs >= 3"])),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_deployment_rpm_ostree_built_is_understood_and_planned_as_a_no_op(host: Host, scenario: str) -> None:
    packages, requested, extra = SCENARIOS[scenario]
    host.publish(packages)
    host.write_origin(requested, extra=extra)
    host.apply_ok()
    ours = host.default()
    on_ours = host.run("plan", "--json").json()["resolution"]
    theirs = as_rpm_ostree_built(host, ours["checksum"])
    deploy_commit(host, theirs)

    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["has_changes"] is False, doc["summary"]
    for kind in ("added", "removed", "upgraded", "downgraded", "replaced", "base_replacements"):
        assert _nevras(doc["resolution"][kind]) == _nevras(on_ours[kind]), (kind, doc["resolution"])
    assert doc["resolution"]["added"] == [] and doc["resolution"]["upgraded"] == []
    assert doc["prior"]["base_checksum"] == host.base.commit
    assert sorted(doc["prior"]["layered"]) == sorted(ours_layered(host, ours)), doc["prior"]
    applied = host.run("apply", "--json")
    assert applied.code == 0, applied.stderr
    assert host.default()["checksum"] == theirs, "nothing to do: no new deployment"

    migrated = host.root / "migrated" / "origin.toml"  # `reconcile init` from rpm-ostree's deployment
    made = reconcile("init", "--sysroot", host.sysroot, "--origin", migrated)
    assert made.code == 0, made.stderr
    again = reconcile("plan", "--sysroot", host.sysroot, "--origin", migrated, "--reposdir", host.reposdir, "--json")
    assert again.code == 0 and again.json()["has_changes"] is False, again.stdout + again.stderr

    text = host.run("status").stdout
    assert f"Base:      {host.base.commit}" in text, text
    for nevra in ours_layered(host, ours):
        assert nevra in text, text

    host.publish([*packages, EXTRA])
    host.write_origin([*requested, "extra-tool"], extra=extra)
    plan = host.run("plan", "--json").json()
    assert [e["name"] for e in plan["resolution"]["added"]] == ["extra-tool"], plan["resolution"]
    assert _nevras(plan["resolution"]["removed"]) == _nevras(on_ours["removed"]), "the base removals only"
    assert plan["resolution"]["upgraded"] == [] and plan["resolution"]["base_replacements"] == []
    host.apply_ok()
    tree = host.deployment_path(host.default())
    assert (tree / "usr/bin/extra-tool").exists()
    names = {row[0] for row in _rpmdb_list(tree)}
    assert {*requested, "extra-tool"} <= names


def _nevras(entries: list[dict]) -> list[str]:
    return sorted(e.get("nevra") or e.get("after") or "" for e in entries)


def ours_layered(host: Host, dep: dict) -> list[str]:
    """The NEVRAs reconcile layered in `dep`: the tree's rpmdb minus the base's."""
    tree = host.deployment_path(dep)
    base = {f"{n}-{v}-{r}.{a}" for n, e, v, r, a in _rpmdb_list_of_commit(host, host.base.commit)}
    mine = {f"{n}-{v}-{r}.{a}" for n, e, v, r, a in _rpmdb_list(tree)}
    replaced = {n for n in mine if n.startswith("example-libs-3.0")}
    return sorted(mine - base - replaced)


def _rpmdb_list_of_commit(host: Host, commit: str) -> list[tuple]:
    return sorted(_typed(host, commit, "rpmostree.rpmdb.pkglist").unpack())


def test_a_client_layer_missing_a_key_its_version_requires_is_refused_by_name(host: Host) -> None:
    host.publish([HELLO, HELLO_DATA])
    host.write_origin(["hello-tool"])
    host.apply_ok()
    theirs = as_rpm_ostree_built(host, host.default()["checksum"], drop=("rpmostree.packages",))
    deploy_commit(host, theirs, readable=False)
    for command in ("plan", "status"):
        result = host.run(command)
        assert result.code != 0, result.stdout
        assert "rpmostree.packages" in result.stderr and theirs[:12] in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    exampleos.run(["ostree", "admin", f"--sysroot={host.sysroot}", "undeploy", "0"])


def test_commits_without_clientlayer_metadata_stay_plain_bases(host: Host) -> None:
    """A base composed by reconcile carries rpm-ostree's pkglist but is no client layer."""
    assert "rpmostree.rpmdb.pkglist" in _keys(host, host.base.commit)
    assert "rpmostree.clientlayer" not in _keys(host, host.base.commit)
    host.write_origin([])
    plan = host.run("plan", "--json").json()
    assert plan["has_changes"] is False
    assert reconcile("status", "--sysroot", host.sysroot).code == 0


def test_status_warns_when_rpm_ostree_rebuilt_a_deployment_reconcile_manages(host: Host) -> None:
    host.publish([HELLO, HELLO_DATA])
    host.write_origin(["hello-tool"])
    host.apply_ok()
    assert host.status()["reconcile"]["warnings"] == []
    theirs = as_rpm_ostree_built(host, host.default()["checksum"])
    deploy_commit(host, theirs)
    warnings = host.status()["reconcile"]["warnings"]
    assert len(warnings) == 1 and theirs[:12] in warnings[0] and str(host.origin) in warnings[0], warnings
    assert "docs/rpm-ostree.md" in warnings[0]
    text = host.run("status")
    assert text.code == 0 and "rpm-ostree" in text.stdout + text.stderr, text

    # Only rpm-ostree layers here (reconcile's record and its deployment gone): nothing to warn about.
    (host.cachedir / "managed.json").unlink()
    exampleos.run(["ostree", "admin", f"--sysroot={host.sysroot}", "undeploy", "1"])
    assert host.status()["reconcile"]["warnings"] == []

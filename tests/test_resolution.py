"""Resolution as dnf does it: file dependencies only filelists.xml lists, weak reasons, multilib pairs."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from conftest import Host
from support import File, Package, rpm_query

MARKER = "/usr/share/foo/marker.dat"
OWNER = Package("foo-data", files=(File(MARKER, "marker\n"),))
NEEDER = Package("needs-marker", requires=(MARKER,))


def primary_lists(repo: Path, path: str) -> bool:
    primary = next((repo / "repodata").glob("*primary.xml.gz"))
    return f"<file>{path}</file>".encode() in gzip.decompress(primary.read_bytes())


def added(doc: dict) -> dict[str, dict]:
    return {e["nevra"]: e for e in doc["resolution"]["added"]}


def test_a_file_dependency_only_filelists_lists_is_resolved(host: Host) -> None:
    repo = host.publish([OWNER, NEEDER])
    assert not primary_lists(repo, MARKER), "the test needs a path primary.xml leaves out"
    host.write_origin(["needs-marker"])

    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    entries = added(plan.json())
    assert set(entries) == {"needs-marker-1.0-1.noarch", "foo-data-1.0-1.noarch"}
    assert entries["foo-data-1.0-1.noarch"]["why"] == ["needs-marker", "foo-data"]
    assert entries["foo-data-1.0-1.noarch"]["via"] == "requires"

    host.apply_ok()
    tree = host.deployment_path(host.default())
    assert (tree / MARKER.lstrip("/")).read_text() == "marker\n"


def test_a_plan_that_needs_no_file_lists_does_not_load_them(host: Host) -> None:
    host.publish([OWNER, NEEDER])
    host.write_origin(["hello"])
    plan = host.run("plan", "--debug")
    assert plan.code == 0, plan.stderr
    fetched = [p.name for p in host.cachedir.rglob("*filelists*") if not p.name.endswith(".solv")]
    assert fetched == [], "file lists were fetched for a plan that needs none"

    host.write_origin(["needs-marker"])
    assert host.run("plan").code == 0
    assert [p for p in host.cachedir.rglob("*filelists*")], "the file-dependency plan fetched the file lists"


def test_a_package_that_supplements_a_layered_one_is_a_weak_dependency(host: Host) -> None:
    host.publish(
        [
            Package("core"),
            Package("core-lang", supplements=("core",)),
            Package("core-theme", enhances=("core",)),
        ]
    )
    host.write_origin(["core"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    entries = added(plan.json())
    # As with dnf: Supplements pulls a package in, Enhances (the reverse of Suggests) never does.
    assert set(entries) == {"core-1.0-1.noarch", "core-lang-1.0-1.noarch"}
    lang = entries["core-lang-1.0-1.noarch"]
    assert (lang["reason"], lang["weak"], lang["why"], lang["via"]) == (
        "dependency",
        True,
        ["core", "core-lang"],
        "supplements",
    )
    text = host.run("plan").stdout
    assert "core-lang-1.0-1.noarch [test] (weak dependency: core-lang supplements core)" in text, text

    host.write_origin(["core"], extra="\n[options]\nrecommends = false\n")
    entries = added(host.run("plan", "--json").json())
    assert set(entries) == {"core-1.0-1.noarch"}, "recommends = false leaves weak dependencies out"


def test_an_enhancing_package_pulled_in_by_a_recommends_is_explained_by_it(host: Host) -> None:
    host.publish([Package("app", recommends=("app-extra",)), Package("app-extra", enhances=("app",))])
    host.write_origin(["app"])
    entries = added(host.run("plan", "--json").json())
    extra = entries["app-extra-1.0-1.noarch"]
    assert (extra["weak"], extra["why"], extra["via"]) == (True, ["app", "app-extra"], "recommends")


def test_a_strong_chain_explains_a_package_that_also_has_a_weak_one(host: Host) -> None:
    host.publish(
        [
            Package("top", requires=("middle",), recommends=("bottom",)),
            Package("middle", requires=("bottom",)),
            Package("bottom"),
        ]
    )
    host.write_origin(["top"])
    entries = added(host.run("plan", "--json").json())
    bottom = entries["bottom-1.0-1.noarch"]
    assert (bottom["weak"], bottom["why"], bottom["via"]) == (False, ["top", "middle", "bottom"], "requires")


def test_explaining_dependencies_imports_no_graph_library(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing networkx cost 0.1 s of the 0.45 s resolution benchmark (P4); the chains need a BFS, no more.
    host.publish([Package("top", requires=("middle",)), Package("middle", recommends=("bottom",)), Package("bottom")])
    host.write_origin(["top"])
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    bottom = added(json.loads(plan.stdout))["bottom-1.0-1.noarch"]
    assert (bottom["weak"], bottom["why"], bottom["via"]) == (True, ["top", "middle", "bottom"], "recommends")
    imported = [line.rsplit("|", 1)[-1].strip() for line in plan.stderr.splitlines() if line.startswith("import time:")]
    assert "reconcile.planner.explain" in imported, "the import profile was not recorded"
    assert not [m for m in imported if m.split(".")[0] == "networkx"]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the multilib pair is x86_64 + i686")
def test_a_multilib_pair_is_two_entries_and_both_are_layered(host: Host) -> None:
    pair = [
        Package("multi", arch="x86_64", files=(File("/usr/lib64/multi.so", "64\n"),)),
        Package("multi", arch="i686", files=(File("/usr/lib/multi.so", "32\n"),)),
    ]
    host.publish(pair)
    host.write_origin(["multi.x86_64", "multi.i686"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert set(added(plan.json())) == {"multi-1.0-1.x86_64", "multi-1.0-1.i686"}
    assert len(plan.json()["target"]["packages"]) == 2

    host.apply_ok()
    tree = host.deployment_path(host.default())
    assert (tree / "usr/lib64/multi.so").read_text() == "64\n"
    assert (tree / "usr/lib/multi.so").read_text() == "32\n"
    assert set(rpm_query(tree, "-q", "multi", "--qf", "%{NEVRA}\\n").split()) == {
        "multi-1.0-1.x86_64",
        "multi-1.0-1.i686",
    }
    # Dropping one half removes exactly that entry.
    host.write_origin(["multi.x86_64"])
    doc = host.run("plan", "--json").json()
    assert [e["nevra"] for e in doc["resolution"]["removed"]] == ["multi-1.0-1.i686"]
    assert doc["resolution"]["added"] == [] and doc["resolution"]["upgraded"] == []


def recorded_file_provides(cache: Path) -> set[str]:
    """The file dependencies libsolv has already searched a cached repo's file lists for."""
    import solv

    pool = solv.Pool()
    repo = pool.add_repo("cached")
    with open(cache, "rb") as f:
        assert repo.add_solv(solv.xfopen_fd(str(cache), f.fileno()))
    data = repo.first_repodata()
    return {pool.id2str(i) for i in data.lookup_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES)}


def test_the_base_cache_keeps_its_file_provides_and_a_path_it_has_not_searched_is_still_found(host: Host) -> None:
    """A plan on a big base would otherwise search all its paths again (0.09 s on 200,000 files); a path the
    cache was not searched for must still be found in the base, not reported as provided by nothing."""
    shell = Package("needs-busybox", requires=("/usr/bin/busybox",))
    library = Package("needs-libexample", requires=("/usr/lib64/libexample.so.1.2.1",))
    host.publish([shell, library])
    caches = host.sysroot / "ostree/deploy/example/var/cache/reconcile"

    host.write_origin(["needs-busybox"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert set(added(plan.json())) == {"needs-busybox-1.0-1.noarch"}, "the base provides /usr/bin/busybox"
    (base_cache,) = caches.rglob("base-*.solv")
    assert {"/usr/bin/busybox", "/usr/lib64/libexample.so.1.2.1"} <= recorded_file_provides(base_cache)

    # Another repo asks for a base path the cache was not searched for: libsolv searches the base again.
    host.publish([shell, library, Package("needs-libexample-so", requires=("/usr/lib64/libexample.so.1",))])
    host.write_origin(["needs-libexample-so"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert set(added(plan.json())) == {"needs-libexample-so-1.0-1.noarch"}
    assert "/usr/lib64/libexample.so.1" in recorded_file_provides(base_cache)

"""`[overrides] replace` and `replace-local`: named base packages from the repos or local RPMs, the rest of the
base locked; the plan's own section, the tree and rpmdb, rpm-ostree's origin keys, and going back."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import Host
from support import File, Package, Symlink, exampleos, reconcile, rpm_query
from test_bad_input import assert_failed_cleanly

ARCH = os.uname().machine
BASE_LIBS = f"example-libs-2.1-1.{ARCH}"
NEW_LIBS = f"example-libs-3.0-1.{ARCH}"
LIBS_3 = Package(
    "example-libs",
    version="3.0",
    arch="native",
    provides=("libexample.so.1()(64bit)",),
    requires=("example-filesystem",),
    files=(
        File("/usr/lib64/libexample.so.1.3.0", "libexample 3.0\n", mode=0o755),
        Symlink("/usr/lib64/libexample.so.1", "libexample.so.1.3.0"),
    ),
)
NEEDS_LIBS_3 = Package("needs-newer-libs", requires=("example-libs >= 3",), files=(File("/usr/share/nn/x", "x"),))


def _replace(specs: list[str], local: list[Path] = ()) -> str:  # type: ignore[assignment]
    lines = ["[overrides]"]
    if specs:
        lines.append("replace = [" + ", ".join(f'"{s}"' for s in specs) + "]")
    if local:
        lines.append("replace-local = [" + ", ".join(f'"{p}"' for p in local) + "]")
    return "\n".join(lines) + "\n"


def _plan_from(host: Host, origin: Path, *args: str) -> tuple[int, str]:
    result = reconcile("plan", "--sysroot", host.sysroot, "--origin", origin, "--reposdir", host.reposdir, *args)
    return result.code, result.stdout + result.stderr


def _libs_in_tree(host: Host) -> tuple[list[str], list[str]]:
    tree = host.deployment_path(host.default())
    files = sorted(p.name for p in (tree / "usr/lib64").glob("libexample*"))
    return files, rpm_query(tree, "-q", "example-libs").split()


def test_replace_from_a_repo_lets_a_layered_package_need_the_new_version(host: Host) -> None:
    host.publish([LIBS_3, NEEDS_LIBS_3])
    host.write_origin(["needs-newer-libs"], extra=_replace(["example-libs >= 3"]))
    plan = host.run("plan", "--json").json()
    assert sorted(c["address"] for c in plan["changes"]) == [
        "override-replace/example-libs >= 3",
        "package/needs-newer-libs",
    ]
    swaps = plan["resolution"]["base_replacements"]
    assert [(s["action"], s["before"], s["after"], s["repo"]) for s in swaps] == [
        ("replace", BASE_LIBS, NEW_LIBS, "test")
    ]
    assert [e["nevra"] for e in plan["resolution"]["added"]] == ["needs-newer-libs-1.0-1.noarch"]
    assert plan["resolution"]["removed"] == []
    target = plan["target"]
    assert [(r["before"], r["after"], r["source"], r["package"]["repo"]) for r in target["replace_base"]] == [
        (BASE_LIBS, NEW_LIBS, "repo", "test")
    ]
    assert plan["summary"]["base_replacements"] == 1
    text = host.run("plan").stdout
    assert f"Base packages replaced:\n  ~ {BASE_LIBS} → {NEW_LIBS} [test]" in text, text
    markdown = host.run("plan", "--format", "markdown").stdout
    assert f"| replace `example-libs.{ARCH}` | `{BASE_LIBS}` | `{NEW_LIBS}` | test |" in markdown, markdown

    host.apply_ok()
    assert _libs_in_tree(host) == (["libexample.so.1", "libexample.so.1.3.0"], [NEW_LIBS])
    dep = host.default()
    assert dep["reconcile"]["replaced_base_packages"] == [f"{BASE_LIBS} → {NEW_LIBS}"]
    assert dep["reconcile"]["requested_base_replacements"] == ["example-libs >= 3"]
    # rpm-ostree's keys: (new, old) package tuples under the repo the new one came from
    old, new = (["example-libs", 0, v, "1", ARCH] for v in ("2.1", "3.0"))
    assert dep["base-remote-replacements"] == {"repo=test": [[[NEW_LIBS, *new], [BASE_LIBS, *old]]]}
    assert dep["requested-base-remote-replacements"] == [["repo=test", ["example-libs"]]]
    assert dep["base-local-replacements"] == [] and dep["requested-base-local-replacements"] == []
    assert (
        "needs-newer-libs-1.0-1.noarch" in dep["reconcile"]["layered_packages"]
        and NEW_LIBS not in dep["reconcile"]["layered_packages"]
    )
    assert f"Replaced:  {BASE_LIBS} → {NEW_LIBS}" in host.run("status").stdout
    tree = host.deployment_path(dep)
    assert os.readlink(tree / "usr/lib64/libexample.so.1") == "libexample.so.1.3.0"
    assert "needs-newer-libs" in rpm_query(tree, "-qa", "--qf", "%{NAME}\\n").split()
    origin = host.deployed_origin().read_text()
    assert "replace=repo=test,example-libs;\n" in origin and "replace=example-libs >= 3;\n" in origin, origin
    assert host.run("plan", "--detailed-exitcode").code == 0, "a deployed replacement converges"
    code, out = _plan_from(host, host.deployed_origin(), "--detailed-exitcode")
    assert code == 0 and "No changes" in out, "the deployment's origin reads back as the same declaration\n" + out

    host.write_origin(["needs-newer-libs"])  # the layered package still needs the replacement
    before = host.state()
    refused = host.run("apply")
    assert_failed_cleanly(host, before, refused, 1, "needs-newer-libs", "example-libs >= 3")

    host.write_origin([])
    back = host.run("plan", "--json").json()
    swaps = back["resolution"]["base_replacements"]
    assert [(s["action"], s["before"], s["after"], s["repo"]) for s in swaps] == [
        ("restore", NEW_LIBS, BASE_LIBS, "@base")
    ]
    assert ("override-replace/example-libs >= 3", ["delete"]) in [(c["address"], c["actions"]) for c in back["changes"]]
    assert "the base's own package again" in host.run("plan").stdout
    host.apply_ok()
    assert _libs_in_tree(host) == (["libexample.so.1", "libexample.so.1.2.1"], [BASE_LIBS])
    assert "replace" not in host.deployed_origin().read_text()


def test_replace_local_takes_the_base_package_from_a_file_pinned_by_sha256(host: Host, tmp_path: Path) -> None:
    host.publish([])
    rpm = tmp_path / "example-libs-3.rpm"
    rpm.write_bytes(host.rpms.build(LIBS_3).read_bytes())
    pin = f"{hashlib.sha256(rpm.read_bytes()).hexdigest()}:{NEW_LIBS}"
    host.write_origin([], extra=_replace([], [rpm]))
    plan = host.run("plan", "--json").json()
    assert [(c["address"], c["actions"]) for c in plan["changes"]] == [
        ("override-replace-local/example-libs", ["create"])
    ]
    swaps = plan["resolution"]["base_replacements"]
    assert [(s["before"], s["after"], s["repo"]) for s in swaps] == [(BASE_LIBS, NEW_LIBS, "@local")]
    assert plan["target"]["replace_local"] == [pin]
    assert plan["target"]["replace_base"][0]["source"] == "local"
    host.apply_ok()
    assert _libs_in_tree(host) == (["libexample.so.1", "libexample.so.1.3.0"], [NEW_LIBS])
    origin = host.deployed_origin().read_text()
    assert f"[overrides]\nreplace-local={pin};\n" in origin, origin
    assert "baserefspec=" in origin
    dep = host.default()
    old, new = (["example-libs", 0, v, "1", ARCH] for v in ("2.1", "3.0"))
    assert dep["base-local-replacements"] == [[[NEW_LIBS, *new], [BASE_LIBS, *old]]]
    assert dep["requested-base-local-replacements"] == [NEW_LIBS] and dep["base-remote-replacements"] == {}
    assert "requested-base-remote-replacements" not in dep
    rpm.unlink()  # the pin is found in the package cache, never opened as a path
    code, out = _plan_from(host, host.deployed_origin(), "--detailed-exitcode")
    assert code == 0 and "No changes" in out, out


def test_an_rpm_ostree_replace_entry_reads_as_its_package_names(host: Host, tmp_path: Path) -> None:
    host.publish([LIBS_3])
    origin = tmp_path / "host.origin"
    origin.write_text(f"[origin]\nbaserefspec={exampleos.BASE_REF}\n\n[overrides]\nreplace=repo=test,example-libs;\n")
    code, out = _plan_from(host, origin, "--json")
    assert code == 0, out
    assert f'"after": "{NEW_LIBS}"' in out


@pytest.mark.parametrize(
    ("specs", "code", "needles"),
    [
        (["hello"], 1, ["'hello'", "hello is not a package of the base"]),
        (["example-libs >= 9"], 1, ["'example-libs >= 9'", "no package in the enabled repos matches it"]),
        (["no-such-package"], 1, ["'no-such-package'", "no package in the enabled repos matches it"]),
        (["example-libs >="], 65, ["overrides.replace[0]", "is not a package spec"]),
        (["example-libs", "example-libs"], 65, ["overrides.replace[1]", "listed twice"]),
    ],
)
def test_bad_replacements_fail_cleanly(host: Host, specs: list[str], code: int, needles: list[str]) -> None:
    host.publish([LIBS_3])
    host.write_origin([], extra=_replace(specs))
    before = host.state()
    for command in ("plan", "apply"):
        assert_failed_cleanly(host, before, host.run(command), code, *needles)


def test_a_package_both_removed_and_replaced_or_a_local_non_base_package_fails_cleanly(
    host: Host, tmp_path: Path
) -> None:
    host.publish([LIBS_3])
    host.write_origin([], extra='[overrides]\nremove = ["example-libs"]\nreplace = ["example-libs"]\n')
    before = host.state()
    assert_failed_cleanly(host, before, host.run("apply"), 1, "example-libs: named by overrides.remove")
    rpm = tmp_path / "mytool.rpm"
    rpm.write_bytes(host.rpms.build(Package("mytool")).read_bytes())
    host.write_origin([], extra=_replace([], [rpm]))
    before = host.state()
    assert_failed_cleanly(host, before, host.run("apply"), 1, "mytool-1.0-1.noarch", "not a package of the base")

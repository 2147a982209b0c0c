"""`[kargs] append` / `delete`: converged against the merge deployment's kernel arguments, deployed as libostree
deploys them (the same commit again when nothing else changes), refused as bad input with the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Host
from support import Package, ostree
from test_bad_input import assert_failed_cleanly

from reconcile.errors import InvalidInputError
from reconcile.kargs import converge, split_options
from reconcile.origin import parse_origin

P = Package("p")
BASE_KARGS = ["root=LABEL=example"]  # what examples/exampleos.py deploys the base with


def kargs_table(append: list[str] = [], delete: list[str] = []) -> str:  # noqa: B006 (never mutated)
    return f"\n[kargs]\nappend = {json.dumps(append)}\ndelete = {json.dumps(delete)}\n"


def loader_options(host: Host) -> list[str]:
    """The `options` line of each loader entry libostree wrote, default deployment first."""
    entries = sorted((host.sysroot / "boot" / "loader" / "entries").glob("ostree-*.conf"), reverse=True)
    out = []
    for entry in entries:
        options = next(line for line in entry.read_text().splitlines() if line.startswith("options "))
        out.append(options.removeprefix("options "))
    return out


def test_append_and_delete_deploy_the_same_commit_again_then_nothing_to_do(host: Host) -> None:
    host.publish([])
    before = host.default()
    assert before["reconcile"]["kernel_args"] == BASE_KARGS
    host.write_origin([], extra=kargs_table(append=["quiet", "console=ttyS0,115200"]))
    plan = host.run("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.stderr
    assert (
        "~ kargs" in plan.stdout and "root=LABEL=example → root=LABEL=example quiet console=ttyS0,115200" in plan.stdout
    )
    host.apply_ok()
    after = host.status()["deployments"]
    assert len(after) == 2 and after[1]["id"] == before["id"], "the merge deployment stays as the rollback"
    assert after[0]["checksum"] == before["checksum"], "a kargs-only change deploys the same commit again"
    assert after[0]["reconcile"]["kernel_args"] == ["root=LABEL=example", "quiet", "console=ttyS0,115200"]
    assert split_options(loader_options(host)[0]) == after[0]["reconcile"]["kernel_args"]
    assert "ostree=/ostree/boot." in loader_options(host)[0], "libostree still adds its own ostree= argument"
    state = host.state()
    again = host.run("apply", "--detailed-exitcode")
    assert again.code == 0, again.stderr
    assert host.state() == state, "converged: a second apply makes no deployment"
    assert host.run("plan", "--detailed-exitcode").code == 0


def test_delete_by_key_removes_every_instance_and_by_value_only_that_one(host: Host) -> None:
    host.publish([])
    host.write_origin([], extra=kargs_table(append=["console=tty0", "console=ttyS0", "debug=1", "debug=2"]))
    host.apply_ok()
    host.write_origin([], extra=kargs_table(append=["quiet"], delete=["console", "debug=1", "absent", "gone=x"]))
    result = host.run("plan", "--json")
    target = result.json()["target"]
    assert target["kernel_args"] == ["root=LABEL=example", "debug=2", "quiet"]
    assert result.json()["prior"]["kernel_args"] == [
        "root=LABEL=example",
        "console=tty0",
        "console=ttyS0",
        "debug=1",
        "debug=2",
    ]
    host.apply_ok()
    assert host.default()["reconcile"]["kernel_args"] == ["root=LABEL=example", "debug=2", "quiet"]
    assert split_options(loader_options(host)[0]) == ["root=LABEL=example", "debug=2", "quiet"]


def test_deleting_every_argument_leaves_only_libostree_own(host: Host) -> None:
    host.publish([])
    host.write_origin([], extra=kargs_table(delete=["root"]))
    host.apply_ok()
    assert host.default()["reconcile"]["kernel_args"] == []
    assert loader_options(host)[0].startswith("ostree=/ostree/boot.") and " " not in loader_options(host)[0]
    assert host.run("plan", "--detailed-exitcode").code == 0


def test_append_of_a_present_key_with_another_value_adds_it(host: Host) -> None:
    host.publish([])
    host.write_origin([], extra=kargs_table(append=["root=LABEL=other"]))
    host.apply_ok()
    assert host.default()["reconcile"]["kernel_args"] == ["root=LABEL=example", "root=LABEL=other"]


def test_kargs_with_a_package_change_then_kargs_alone_keep_the_layered_commit(host: Host) -> None:
    host.publish([P])
    host.write_origin(["p"], extra=kargs_table(append=["quiet"]))
    plan = host.run("plan")
    assert "+ package/p" in plan.stdout and "~ kargs" in plan.stdout, plan.stdout
    assert "the kernel arguments change" in plan.stdout
    host.apply_ok()
    layered = host.default()
    assert layered["reconcile"]["layered_packages"] == ["p-1.0-1.noarch"] and layered["reconcile"]["kernel_args"] == [
        "root=LABEL=example",
        "quiet",
    ]
    host.write_origin(["p"], extra=kargs_table(append=["quiet"], delete=["root"]))
    host.apply_ok()
    now = host.default()
    assert now["checksum"] == layered["checksum"], "the layered tree is not built again for new kernel arguments"
    assert now["reconcile"]["kernel_args"] == ["quiet"] and now["reconcile"]["layered_packages"] == ["p-1.0-1.noarch"]
    assert split_options(loader_options(host)[0]) == ["quiet"]


def test_package_change_alone_keeps_the_kernel_arguments(host: Host) -> None:
    host.publish([P])
    host.write_origin([], extra=kargs_table(append=["quiet"]))
    host.apply_ok()
    host.write_origin(["p"], extra=kargs_table(append=["quiet"]))
    plan = host.run("plan", "--json").json()
    assert plan["target"]["kernel_args"] is None and not any(c["kind"] == "kargs" for c in plan["changes"])
    host.apply_ok()
    assert host.default()["reconcile"]["kernel_args"] == ["root=LABEL=example", "quiet"]


def test_saved_plan_is_stale_when_the_kernel_arguments_changed_in_place(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin([], extra=kargs_table(append=["quiet"]))
    made = host.run("plan", "-o", tmp_path / "plan.json")
    assert made.code == 0, made.stderr
    ostree("admin", "kargs", "edit-in-place", f"--sysroot={host.sysroot}", "--append-if-missing=nosmt")
    assert host.default()["reconcile"]["kernel_args"] == ["root=LABEL=example", "nosmt"]
    before = host.state()
    result = host.run("apply", tmp_path / "plan.json")
    assert result.code == 3, result.stderr
    assert "kernel arguments changed" in result.stderr
    assert host.state() == before and host.default()["reconcile"]["kernel_args"] == ["root=LABEL=example", "nosmt"]


def test_status_text_shows_the_kernel_arguments(host: Host) -> None:
    assert "Kargs:     root=LABEL=example" in host.run("status").stdout


# (append, delete, the line of the problem: append is on line 8, delete on 9, a needle of the message)
BAD = {
    "empty": (["quiet", ""], [], 8, "kargs.append[1]: empty kernel argument"),
    "whitespace": (["quiet", "console=tty0 quiet"], [], 8, "kargs.append[1]: 'console=tty0 quiet' contains whitespace"),
    "no-key": ([], ["=x"], 9, "kargs.delete[0]: '=x' has no key"),
    "libostree-own": (["ostree=/ostree/boot.1/x"], [], 8, "libostree sets ostree="),
    "appended-and-deleted": (["quiet", "console=ttyS0"], ["console"], 9, "'console' would delete 'console=ttyS0'"),
    "same-both": (["quiet"], ["quiet"], 9, "kargs.delete[0]: 'quiet' would delete 'quiet'"),
    "listed-twice": (["quiet", "quiet"], [], 8, "kargs.append[1]: 'quiet' is listed twice"),
}


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_kernel_arguments_are_origin_errors_with_the_line(host: Host, case: tuple, command: str) -> None:
    append, delete, line, needle = case
    host.write_origin([], extra=kargs_table(append, delete))
    before = host.state()
    result = host.run(command)
    assert_failed_cleanly(host, before, result, 65, f"origin.toml:{line} ", needle)


# -- without a sysroot ---------------------------------------------------------------------------------------


def test_converge_semantics() -> None:
    current = ["root=UUID=1", "rhgb", "quiet", "console=tty0", "console=ttyS0", "x="]
    assert converge(current, [], []) == current
    assert converge(current, ["quiet", "console=tty0"], []) == current, "present as written: nothing to append"
    assert converge(current, ["console=ttyS1", "a", "a"], []) == [*current, "console=ttyS1", "a"]
    assert converge(current, [], ["console"]) == ["root=UUID=1", "rhgb", "quiet", "x="]
    assert converge(current, [], ["console=tty0", "rhgb=1", "x"]) == ["root=UUID=1", "rhgb", "quiet", "console=ttyS0"]
    assert converge(current, [], ["x="]) == current[:-1]


def test_split_options_keeps_quoted_values_and_drops_libostree_own() -> None:
    options = 'root=UUID=1  rd.foo="a b"  ostree=/ostree/boot.1/ex/abc/0 quiet'
    assert split_options(options) == ["root=UUID=1", 'rd.foo="a b"', "quiet"]
    assert split_options(None) == [] and split_options("") == []


def test_origin_parsing_of_kargs(tmp_path: Path) -> None:
    path = tmp_path / "origin.toml"
    text = '[origin]\nbaserefspec = "example/base"\n\n[kargs]\nappend = ["quiet", "console=ttyS0"]\ndelete = ["rhgb"]\n'
    desired = parse_origin(path, text.encode()).desired
    assert desired.kargs.append == ["quiet", "console=ttyS0"] and desired.kargs.delete == ["rhgb"]
    assert parse_origin(path, b'[origin]\nbaserefspec = "b"\n').desired.kargs.append == []
    with pytest.raises(InvalidInputError) as e:
        parse_origin(path, text.replace('"rhgb"', '"rhgb", " "').encode())
    assert e.value.problems == [
        f"{path}:6 kargs.delete[1]: ' ' contains whitespace (one kernel argument per list item, unquoted)"
    ]
    spread = text.replace('append = ["quiet", "console=ttyS0"]', 'append = [\n  "quiet",\n  "console=ttyS0",\n]')
    spread = spread.replace('delete = ["rhgb"]', 'delete = [\n  "rhgb",\n  "console",  # all of them\n]')
    with pytest.raises(InvalidInputError) as e:
        parse_origin(path, spread.encode())
    assert e.value.problems == [
        f"{path}:11 kargs.delete[1]: 'console' would delete 'console=ttyS0', which kargs.append asks for"
    ], "the line of the item itself, in a multi-line array"

"""Bad input gets one clear error and the documented exit code, and leaves the system exactly as it was:
deployments, origins, refs and the origin file."""

from __future__ import annotations

import re

import pytest
from conftest import Host
from servers import serve
from support import File, Package, exampleos, reconcile

LUA = Package("luascript", files=(File("/usr/share/luascript/a", "a"),), scripts={"post -p <lua>": 'print("hi")'})
TRIGGERED = Package("oldtrigger", files=(File("/usr/share/oldtrigger/a", "a"),), scripts={"triggerin -- hello": "true"})
NEEDS_MISSING = Package("needs-missing", requires=("libnothere.so.9()(64bit)",), files=(File("/usr/share/nm/x", "x"),))
NEEDS_NEWER_BASE = Package("needs-newer-libs", requires=("example-libs >= 3",), files=(File("/usr/share/nn/x", "x"),))
CLASH_A = Package("clash-a", files=(File("/usr/share/clash/same.txt", "from a\n"),))
CLASH_B = Package("clash-b", files=(File("/usr/share/clash/same.txt", "from b\n"),))
SHARE_A = Package("share-a", files=(File("/usr/share/shared/same.txt", "identical\n"),))
SHARE_B = Package("share-b", files=(File("/usr/share/shared/same.txt", "identical\n"),))
CLASH_BASE = Package("clash-base", files=(File("/usr/lib/os-release", "ID=impostor\n"),))


def assert_failed_cleanly(host: Host, before: dict, result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    assert "\nerror: " in "\n" + result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert host.state() == before, "a failed command must leave deployments, refs and the origin file alone"


# (published packages, requested, command, needles in the error): each must fail with exit 1 and change nothing.
REFUSED = {
    "unknown-package-plan": ([], ["hello", "no-such-package"], "plan", ["'no-such-package'"]),
    "unknown-package-apply": ([], ["hello", "no-such-package"], "apply", ["'no-such-package'"]),
    "unsatisfiable": (
        [NEEDS_MISSING],
        ["needs-missing"],
        "apply",
        ["nothing provides libnothere.so.9()(64bit)", "needs-missing-1.0-1"],
    ),
    "needs-newer-base": ([NEEDS_NEWER_BASE], ["needs-newer-libs"], "plan", ["needs-newer-libs", "example-libs >= 3"]),
    "lua-scriptlet": ([LUA], ["luascript"], "plan", ["luascript-1.0-1.noarch %post", "Lua scriptlets cannot run"]),
    "trigger-scriptlet": ([TRIGGERED], ["oldtrigger"], "plan", ["oldtrigger-1.0-1.noarch %trigger", "not supported"]),
    "conflict-between-packages": (
        [CLASH_A, CLASH_B],
        ["clash-a", "clash-b"],
        "plan",
        ["/usr/share/clash/same.txt is shipped by clash-a-1.0-1.noarch and clash-b-1.0-1.noarch", "different content"],
    ),
    "conflict-with-base": (
        [CLASH_BASE],
        ["clash-base"],
        "plan",
        ["/usr/lib/os-release", "clash-base-1.0-1", "base package example-release-1-1.noarch", "different content"],
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused_requests(host: Host, case: tuple) -> None:
    packages, requested, command, needles = case
    host.publish(packages)
    host.write_origin(requested)
    before = host.state()
    result = host.run(command)
    assert_failed_cleanly(host, before, result, 1, *needles)


def test_malformed_origin_reports_every_error_with_its_line(host: Host) -> None:
    host.publish([])
    host.origin.write_text(
        "[origin]\n"  # 1
        'baserefspec = "example/base"\n'  # 2
        "[packages]\n"  # 3
        "requested = [\n"  # 4
        '  "hello",\n'  # 5
        '  "",\n'  # 6
        '  "bad name here",\n'  # 7
        '  "hello",\n'  # 8
        "]\n"  # 9
        "colour = true\n"  # 10
    )
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 65)
    lines = result.stderr
    assert re.search(r"origin\.toml:6 packages\.requested\[1\]: empty package name", lines)
    assert re.search(r"origin\.toml:7 packages\.requested\[2\]: 'bad name here' is not a package spec", lines)
    assert re.search(r"origin\.toml:8 packages\.requested\[3\]: 'hello' is listed twice", lines)
    assert re.search(r"origin\.toml:10 packages\.colour: unknown key", lines)


def test_toml_syntax_error(host: Host) -> None:
    host.origin.write_text('[origin]\nbaserefspec = "example/base\n')
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 65, "origin.toml:2")


def test_a_key_given_twice(host: Host) -> None:
    host.origin.write_text('[origin]\nbaserefspec = "example/base"\nbaserefspec = "example/base"\n')
    before = host.state()
    for command in ("plan", "apply"):
        result = host.run(command)
        assert_failed_cleanly(host, before, result, 65, "origin.toml:3", 'Key "baserefspec" already exists')


def test_missing_origin_file(host: Host) -> None:
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 65, "does not exist")


def test_missing_reposdir(host: Host) -> None:
    host.write_origin(["hello"])
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "yum.repos.d does not exist")


def test_unreachable_baseurl(host: Host) -> None:
    host.write_origin(["hello"])
    exampleos.write_repo_file(host.reposdir, "gone", "http://127.0.0.1:9/nothing")
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "[gone]", "unreachable")


def test_unknown_baserefspec(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"], base="example/nope")
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "'example/nope'", "not a ref")


def test_corrupt_download_is_refused(host: Host) -> None:
    repo = host.publish([])
    with serve(repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        victim = next(repo.glob("hello-data-*.rpm"))
        data = bytearray(victim.read_bytes())
        data[-100] ^= 0xFF
        victim.write_bytes(bytes(data))
        host.write_origin(["hello"])
        before = host.state()
        result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "hello-data-1.2-1.noarch", "corrupt")


def test_identical_files_in_two_packages_are_fine(host: Host) -> None:
    host.publish([SHARE_A, SHARE_B])
    host.write_origin(["share-a", "share-b"])
    host.apply_ok()
    assert (host.deployment_path(host.default()) / "usr/share/shared/same.txt").read_text() == "identical\n"


def test_json_errors_are_one_document(host: Host) -> None:
    host.publish([])
    host.write_origin(["no-such-package"])
    result = host.run("plan", "--json")
    assert result.code == 1
    doc = result.json()
    assert doc["error"]["exit_code"] == 1 and "no-such-package" in doc["error"]["message"]


def test_usage_error_exit_code(host: Host) -> None:
    result = host.run("plan", "--no-such-flag")
    assert result.code == 64


def test_debug_shows_tracebacks_only_when_asked(host: Host) -> None:
    host.publish([])
    host.write_origin(["no-such-package"])
    assert "Traceback" in host.run("plan", "--debug").stderr


@pytest.mark.parametrize("content", [None, b"not an rpm at all"], ids=["missing", "not-an-rpm"])
def test_bad_local_package(host: Host, content: bytes | None) -> None:
    host.publish([])
    local = host.root / "local.rpm"
    if content is not None:
        local.write_bytes(content)
    host.write_origin([], extra=f'local = ["{local}"]\n')
    before = host.state()
    result = host.run("plan")
    why = "cannot be read" if content is None else "is not a valid RPM"
    assert_failed_cleanly(host, before, result, 1, f"{host.origin}: the local package {local}", why)


def test_add_to_a_missing_or_broken_origin(host: Host) -> None:
    host.publish([])
    argv = ("add", "hello", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir)
    before = host.state()
    missing = reconcile(*argv)
    assert_failed_cleanly(host, before, missing, 65, f"The origin file {host.origin} does not exist")
    host.origin.write_text('[origin]\nbaserefspec = "example/base"\n[packages\n')
    before = host.state()
    broken = reconcile(*argv)
    assert_failed_cleanly(host, before, broken, 65, f"{host.origin} is not valid TOML", f"{host.origin}:3")

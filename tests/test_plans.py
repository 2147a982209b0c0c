"""Saved plans applied exactly or refused as stale, the editing commands, rendering, and every exit code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Host
from support import RECONCILE, Dir, File, Package, exampleos, reconcile, rpm_query

P1 = Package("p", version="1.0")
P2 = Package("p", version="2.0")
Q = Package("q", requires=("q-lib",))
QLIB = Package("q-lib")
ORIGIN_WITH_COMMENTS = """# This host's packages.
[origin]
baserefspec = "example/base"  # the base

[packages]
requested = [
  "hello",  # for the greeting
]
"""


def plan_to_file(host: Host, path: Path, *args: str) -> dict:
    result = host.run("plan", "-o", path, *args)
    assert result.code in (0, 2), result.stderr
    return json.loads(path.read_text())


def assert_refused_as_stale(host: Host, plan: Path, *phrases: str) -> None:
    """Applying `plan` exits 3 with every phrase in its message, and changes nothing."""
    before = host.state()
    result = host.run("apply", plan)
    assert result.code == 3, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert host.state() == before


def test_saved_plan_applies_exactly_what_was_reviewed(host: Host, tmp_path: Path) -> None:
    host.publish([P1, Q, QLIB])
    host.write_origin(["p", "q"])
    saved = plan_to_file(host, tmp_path / "plan.json")
    assert len(saved["prior"]["fingerprint"]) == 64
    assert saved["format_version"] == "1.5"
    host.publish([P1, P2, Q, QLIB])  # the repo moves on after review
    result = host.run("apply", tmp_path / "plan.json", "--detailed-exitcode")
    assert result.code == 2, result.stderr
    assert set(host.default()["reconcile"]["layered_packages"]) == {
        "p-1.0-1.noarch",
        "q-1.0-1.noarch",
        "q-lib-1.0-1.noarch",
    }
    again = host.run("apply", tmp_path / "plan.json")
    assert again.code == 3, "the plan's deployment is gone: the plan is stale now"


def test_a_saved_plan_from_a_relative_origin_applies_from_another_directory(host: Host, tmp_path: Path) -> None:
    host.publish([P1])
    host.write_origin(["p"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    common = ["--sysroot", str(host.sysroot)]

    def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = exampleos.sysroot_env()
        return subprocess.run([RECONCILE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)

    made = run(host.root, "plan", *common, "--origin", "origin.toml", "--reposdir", "yum.repos.d", "-o", "p.json")
    assert made.returncode == 0, made.stderr
    saved = json.loads((host.root / "p.json").read_text())
    assert saved["origin"]["path"] == str(host.origin), "the plan records the origin's absolute path"
    (elsewhere / "p.json").write_bytes((host.root / "p.json").read_bytes())
    applied = run(elsewhere, "apply", *common, "--reposdir", str(host.reposdir), "--yes", "p.json")
    assert applied.returncode == 0, applied.stderr
    assert host.default()["reconcile"]["layered_packages"] == ["p-1.0-1.noarch"]


def test_stale_when_the_deployment_moved(host: Host, tmp_path: Path) -> None:
    host.publish([P1, Q, QLIB])
    host.write_origin(["p"])
    plan_to_file(host, tmp_path / "plan.json")
    other = tmp_path / "other.toml"
    other.write_text('[origin]\nbaserefspec = "example/base"\n[packages]\nrequested = ["q"]\n')
    moved = reconcile("apply", "--sysroot", host.sysroot, "--origin", other, "--reposdir", host.reposdir, "--yes")
    assert moved.code == 0, moved.stderr
    assert_refused_as_stale(host, tmp_path / "plan.json", "the deployment moved")


def test_stale_when_the_origin_changed(host: Host, tmp_path: Path) -> None:
    host.publish([P1])
    host.write_origin(["p"])
    plan_to_file(host, tmp_path / "plan.json")
    host.origin.write_text(host.origin.read_text() + "# edited after review\n")
    assert_refused_as_stale(host, tmp_path / "plan.json", "origin file", "changed")


def test_stale_when_a_pinned_package_cannot_be_fetched_as_planned(host: Host, tmp_path: Path) -> None:
    repo = host.publish([P1])
    host.write_origin(["p"])
    plan_to_file(host, tmp_path / "plan.json")
    rebuilt = host.rpms.build(Package("p", version="1.0", files=(File("/usr/share/p/other", "rebuilt\n"),)))
    target = next(repo.glob("p-1.0-1.noarch.rpm"))
    target.write_bytes(rebuilt.read_bytes())  # same NEVRA, different bytes
    assert_refused_as_stale(host, tmp_path / "plan.json", "can no longer be fetched", "p-1.0-1.noarch")


def test_unknown_plan_format_is_refused(host: Host, tmp_path: Path) -> None:
    host.publish([P1])
    host.write_origin(["p"])
    saved = plan_to_file(host, tmp_path / "plan.json")
    saved["format_version"] = "2.0"
    (tmp_path / "plan.json").write_text(json.dumps(saved))
    assert host.run("apply", tmp_path / "plan.json").code == 65
    assert reconcile("show", tmp_path / "plan.json").code == 65
    (tmp_path / "plan.json").write_text("{not json")
    assert host.run("apply", tmp_path / "plan.json").code == 65


def test_a_1_0_plan_is_still_applied(host: Host, tmp_path: Path) -> None:
    """Format 1.1 only added fields: a plan written by the previous version (without them) still applies."""
    host.publish([P1])
    host.write_origin(["p"])
    saved = plan_to_file(host, tmp_path / "plan.json")
    saved["format_version"] = "1.0"
    for key in ("repos", "keys"):
        del saved[key]
    del saved["target"]["releasever"]
    for pinned in saved["target"]["packages"]:
        del pinned["size"]
    (tmp_path / "plan.json").write_text(json.dumps(saved))
    host.apply_ok(str(tmp_path / "plan.json"))
    assert host.default()["reconcile"]["layered_packages"] == ["p-1.0-1.noarch"]


def test_show_renders_text_json_and_markdown(host: Host, tmp_path: Path) -> None:
    host.publish([Q, QLIB])
    host.write_origin(["q"])
    saved = plan_to_file(host, tmp_path / "plan.json")
    text = reconcile("show", tmp_path / "plan.json")
    assert text.code == 0
    assert "+ package/q" in text.stdout and "q-lib-1.0-1.noarch [test] (dependency: q → q-lib)" in text.stdout
    assert text.stdout.strip().splitlines()[-1].startswith("2 to add, 0 to remove")
    as_json = reconcile("show", tmp_path / "plan.json", "--format", "json")
    assert json.loads(as_json.stdout) == saved
    markdown = reconcile("show", tmp_path / "plan.json", "--format", "markdown").stdout
    assert markdown.startswith("### reconcile plan:")
    assert "| add | `q-1.0-1.noarch` | test |" in markdown
    assert "<details><summary>Dependencies (1)</summary>" in markdown and "q → q-lib" in markdown


def test_nothing_to_do_is_one_line(host: Host) -> None:
    host.write_origin([])
    result = host.run("plan")
    assert result.code == 0
    assert result.stdout == "No changes: the deployment already matches the origin.\n"


def test_json_output_is_one_document(host: Host) -> None:
    host.publish([P1])
    host.write_origin(["p"])
    for command in ("plan", "apply"):
        result = host.run(command, "--json")
        assert result.code == 0, result.stderr
        json.loads(result.stdout)  # raises if anything else reached stdout
    host.write_origin([])
    host.apply_ok()
    host.write_origin(["hello"])
    result = host.run("apply", "--json")  # the clean-up prunes objects now, and libostree talks about it
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["result"]["changed"] is True


def test_add_and_remove_keep_comments(host: Host) -> None:
    host.publish([P1])
    host.origin.write_text(ORIGIN_WITH_COMMENTS)
    result = reconcile(
        "add",
        "p",
        "--sysroot",
        host.sysroot,
        "--origin",
        host.origin,
        "--reposdir",
        host.reposdir,
        "--detailed-exitcode",
    )
    assert result.code == 2, result.stderr
    assert "+ package/p" in result.stdout
    text = host.origin.read_text()
    assert '"hello",  # for the greeting' in text and "# This host's packages." in text and '"p"' in text

    unknown = reconcile("add", "nope", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir)
    assert unknown.code == 1 and host.origin.read_text() == text, "a failed plan leaves the file alone"

    absent = reconcile(
        "remove", "absent", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir
    )
    assert absent.code == 0 and "not changed" in absent.stderr and host.origin.read_text() == text

    removed = reconcile(
        "remove", "hello", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir
    )
    assert removed.code == 0, removed.stderr
    assert "hello" not in host.origin.read_text().split("[packages]")[1]
    assert "# This host's packages." in host.origin.read_text()


def test_validate(host: Host) -> None:
    host.origin.write_text(ORIGIN_WITH_COMMENTS)
    ok = reconcile("validate", "--origin", host.origin)
    assert ok.code == 0 and "is valid" in ok.stdout
    host.origin.write_text('[origin]\nbaserefspec = ""\n')
    bad = reconcile("validate", "--origin", host.origin)
    assert bad.code == 65 and "origin.toml:2 origin.baserefspec: empty refspec" in bad.stderr


def test_lock_timeout_waits_then_exits_4(host: Host) -> None:
    host.publish([P1])
    host.write_origin(["p"])
    with host.sysroot_locked():
        before = host.state()
        result = host.run("apply", "--lock-timeout", "1")
        assert result.code == 4, result.stderr
        assert "Waiting for the lock" in result.stderr and "did not release it within 1 s" in result.stderr
        assert host.state() == before
    assert host.run("apply", "--lock-timeout", "5").code == 0, "once released, apply goes ahead"


def test_local_package_is_pinned_by_sha256(host: Host, tmp_path: Path) -> None:
    host.publish([])
    local = tmp_path / "mytool.rpm"
    local.write_bytes(host.rpms.build(Package("mytool", requires=("hello",))).read_bytes())
    host.write_origin([], extra=f'local = ["{local}"]\n')
    plan = host.run("plan", "--json").json()
    assert [c["address"] for c in plan["changes"]] == ["local/mytool"]
    added = {e["nevra"]: e for e in plan["resolution"]["added"]}
    assert added["mytool-1.0-1.noarch"]["repo"] == "@local" and "hello-1.2-1.noarch" in added
    host.apply_ok()
    dep = host.default()
    assert "mytool-1.0-1.noarch" in dep["reconcile"]["layered_packages"]
    sha = added["mytool-1.0-1.noarch"]["checksum"].removeprefix("sha256:")
    assert dep["reconcile"]["local_pins"] == [f"{sha}:mytool-1.0-1.noarch"]
    assert dep["requested-local-packages"] == ["mytool-1.0-1.noarch"], "rpm-ostree's: the NEVRAs only"
    assert host.run("plan", "--detailed-exitcode").code == 0

    local.write_bytes(host.rpms.build(Package("mytool", files=(File("/usr/share/mytool/v2", "2"),))).read_bytes())
    changed = host.run("plan", "--json").json()
    assert [(c["address"], c["actions"]) for c in changed["changes"]] == [("local/mytool", ["update"])]
    replaced = changed["resolution"]["replaced"]
    assert [(e["nevra"], e["before_checksum"]) for e in replaced] == [("mytool-1.0-1.noarch", f"sha256:{sha}")]
    assert changed["summary"]["replaced"] == 1 and "1 to replace" in changed["summary"]["text"]
    text = host.run("plan").stdout
    assert "None" not in text, text
    assert f"mytool-1.0-1.noarch [@local] (build sha256:{sha[:12]} → sha256:" in text, text

    host.write_origin([])
    gone = host.run("plan").stdout
    assert "None" not in gone and f"local/mytool  no longer requested: was {sha}:mytool-1.0-1.noarch" in gone, gone


def test_override_remove_drops_a_base_package(host: Host) -> None:
    host.write_origin([], extra='[overrides]\nremove = ["example-libs"]\n')
    plan = host.run("plan", "--json").json()
    assert [c["address"] for c in plan["changes"]] == ["override-remove/example-libs"]
    assert [e["nevra"] for e in plan["resolution"]["removed"]] == [f"example-libs-2.1-1.{_arch()}"]
    host.apply_ok()
    dep = host.default()
    assert [p[0] for p in dep["base-removals"]] == [f"example-libs-2.1-1.{_arch()}"]
    tree = host.deployment_path(dep)
    assert not (tree / "usr/lib64/libexample.so.1").exists()
    assert (tree / "usr/lib64").is_dir(), "a directory other base packages own stays"
    qa = rpm_query(tree, "-qa", "--qf", "%{NAME}\\n").split()
    assert "example-libs" not in qa and "example-shell" in qa

    host.write_origin([], extra='[overrides]\nremove = ["example-filesystem"]\n')
    before = host.state()
    refused = host.run("apply")
    assert refused.code == 1 and "example-filesystem" in refused.stderr
    assert host.state() == before


def _arch() -> str:
    import os

    return os.uname().machine


def _in_terminal(argv: list[str], env: dict[str, str], answer: str | None = None) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as stdin/stdout/stderr, answering a prompt once if asked."""
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(argv[0], argv, env)
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if answer is not None and not answered and b"[y/N]" in output:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def _terminal_command(host: Host, command: str) -> list[str]:
    from support import RECONCILE

    host.publish([P1])
    host.write_origin(["p"])
    return [
        RECONCILE,
        command,
        "--sysroot",
        str(host.sysroot),
        "--origin",
        str(host.origin),
        "--reposdir",
        str(host.reposdir),
    ]


def test_colour_on_a_terminal_only_and_never_with_no_color(host: Host) -> None:
    argv = _terminal_command(host, "plan")
    env = {k: v for k, v in exampleos.sysroot_env().items() if k != "NO_COLOR"} | {"TERM": "xterm-256color"}
    code, coloured = _in_terminal(argv, env)
    assert code == 0 and "\x1b[32m+ package/p" in coloured
    code, plain = _in_terminal(argv, env | {"NO_COLOR": "1"})
    assert code == 0 and "+ package/p" in plain and "\x1b[3" not in plain
    assert "\x1b[" not in host.run("plan").stdout


def test_apply_asks_on_a_terminal(host: Host) -> None:
    argv = _terminal_command(host, "apply")
    before = host.state()
    code, output = _in_terminal(argv, exampleos.sysroot_env(), answer="n")
    assert code == 1 and "Aborted; nothing was changed." in output
    assert host.state() == before
    code, output = _in_terminal(argv, exampleos.sysroot_env(), answer="y")
    assert code == 0 and "Deployed" in output


def test_a_request_the_base_has_stays_inactive_beside_a_removal(host: Host) -> None:
    host.publish([])
    host.write_origin(["example-release"], extra='[overrides]\nremove = ["example-libs"]\n')
    result = host.run("plan", "--json")
    assert result.code == 0, result.stderr
    plan = result.json()
    assert plan["resolution"]["inactive"] == [{"spec": "example-release", "provided_by": "example-release-1-1.noarch"}]
    assert [e["nevra"] for e in plan["resolution"]["removed"]] == [f"example-libs-2.1-1.{_arch()}"]
    assert plan["resolution"]["added"] == []


def test_removing_a_base_package_keeps_other_packages_var_content(host: Host) -> None:
    shared = Dir("/var/lib/shared")
    va = Package("va", files=(shared, File("/var/lib/shared/a", "a\n")))
    vb = Package("vb", files=(shared, File("/var/lib/shared/b", "b\n")))
    host.add_base("vardata", [va, vb])
    host.publish([])
    host.write_origin([], base="example/vardata", extra='[overrides]\nremove = ["va"]\n')
    host.apply_ok()
    tree = host.deployment_path(host.default())
    factory = tree / "usr/share/factory/var/lib/shared"
    assert (factory / "b").read_text() == "b\n"
    assert not (factory / "a").exists()
    assert not (tree / "usr/lib/tmpfiles.d/reconcile-pkg-va.conf").exists()
    assert "/var/lib/shared/b" in (tree / "usr/lib/tmpfiles.d/reconcile-pkg-vb.conf").read_text()


def test_corrupt_solv_caches_are_rebuilt(host: Host) -> None:
    host.publish([P1, Q, QLIB])
    host.write_origin(["q"])
    first = host.run("plan", "--json").json()["resolution"]
    caches = sorted((host.sysroot / "ostree/deploy/example/var/cache/reconcile").rglob("*.solv"))
    assert len(caches) >= 2, "the base and the repo are cached"
    for cache in caches:
        cache.write_bytes(b"not a solv file")
    again = host.run("plan", "--json")
    assert again.code == 0, again.stderr
    assert again.json()["resolution"] == first
    assert all(c.read_bytes()[:4] == b"SOLV" for c in caches), "rewritten"


def test_a_no_op_plan_marks_requested_packages_like_a_resolved_one(host: Host) -> None:
    dotted = Package("tool-2.0-compat", requires=("q-lib",), files=(File("/usr/share/tool2/a", "a\n"),))
    host.publish([dotted, QLIB])
    host.write_origin(["tool-2.0-compat"])
    resolved = host.run("plan", "--json").json()["target"]["packages"]
    host.apply_ok()
    no_op = host.run("plan", "--json").json()
    assert not no_op["has_changes"]
    flags = {p["name"]: p["requested"] for p in no_op["target"]["packages"]}
    assert flags == {p["name"]: p["requested"] for p in resolved} == {"tool-2.0-compat": True, "q-lib": False}

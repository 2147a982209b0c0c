"""Scriptlets, users and the rpmdb: real packages with %pre/%post/%posttrans, file triggers and accounts,
run in bubblewrap over an overlay of the new tree, compared with what rpm itself does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import Host, needs_sandbox
from support import Dir, File, Package, ostree, rpm_query
from test_compose import assert_empty_boot
from test_payload import ALTFILES
from test_reference import reference_root

from reconcile.apply.sandbox import SCRIPT_PATH

pytestmark = needs_sandbox
ORDER = "/usr/share/scripted/order.log"
SCRIPTS_A = Package(
    "scripts-a",
    files=(Dir("/usr/share/scripted"), File("/usr/share/scripted/a.txt", "a\n")),
    scripts={
        "pre": f"mkdir -p /usr/share/scripted && echo 'pre a' >> {ORDER}",
        "post": f"echo 'post a' >> {ORDER}\necho generated > /usr/share/scripted/generated",
        "posttrans": f"ls /usr/share/scripted > /usr/share/scripted/posttrans-saw\necho 'posttrans a' >> {ORDER}",
    },
)
SCRIPTS_B = Package(
    "scripts-b",
    requires_pre=("scripts-a",),
    files=(File("/usr/share/scripted/b.txt", "b\n"),),
    scripts={"pre": f"echo 'pre b' >> {ORDER}", "post": f"echo 'post b' >> {ORDER}"},
)
TRIGGER = Package(
    "trigger-watch",
    files=(Dir("/usr/share/watched"),),
    scripts={"transfiletriggerin -- /usr/share/watched": "cat > /usr/share/trigger-saw"},
)
WATCHED = Package(
    "watched-files",
    files=(File("/usr/share/watched/one", "1\n"), File("/usr/share/watched/two", "2\n")),
)
SYSUSERS = Package(
    "svc-sysusers",
    files=(
        File("/usr/lib/sysusers.d/svc.conf", 'u svcuser - "Service user" /var/lib/svc\n'),
        Dir("/usr/share/svc", mode=0o750, user="svcuser", group="svcuser"),
        File("/usr/share/svc/state", "x\n", mode=0o640, user="svcuser", group="svcuser"),
    ),
)
PRE_USER = Package(
    "svc-pre",
    files=(File("/usr/share/svc-pre/data", "x\n", user="preuser", group="preuser"),),
    scripts={"pre": "getent group preuser >/dev/null || groupadd -r preuser\n"
             "getent passwd preuser >/dev/null || useradd -r -g preuser -s /sbin/nologin preuser"},
)  # fmt: skip
FAILING = Package(
    "failing",
    files=(File("/usr/share/failing/x", "x\n"),),
    scripts={"post": "echo 'about to fail'\necho 'something went wrong' >&2\nexit 3"},
)
TAMPERING = Package(
    "tampering",
    files=(File("/usr/share/tampering/x", "x\n"),),
    scripts={"post": "echo 'TAMPERED=1' >> /usr/lib/os-release\nrm -f /usr/share/tampering/x"},
)
APPENDER = Package(
    "appender",
    files=(File("/usr/share/appender/seed", "seed\n"),),
    scripts={"post": "echo line >> /usr/share/appender/log"},
)


def tree(host: Host) -> Path:
    return host.deployment_path(host.default())


def test_phases_run_in_rpm_order(host: Host) -> None:
    host.publish([SCRIPTS_A, SCRIPTS_B])
    host.write_origin(["scripts-b"])
    plan = host.run("plan", "--json").json()
    runs = sorted(c["message"] for c in plan["checks"] if c["kind"] == "scriptlet")
    assert any("scripts-a-1.0-1.noarch: will run %posttrans" in m for m in runs)
    result = host.apply_ok("--json")
    steps = [t["step"] for t in result.json()["result"]["timings"]]
    assert [s for s in steps if s.startswith("Running")] == [
        "Running scripts-a.%pre (scripts-a-1.0-1.noarch)",
        "Running scripts-b.%pre (scripts-b-1.0-1.noarch)",
        "Running scripts-a.%post (scripts-a-1.0-1.noarch)",
        "Running scripts-b.%post (scripts-b-1.0-1.noarch)",
        "Running scripts-a.%posttrans (scripts-a-1.0-1.noarch)",
    ], "each script's duration is in the apply report"
    t = tree(host)
    assert (t / ORDER.lstrip("/")).read_text().split("\n")[:-1] == ["pre a", "pre b", "post a", "post b", "posttrans a"]
    assert (t / "usr/share/scripted/generated").read_text() == "generated\n"
    saw = (t / "usr/share/scripted/posttrans-saw").read_text().split()
    assert {"a.txt", "b.txt", "generated", "order.log"} <= set(saw)


def test_file_trigger_sees_the_added_files(host: Host) -> None:
    host.publish([TRIGGER, WATCHED])
    host.write_origin(["trigger-watch", "watched-files"])
    host.apply_ok()
    assert (tree(host) / "usr/share/trigger-saw").read_text().split() == [
        "/usr/share/watched/one",
        "/usr/share/watched/two",
    ]


def test_users_from_sysusers_and_pre_scripts_own_their_files(host: Host) -> None:
    host.publish([SYSUSERS, PRE_USER, APPENDER])
    host.write_origin(["svc-sysusers", "svc-pre"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert any("will create the user 'svcuser' (sysusers.d)" in c["message"] for c in plan.json()["checks"])
    host.apply_ok()
    t = tree(host)
    passwd = {line.split(":")[0]: line.split(":") for line in (t / "usr/etc/passwd").read_text().splitlines()}
    group = {line.split(":")[0]: line.split(":") for line in (t / "usr/etc/group").read_text().splitlines()}
    svc_uid, pre_uid = int(passwd["svcuser"][2]), int(passwd["preuser"][2])
    assert 201 <= svc_uid <= 999 and 201 <= pre_uid <= 999 and svc_uid != pre_uid
    assert passwd["svcuser"][4] == "Service user" and passwd["svcuser"][5] == "/var/lib/svc"
    st = os.lstat(t / "usr/share/svc/state")
    assert (st.st_uid, st.st_gid) == (svc_uid, int(group["svcuser"][2]))
    assert os.lstat(t / "usr/share/svc-pre/data").st_uid == pre_uid
    assert "svcuser" in (t / "etc/passwd").read_text(), "ostree's /etc merge brings the accounts to /etc"

    host.write_origin(["svc-sysusers", "svc-pre", "appender"])
    host.apply_ok()
    again = {line.split(":")[0]: line.split(":") for line in (tree(host) / "usr/etc/passwd").read_text().splitlines()}
    assert (int(again["svcuser"][2]), int(again["preuser"][2])) == (svc_uid, pre_uid), "ids stay stable"


def test_a_failing_script_fails_the_apply(host: Host) -> None:
    host.publish([FAILING])
    host.write_origin(["failing"])
    before = host.state()
    result = host.run("apply")
    assert result.code == 1
    assert "The %post scriptlet of failing-1.0-1.noarch failed with exit code 3" in result.stderr
    assert "about to fail" in result.stderr and "something went wrong" in result.stderr
    assert host.state() == before, "nothing deployed and no ref moved"
    assert "bubblewrap" not in result.stderr

    debug = host.run("apply", "--debug")
    assert debug.code == 1
    logged = [line for line in debug.stderr.splitlines() if "bubblewrap for failing.%post" in line]
    assert logged, debug.stderr
    command = logged[0].split(": ", 2)[-1]
    assert command.startswith("unshare --mount ") and " bwrap --bind " in command and "--unshare-net" in command
    assert command.endswith(f"/bin/sh {SCRIPT_PATH} 1"), command
    assert "exit 3" in debug.stderr, "the script itself is logged too"


def test_scripts_never_write_repo_objects(host: Host) -> None:
    repo = host.sysroot / "ostree/repo"
    before = ostree(f"--repo={repo}", "cat", host.base.commit, "/usr/lib/os-release")
    host.publish([TAMPERING])
    host.write_origin(["tampering"])
    host.apply_ok()
    t = tree(host)
    assert (t / "usr/lib/os-release").read_text().endswith("TAMPERED=1\n"), "the deployment has the script's edit"
    assert not (t / "usr/share/tampering/x").exists(), "and its deletion"
    assert ostree(f"--repo={repo}", "cat", host.base.commit, "/usr/lib/os-release") == before
    assert "TAMPERED" not in ostree(f"--repo={repo}", "cat", host.base.commit, "/usr/lib/os-release")
    # host.check_with_ostree() at teardown runs ostree fsck on the repo


def test_boot_stays_an_empty_mount_point_in_the_layered_commit(host: Host) -> None:
    host.publish(
        [
            Package(
                "bootish",
                files=(File("/boot/bootish.img", "img\n"),),
                scripts={"post": "mkdir -p /boot/loader && echo entry > /boot/loader/from-post"},
            )
        ]
    )
    host.write_origin(["bootish"])
    host.apply_ok()
    commit = host.default()["checksum"]
    assert_empty_boot(host.sysroot / "ostree/repo", commit)
    assert (tree(host) / "usr/lib/ostree-boot/bootish.img").read_text() == "img\n", "package /boot content moves"


def test_scripts_rerun_on_a_tree_rebuilt_from_the_base(host: Host) -> None:
    host.publish([APPENDER, SCRIPTS_A])
    host.write_origin(["appender"])
    host.apply_ok()
    assert (tree(host) / "usr/share/appender/log").read_text() == "line\n"
    host.write_origin(["appender", "scripts-a"])
    host.apply_ok()
    assert (tree(host) / "usr/share/appender/log").read_text() == "line\n", "not appended twice"


def test_no_scripts_means_no_checkout(host: Host) -> None:
    host.publish([])
    host.write_origin(["frob"])
    steps = [t["step"] for t in host.apply_ok("--json").json()["result"]["timings"]]
    assert not any(s.startswith(("Running", "Folding")) for s in steps)


def test_the_rpmdb_answers_rpm_queries(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello", "frob"])
    host.apply_ok()
    t = tree(host)
    assert {"hello-1.2-1.noarch", "example-shell-1.35-1." + os.uname().machine} <= set(rpm_query(t, "-qa").split())
    assert rpm_query(t, "-q", "--whatprovides", "libfrob.so.2()(64bit)").startswith("libfrob-2.4-1")
    assert rpm_query(t, "-q", "--whatprovides", "/bin/sh").startswith("example-shell")
    verify = subprocess.run(
        ["rpm", "--root", str(t), "--dbpath", "/usr/share/rpm", "-V", "--nomtime", "hello", "hello-data"],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and verify.stdout == "", verify.stdout
    frob = rpm_query(t, "-V", "--nomtime", "frob")
    assert frob.split() == ["missing", "/var/lib/frob"], "the documented /var relocation, nothing else"


@pytest.mark.parametrize("packages", [[SCRIPTS_A, SCRIPTS_B], [TRIGGER, WATCHED]], ids=["phases", "trigger"])
def test_script_results_equal_rpm_install(host: Host, tmp_path: Path, packages: list[Package]) -> None:
    """rpm -i with its scripts (in a chroot) on a copy of the base makes the same files."""
    host.publish(packages)
    host.write_origin([p.name for p in packages])
    host.apply_ok()
    ref = reference_root(host.base, [host.rpms.build(p) for p in packages], tmp_path / "ref", scripts=True)
    t = tree(host)
    made = ["usr/share/scripted/generated", "usr/share/scripted/posttrans-saw"]
    made = made if packages[0] is SCRIPTS_A else ["usr/share/trigger-saw"]
    for rel in made:
        assert (t / rel).read_text() == (ref / rel).read_text(), rel
    if packages[0] is SCRIPTS_A:
        # rpm interleaves each package's %pre and %post; reconcile runs every %pre first (as rpm-ostree does),
        # so the same lines come in the documented phase order.
        ours, rpms = (p.read_text().splitlines() for p in (t / ORDER.lstrip("/"), ref / ORDER.lstrip("/")))
        assert sorted(ours) == sorted(rpms) and rpms == ["pre a", "post a", "pre b", "post b", "posttrans a"]


CYCLE_A = Package("cycle-a", requires=("cycle-b",), files=(File("/usr/share/cycle/a", "a"),), scripts={"pre": "true"})
CYCLE_B = Package(
    "cycle-b", requires_pre=("cycle-a",), files=(File("/usr/share/cycle/b", "b"),), scripts={"pre": "true"}
)


def test_a_dependency_cycle_is_broken_at_its_plain_requires(host: Host) -> None:
    """cycle-a Requires cycle-b, cycle-b Requires(pre) cycle-a: rpm drops the plain Requires, so a goes first."""
    host.publish([CYCLE_A, CYCLE_B])
    host.write_origin(["cycle-a", "cycle-b"])
    steps = [t["step"] for t in host.apply_ok("--json").json()["result"]["timings"] if t["step"].startswith("Running")]
    assert steps == ["Running cycle-a.%pre (cycle-a-1.0-1.noarch)", "Running cycle-b.%pre (cycle-b-1.0-1.noarch)"]


def test_the_ignore_list(host: Host) -> None:
    host.publish([FAILING])
    host.write_origin(["failing"], extra='\n[options]\nignore_scripts = ["failing.%post"]\n')
    plan = host.run("plan", "--json").json()
    assert any(c["message"] == "failing-1.0-1.noarch: ignores %post (on the ignore list)." for c in plan["checks"])
    host.apply_ok()
    assert (tree(host) / "usr/share/failing/x").exists()
    origin = tree(host).parent / f"{tree(host).name}.origin"
    assert "ignore-scripts=failing.%post;" in origin.read_text()


def test_users_go_where_the_base_keeps_them(host: Host) -> None:
    """With nss-altfiles (/usr/lib/passwd), system users are added there."""
    host.add_base("alt", [ALTFILES])
    host.publish([SYSUSERS])
    host.write_origin(["svc-sysusers"], base="example/alt")
    host.apply_ok()
    t = tree(host)
    assert "svcuser:x:" in (t / "usr/lib/passwd").read_text()
    assert "altuser:x:777" in (t / "usr/lib/passwd").read_text(), "the base's own accounts are kept"
    assert "svcuser" not in (t / "usr/etc/passwd").read_text()

""".repo semantics as dnf has them, end to end: compressed metadata, variables ($releasever from the base),
booleans, skip_if_unavailable, priority and cost, excludes, metadata_expire, dnf.conf's [main], and offline
work (--cache-only, apply --download-only, plans that need no repo that is down)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pty
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Host, base_checksum
from servers import serve
from support import RECONCILE, File, Package, exampleos
from test_bad_input import assert_failed_cleanly

ARCH = os.uname().machine


def nevras(host: Host) -> list[str]:
    return host.default()["reconcile"]["layered_packages"]


def etc_of(host: Host) -> Path:
    return host.deployment_path(host.default()) / "etc"


# -- metadata compression ---------------------------------------------------------------------------------
def recompress_zstd(repo: Path) -> None:
    """createrepo_c 0.17 cannot write zstd: recompress its gzip output and rewrite repomd.xml to match."""
    repodata = repo / "repodata"
    repomd = (repodata / "repomd.xml").read_text()
    for gz in sorted(repodata.glob("*.xml.gz")):
        raw = gzip.decompress(gz.read_bytes())
        zst = gz.with_name(gz.name.removesuffix(".gz") + ".zst")
        subprocess.run(["zstd", "-q", "-f", "-o", str(zst)], input=raw, check=True)
        data = zst.read_bytes()
        old_sum = hashlib.sha256(gz.read_bytes()).hexdigest()
        repomd = repomd.replace(f"repodata/{gz.name}", f"repodata/{zst.name}").replace(
            old_sum, hashlib.sha256(data).hexdigest()
        )
        entry = rf"(<location href=\"repodata/{re.escape(zst.name)}\"/>\s*<timestamp>\d+</timestamp>\s*<size>)\d+"
        repomd = re.sub(entry, rf"\g<1>{len(data)}", repomd)
        gz.unlink()
    (repodata / "repomd.xml").write_text(repomd)


@pytest.mark.parametrize("compression", ["xz", "bz2", "zstd"])
def test_compressed_metadata(host: Host, compression: str) -> None:
    repo = host.publish([])
    if compression == "zstd":
        recompress_zstd(repo)
    else:
        shutil.rmtree(repo / "repodata")
        argv = [
            "createrepo_c",
            "--quiet",
            "--no-database",
            "--simple-md-filenames",
            f"--general-compress-type={compression}",
        ]
        exampleos.run([*argv, str(repo)])
    suffix = {"xz": ".xz", "bz2": ".bz2", "zstd": ".zst"}[compression]
    assert all(p.name.endswith(suffix) for p in (repo / "repodata").glob("*primary*"))
    host.write_origin(["frob", "/usr/share/hello/greetings"])  # a path: the file lists are read too
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    host.apply_ok()
    assert f"frob-3.0-2.{ARCH}" in nevras(host)


# -- variables ------------------------------------------------------------------------------------------
RELEASE_42 = Package("example-system-release", provides=("system-release(releasever) = 42",))
RELEASE_43 = Package("example-system-release", version="43", provides=("system-release",))


def publish_at(host: Host, subdir: str) -> Path:
    target = host.root / "mirror" / subdir
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(host.publish([]), target, dirs_exist_ok=True)
    return target


def test_releasever_from_the_base_os_release_override_and_vars_files(host: Host) -> None:
    for subdir in (f"1/{ARCH}", f"42/{ARCH}", f"43/{ARCH}", f"7/{ARCH}", "custom/thing"):
        publish_at(host, subdir)
    mirror = host.root / "mirror"
    exampleos.write_repo_file(host.reposdir, "test", f"file://{mirror}/$releasever/$basearch/")
    host.write_origin(["hello"])
    plan = host.run("plan", "--json")  # ExampleOS has no system-release: VERSION_ID=1 of its os-release
    assert plan.code == 0, plan.stderr
    assert plan.json()["target"]["releasever"] == "1"
    assert plan.json()["repos"][0]["url"].rstrip("/").endswith(f"mirror/1/{ARCH}")

    host.add_base("rel42", [RELEASE_42])
    host.write_origin(["hello"], base="example/rel42")
    assert host.run("plan", "--json").json()["target"]["releasever"] == "42"
    host.add_base("rel43", [RELEASE_43])  # an unversioned system-release: the providing package's version
    host.write_origin(["hello"], base="example/rel43")
    assert host.run("plan", "--json").json()["target"]["releasever"] == "43"

    host.write_origin(["hello"], extra='\n[options]\nreleasever = "7"\n')
    doc = host.run("plan", "--json").json()
    assert doc["target"]["releasever"] == "7" and doc["repos"][0]["url"].rstrip("/").endswith(f"7/{ARCH}")

    vars_dir = etc_of(host) / "dnf" / "vars"
    vars_dir.mkdir(parents=True)
    (vars_dir / "flavour").write_text("custom\n")
    (vars_dir / "kind").write_text("thing\n")
    exampleos.write_repo_file(host.reposdir, "test", f"file://{mirror}/${{flavour}}/$kind")
    host.write_origin(["hello"])
    host.apply_ok()


def test_an_unknown_variable_in_a_url_names_file_and_line(host: Host) -> None:
    host.publish([])
    path = exampleos.write_repo_file(host.reposdir, "test", f"file://{host.rpm_repo}/$archive/x")
    host.write_origin(["hello"])
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, f"{path}:3", "$archive", "not defined")


# -- booleans and options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["Yes", "TRUE", "on", "1"])
def test_enabled_as_dnf_reads_it(host: Host, value: str) -> None:
    host.publish([])
    exampleos.write_repo_file(host.reposdir, "test", f"file://{host.rpm_repo}", enabled=value)
    host.write_origin(["hello"])
    assert host.run("plan").code == 0


def test_a_bad_boolean_names_file_and_line(host: Host) -> None:
    host.publish([])
    path = exampleos.write_repo_file(host.reposdir, "test", f"file://{host.rpm_repo}", gpgcheck="maybe")
    host.write_origin(["hello"])
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, f"{path}:5", "gpgcheck='maybe' is not a boolean")


def test_unknown_options_are_ignored_and_unapplied_trust_options_warned(host: Host) -> None:
    host.publish([])
    exampleos.write_repo_file(
        host.reposdir, "test", f"file://{host.rpm_repo}", countme=1, deltarpm=0, module_hotfixes=1
    )
    (etc_of(host) / "dnf").mkdir(parents=True, exist_ok=True)
    (etc_of(host) / "dnf" / "dnf.conf").write_text("[main]\ninstall_weak_deps=False\nfastestmirror=True\n")
    host.write_origin(["hello"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    warnings = plan.json()["warnings"]
    assert any("install_weak_deps" in w and "dnf.conf:2" in w for w in warnings), warnings
    assert any("module_hotfixes" in w for w in warnings), warnings
    assert not any("countme" in w or "deltarpm" in w or "fastestmirror" in w for w in warnings), warnings


def test_skip_if_unavailable(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    exampleos.write_repo_file(host.reposdir, "gone", "http://127.0.0.1:9/nothing", skip_if_unavailable="yes")
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert any("[gone]" in w and "skip_if_unavailable" in w for w in plan.json()["warnings"])
    exampleos.write_repo_file(host.reposdir, "gone", "http://127.0.0.1:9/nothing")
    before = host.state()
    assert_failed_cleanly(host, before, host.run("plan"), 1, "[gone]", "gone.repo", "unreachable")


def test_dnf_conf_main_gives_the_defaults(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    exampleos.write_repo_file(host.reposdir, "gone", "http://127.0.0.1:9/nothing", skip_if_unavailable=None)
    (etc_of(host) / "dnf").mkdir(parents=True, exist_ok=True)
    (etc_of(host) / "dnf" / "dnf.conf").write_text("[main]\nskip_if_unavailable=True\ngpgcheck=1\n")
    (host.reposdir / "test.repo").write_text(f"[test]\nbaseurl=file://{host.rpm_repo}\n")  # gpgcheck from [main]
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "[test] has gpgcheck=1 but no gpgkey")


V1 = Package("pick", version="1.0", files=(File("/usr/share/pick/v", "1\n"),))
V2 = Package("pick", version="2.0", files=(File("/usr/share/pick/v", "2\n"),))


def _two_repos(host: Host, low: dict, high: dict) -> None:
    for name, pkg, options in (("old", V1, low), ("new", V2, high)):
        repo = host.root / f"{name}-repo"
        host.rpms.repo(repo, [pkg])
        exampleos.write_repo_file(host.reposdir, name, f"file://{repo}", **options)


def test_a_lower_priority_value_wins_over_a_newer_version(host: Host) -> None:
    _two_repos(host, {"priority": 10}, {"priority": 50})
    host.write_origin(["pick"])
    added = host.run("plan", "--json").json()["resolution"]["added"]
    assert [(e["nevra"], e["repo"]) for e in added] == [("pick-1.0-1.noarch", "old")]
    _two_repos(host, {}, {})
    added = host.run("plan", "--json").json()["resolution"]["added"]
    assert [(e["nevra"], e["repo"]) for e in added] == [("pick-2.0-1.noarch", "new")]


def test_cost_picks_the_repo_for_the_same_build(host: Host) -> None:
    for name, cost in (("far", 2000), ("near", 100)):
        repo = host.root / f"{name}-repo"
        host.rpms.repo(repo, [V2])
        exampleos.write_repo_file(host.reposdir, name, f"file://{repo}", cost=cost)
    host.write_origin(["pick"])
    added = host.run("plan", "--json").json()["resolution"]["added"]
    assert [e["repo"] for e in added] == ["near"]


def test_excludepkgs_and_includepkgs(host: Host) -> None:
    _two_repos(host, {}, {"excludepkgs": "pick-2*"})
    host.write_origin(["pick"])
    added = host.run("plan", "--json").json()["resolution"]["added"]
    assert [e["nevra"] for e in added] == ["pick-1.0-1.noarch"]
    _two_repos(host, {"exclude": "pick"}, {"includepkgs": "other"})
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "'pick'", "excludepkgs of [old]")


# -- metadata_expire and offline work ----------------------------------------------------------------------
def _repomd_requests(server) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for path, _ in server.faults.log if path.endswith("repomd.xml"))


def test_metadata_expire(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    with serve(host.rpm_repo) as server:
        path = exampleos.write_repo_file(host.reposdir, "test", server.url)
        assert host.run("plan").code == 0
        assert _repomd_requests(server) == 1
        assert host.run("plan").code == 0
        assert _repomd_requests(server) == 1, "within metadata_expire no request is made"
        assert host.run("plan", "--refresh").code == 0
        assert _repomd_requests(server) == 2
        time.sleep(0.05)
        path.touch()  # an edited repo file is read afresh, as dnf's check_config_file_age
        assert host.run("plan").code == 0
        assert _repomd_requests(server) == 3
        exampleos.write_repo_file(host.reposdir, "test", server.url, metadata_expire=0)
        for _ in range(2):
            assert host.run("plan").code == 0
        assert _repomd_requests(server) == 5


def test_cache_only_and_download_only(host: Host) -> None:
    host.publish([])
    host.write_origin(["frob"])
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        port = server.port
        assert host.run("plan").code == 0
    before = host.state()
    plan = host.run("plan", "-C", "--json")  # the server is gone: nothing is asked of the network
    assert plan.code == 0, plan.stderr
    offline = host.run("apply", "--cache-only")
    assert_failed_cleanly(host, before, offline, 1, "--cache-only", f"frob-3.0-2.{ARCH}", "--download-only")

    with serve(host.rpm_repo, port=port):
        staged = host.run("apply", "--download-only", "--json")
        assert staged.code == 0, staged.stderr
        assert staged.json()["result"]["changed"] is False
    assert host.state() == before, "--download-only deploys nothing"
    assert len(host.downloaded()) == 3
    host.apply_ok("-C")
    assert f"frob-3.0-2.{ARCH}" in nevras(host)
    assert host.downloaded() == []
    assert host.run("plan", "-C", "--detailed-exitcode").code == 0


def test_plans_that_need_nothing_new_do_not_need_a_repo_that_is_down(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello", "frob"])
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, metadata_expire=0)
        host.apply_ok()
    host.write_origin(["hello"])  # the server is down now
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert any("[test]" in w and "needs no package from it" in w for w in plan.json()["warnings"])
    host.apply_ok()
    assert {n.split("-1")[0] for n in nevras(host)} == {"hello", "hello-data"}

    host.add_base("b2", [Package("example-extra-tool")])
    host.write_origin(["hello"], base="example/b2")  # a base change whose packages are all cached
    host.apply_ok()
    assert base_checksum(host.default()) != base_checksum(host.status()["deployments"][1])

    host.write_origin(["hello", "frob"], base="example/b2")  # frob is nowhere now: the down repo is named
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "[test]", "unreachable", "No package matches 'frob'")

    extra = host.root / "extra-repo"
    host.rpms.repo(extra, [V1])
    exampleos.write_repo_file(host.reposdir, "extra", f"file://{extra}")
    host.write_origin(["hello", "pick"], base="example/b2")  # resolvable, but pick must be downloaded
    before = host.state()
    needs_download = host.run("plan")
    assert_failed_cleanly(host, before, needs_download, 1, "[test]", "unreachable", "must download pick-1.0-1.noarch")
    host.write_origin(["hello"], base="example/b2")
    before = host.state()
    update = host.run("plan", "--update")
    assert_failed_cleanly(host, before, update, 1, "[test]", "--update asks every repo")


def test_a_progress_bar_on_a_terminal_and_nothing_but_json_on_stdout(host: Host) -> None:
    packages = [Package(f"bar{i}", files=(File(f"/usr/share/bar{i}/x", os.urandom(50_000)),)) for i in range(4)]
    host.publish(packages, examples=False)
    host.write_origin([p.name for p in packages])
    from servers import Faults

    with serve(host.rpm_repo, Faults(delay=0.3)) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        assert host.run("plan").code == 0
        master, slave = pty.openpty()
        argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
        env = {**exampleos.sysroot_env(), "TERM": "xterm", "COLUMNS": "120"}
        proc = subprocess.run(
            [*map(str, argv), "--yes", "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
    assert proc.returncode == 0
    import json

    assert json.loads(proc.stdout)["result"]["changed"] is True
    terminal = b"".join(chunks).decode(errors="replace")
    assert re.search(r"\d+/4 files", terminal), terminal[-2000:]
    assert "Downloading 4 package(s)" in terminal

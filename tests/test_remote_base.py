"""The base from its remote: an archive-mode OSTree repo served over HTTP on 127.0.0.1, with successive base
commits composed from the example distribution (the second updates example-libs, which a layered package
depends on). Plans fetch the commit and the paths they read, not the tree; apply pulls the rest; plans keep
the deployed base until --update; pins by commit and version; signed commits."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Host, base_checksum
from servers import Server, serve
from support import File, Package, exampleos, ostree, rpm_query
from test_bad_input import assert_failed_cleanly

ARCH = os.uname().machine
REF = "exampleos/stable"
# The base's example-libs 2.1 and a newer build; widget 1 works with 2.1 only, widget 2 needs 2.2.
LIBS_22 = Package(
    "example-libs",
    "2.2",
    arch="native",
    requires=("example-filesystem",),
    provides=("libexample.so.1()(64bit)",),
    files=(File("/usr/lib64/libexample.so.1", b"libexample 2.2\n"),),
)
# Big enough that fetching the tree at plan time would show in the byte counts.
BLOB = Package("example-blob", files=(File("/usr/share/example-blob/blob", os.urandom(3_000_000)),))
WIDGET_1 = Package("widget", "1.0", requires=("example-libs < 2.2",))
WIDGET_2 = Package("widget", "2.0", requires=("example-libs >= 2.2",))


@dataclass
class Remote:
    """An archive repo with the ref REF, served over HTTP and configured in the sysroot's repo as `exo`."""

    path: Path
    server: Server
    host: Host

    def publish(self, source: Path, source_ref: str, version: str, timestamp: int) -> str:
        """A new commit of REF with the tree of `source_ref` (its parent: REF's previous commit)."""
        ostree(f"--repo={self.path}", "pull-local", source, source_ref)
        out = ostree(
            f"--repo={self.path}",
            "commit",
            f"--branch={REF}",
            f"--tree=ref={source_ref}",
            f"--add-metadata-string=version={version}",
            f"--timestamp=@{timestamp}",
            f"--subject=ExampleOS {version}",
        )
        ostree(f"--repo={self.path}", "summary", "-u")
        return out.strip()

    def sign(self, home: Path, key: str) -> None:
        ostree(f"--repo={self.path}", "gpg-sign", f"--gpg-homedir={home}", REF, key)
        ostree(f"--repo={self.path}", "summary", "-u")

    def served(self) -> list[str]:
        return [path for path, _range in self.server.faults.log]

    def served_bytes(self) -> int:
        files = [self.path / p.split("/remote/", 1)[1] for p in self.served() if _object(p)]
        return sum(f.stat().st_size for f in files if f.is_file())


def _object(path: str) -> bool:
    return "/objects/" in path


@pytest.fixture
def remote(host: Host, tmp_path: Path) -> Iterator[Remote]:
    root = tmp_path / "served"
    repo = root / "remote"
    repo.mkdir(parents=True)
    ostree(f"--repo={repo}", "init", "--mode=archive")
    with serve(root) as server:
        sysrepo = host.sysroot / "ostree" / "repo"
        ostree(f"--repo={sysrepo}", "remote", "add", "--no-gpg-verify", "exo", f"{server.url}/remote")
        yield Remote(repo, server, host)


@pytest.fixture
def two_bases(host: Host, remote: Remote) -> tuple[str, str]:
    """REF at version 1 (the example base plus BLOB), then version 2 (example-libs 2.2)."""
    v1 = host.compose("v1", [BLOB])
    v2 = host.compose("v2", [BLOB, LIBS_22])
    first = remote.publish(v1.repo, v1.ref, "1", 1_700_000_000)
    second = remote.publish(v2.repo, v2.ref, "2", 1_700_086_400)
    return first, second


def _write(host: Host, requested: list[str]) -> None:
    host.write_origin(requested, base=f"exo:{REF}")


def _origin_with(host: Host, requested: list[str], origin_keys: str) -> None:
    items = ", ".join(f'"{r}"' for r in requested)
    host.origin.write_text(f'[origin]\nbaserefspec = "exo:{REF}"\n{origin_keys}\n\n[packages]\nrequested = [{items}]\n')


def _publish_v1_only(host: Host, remote: Remote) -> str:
    v1 = host.compose("v1", [BLOB])
    return remote.publish(v1.repo, v1.ref, "1", 1_700_000_000)


def test_a_remote_base_is_fetched_in_part_to_plan_and_whole_to_apply(host: Host, remote: Remote) -> None:
    first = _publish_v1_only(host, remote)
    host.publish([WIDGET_1, WIDGET_2])
    _write(host, ["widget"])
    before = host.state()
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["target"]["base_checksum"] == first
    assert doc["base"]["after_version"] == "1" and doc["base"]["chosen"] == "the remote's newest"
    assert doc["changes"][0]["address"] == "base"
    # The plan read the commit, the rpmdb and a few small files: not the 3 MB blob, not the tree.
    fetched = doc["base"]["fetched_bytes"]
    assert 0 < fetched < 1_000_000, fetched
    assert remote.served_bytes() < 1_000_000
    assert host.state() == before, "a plan moves no ref and makes no deployment"
    assert "widget-1.0-1.noarch" in [p["nevra"] for p in doc["resolution"]["added"]]

    remote.server.faults.log.clear()
    applied = host.apply_ok()
    assert "Pulled the base" in applied.stderr
    assert remote.served_bytes() > 3_000_000 * 0.9  # the rest, with the blob (compressed random data)
    default = host.default()
    assert base_checksum(default) == first and default["origin"] == f"exo:{REF}"
    assert default["reconcile"]["layered_packages"] == ["widget-1.0-1.noarch"]
    assert (host.deployment_path(default) / "usr/share/example-blob/blob").stat().st_size == 3_000_000


def test_update_shows_the_base_move_its_package_diff_and_the_layered_packages_that_follow(
    host: Host, remote: Remote
) -> None:
    first = _publish_v1_only(host, remote)
    host.publish([WIDGET_1, WIDGET_2])
    _write(host, ["widget"])
    host.apply_ok()
    v2 = host.compose("v2", [BLOB, LIBS_22])
    second = remote.publish(v2.repo, v2.ref, "2", 1_700_086_400)

    remote.server.faults.log.clear()
    plain = host.run("plan", "--detailed-exitcode")
    assert plain.code == 0 and remote.served() == [], "without --update the deployed base is kept, offline"
    status = host.run("status")
    assert "Update" not in status.stdout  # no plan has looked yet

    update = host.run("plan", "--update")
    assert update.code == 0, update.stderr
    text = update.stdout
    assert re.search(
        r"~ base\s+the base moves to a newer commit .*: 1 \(" + first[:12] + r"\) → 2 \(" + second[:12], text
    ), text
    assert "Base packages to upgrade:\n  ↑ example-libs 2.1-1." in text, text
    assert "widget 1.0-1.noarch → 2.0-1.noarch" in text, text
    doc = host.run("plan", "--update", "--json").json()
    assert doc["base"]["direction"] == "upgrade"
    libs = doc["base"]["packages"]["upgraded"]
    assert [(c["name"], c["before"].split("-")[2], c["after"].split("-")[2]) for c in libs] == [
        ("example-libs", "2.1", "2.2")
    ]
    assert [e["after"] for e in doc["resolution"]["upgraded"]] == ["widget-2.0-1.noarch"]

    status = host.run("status")
    assert f"available: 2 ({second})" in status.stdout, status.stdout
    assert host.status()["deployments"][0]["reconcile"]["update_available"] == f"2 ({second})"

    host.apply_ok("--update")
    default = host.default()
    assert base_checksum(default) == second
    assert default["reconcile"]["layered_packages"] == ["widget-2.0-1.noarch"]
    assert "example-libs-2.2-1" in rpm_query(host.deployment_path(default), "-qa")
    assert host.status()["deployments"][0]["reconcile"]["update_available"] is None


def test_a_pinned_older_version_is_a_downgrade(host: Host, remote: Remote, two_bases: tuple[str, str]) -> None:
    first, second = two_bases
    host.publish([WIDGET_1, WIDGET_2])
    _write(host, ["widget"])
    host.apply_ok()
    assert base_checksum(host.default()) == second
    _origin_with(host, ["widget"], 'version = "1"')
    planned = host.run("plan", "--json")
    assert planned.code == 0, planned.stdout + planned.stderr
    doc = planned.json()
    assert doc["base"]["direction"] == "downgrade" and doc["base"]["after"] == first
    assert [c["name"] for c in doc["base"]["packages"]["downgraded"]] == ["example-libs"]
    assert [e["after"] for e in doc["resolution"]["downgraded"]] == ["widget-1.0-1.noarch"]
    text = host.run("plan").stdout
    assert "downgrade: to an older base commit" in text and "Base packages to downgrade:" in text, text
    host.apply_ok()
    assert base_checksum(host.default()) == first
    assert f"override-commit={first}" in _origin_keyfile(host)
    assert "base-version=1" in _origin_keyfile(host)
    # The pin holds against --update, and the same declaration is a no-op.
    assert host.run("plan", "--update", "--detailed-exitcode").code == 0


def test_bad_remotes_and_pins_are_clear_errors_that_change_nothing(
    host: Host, remote: Remote, two_bases: tuple[str, str]
) -> None:
    host.publish([WIDGET_1, WIDGET_2])
    host.write_origin(["widget"], base=f"nosuch:{REF}")
    before = host.state()
    result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "'nosuch'", "configured remotes: exo")

    _origin_with(host, ["widget"], 'version = "41.9"')
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "version '41.9'", "does not have", "newest first: 2, 1")

    _origin_with(host, ["widget"], f'commit = "{"ab" * 32}"')
    before = host.state()
    assert_failed_cleanly(host, before, host.run("apply"), 1, f"the commit {'ab' * 32}", "does not have")

    _origin_with(host, ["widget"], 'commit = "not-a-checksum"')
    before = host.state()
    assert_failed_cleanly(host, before, host.run("plan"), 65, "origin.toml:3", "not an OSTree commit checksum")

    host.write_origin(["widget"], base=f"exo:{REF}/nosuch")
    before = host.state()
    assert_failed_cleanly(host, before, host.run("apply"), 1, "remote 'exo'", f"{REF}/nosuch")


def test_an_unreachable_remote_is_named(host: Host, remote: Remote, two_bases: tuple[str, str]) -> None:
    host.publish([WIDGET_1])
    _write(host, ["widget"])
    remote.server.faults.status["/summary"] = 503
    remote.server.faults.status["/config"] = 503
    before = host.state()
    result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "remote 'exo'", remote.server.url)


def test_signed_commits_are_verified_by_libostree(host: Host, remote: Remote, tmp_path: Path) -> None:
    first = _publish_v1_only(host, remote)
    sysrepo = host.sysroot / "ostree" / "repo"
    ostree(f"--repo={sysrepo}", "config", "set", 'remote "exo".gpg-verify', "true")
    host.publish([WIDGET_1])
    _write(host, ["widget"])
    before = host.state()
    unsigned = host.run("apply")
    assert_failed_cleanly(host, before, unsigned, 1, "remote 'exo'", "no signature", "gpg-verify=true")

    signer = exampleos.make_signing_key(tmp_path / "signer", "base-signer")
    stranger = exampleos.make_signing_key(tmp_path / "stranger", "stranger")
    try:
        remote.sign(signer.home, signer.fingerprint)
        subprocess.run(
            ["ostree", f"--repo={sysrepo}", "remote", "gpg-import", f"--keyring={stranger.public}", "exo"],
            check=True,
            capture_output=True,
        )
        untrusted = host.run("apply")
        assert_failed_cleanly(host, before, untrusted, 1, "remote 'exo'", signer.fingerprint[-16:], "does not trust")

        subprocess.run(
            ["ostree", f"--repo={sysrepo}", "remote", "gpg-import", f"--keyring={signer.public}", "exo"],
            check=True,
            capture_output=True,
        )
        host.apply_ok()
        assert base_checksum(host.default()) == first
    finally:
        exampleos.stop_agent(signer)
        exampleos.stop_agent(stranger)


def _origin_keyfile(host: Host) -> str:
    deploy = host.sysroot / "ostree" / "deploy" / exampleos.OSNAME / "deploy"
    dep = host.default()
    return (deploy / f"{dep['checksum']}.{dep['serial']}.origin").read_text()

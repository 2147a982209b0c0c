"""The repository layer against real servers on 127.0.0.1: HTTPS with a CA made in the test, client
certificates, metalinks and mirror lists whose first mirror is dead, dropped connections, a trickle below
minrate, a proxy with credentials, parallel downloads; every failure names the repo, its file and the URLs."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Host
from servers import Faults, Pki, dead_url, forward_proxy, make_pki, serve
from support import RECONCILE, File, Package, exampleos
from test_bad_input import assert_failed_cleanly

ARCH = os.uname().machine
BIG = Package("bigdata", files=(File("/usr/share/bigdata/blob", os.urandom(300_000)),))


@pytest.fixture(scope="session")
def pki(session_dir: Path) -> Pki:
    return make_pki(session_dir / "pki")


def nevras(host: Host) -> list[str]:
    return host.default()["reconcile"]["layered_packages"]


def test_https_with_a_ca_made_in_the_test(host: Host, pki: Pki) -> None:
    host.publish([])
    host.write_origin(["hello"])
    with serve(host.rpm_repo, tls=pki.tls()) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        before = host.state()
        untrusted = host.run("plan")
        assert_failed_cleanly(host, before, untrusted, 1, "[test]", "test.repo", server.url, "unreachable")
        assert re.search(r"certificate|SSL|issuer", untrusted.stderr, re.IGNORECASE), untrusted.stderr

        exampleos.write_repo_file(host.reposdir, "test", server.url, sslcacert=pki.other_ca)
        assert_failed_cleanly(host, before, host.run("plan"), 1, "[test]", server.url)

        exampleos.write_repo_file(host.reposdir, "test", server.url, sslverify="False")
        assert host.run("plan").code == 0

        exampleos.write_repo_file(host.reposdir, "test", server.url, sslcacert=pki.ca)
        host.apply_ok()
    assert "hello-1.2-1.noarch" in nevras(host)


def test_https_requiring_a_client_certificate(host: Host, pki: Pki) -> None:
    host.publish([])
    host.write_origin(["frob"])
    with serve(host.rpm_repo, tls=pki.tls(require_client=True)) as server:
        exampleos.write_repo_file(host.reposdir, "cdn", server.url, sslcacert=pki.ca)
        before = host.state()
        refused = host.run("plan")
        assert_failed_cleanly(host, before, refused, 1, "[cdn]", "cdn.repo", server.url)
        exampleos.write_repo_file(
            host.reposdir,
            "cdn",
            server.url,
            sslcacert=pki.ca,
            sslclientcert=pki.client_cert,
            sslclientkey=pki.client_key,
        )
        host.apply_ok()
    assert f"frob-3.0-2.{ARCH}" in nevras(host)


def _metalink(path: Path, repo: Path, urls: list[str], sha256: str | None = None) -> None:
    repomd = (repo / "repodata" / "repomd.xml").read_bytes()
    digest = sha256 or hashlib.sha256(repomd).hexdigest()
    entries = "\n".join(
        f'<url protocol="http" type="http" location="XX" preference="{100 - i}">{u}/repodata/repomd.xml</url>'
        for i, u in enumerate(urls)
    )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic">\n'
        f' <files><file name="repomd.xml"><size>{len(repomd)}</size>\n'
        f'  <verification><hash type="sha256">{digest}</hash></verification>\n'
        f'  <resources maxconnections="1">\n{entries}\n  </resources>\n'
        " </file></files>\n</metalink>\n"
    )


@contextmanager
def metalink_repo(host: Host, mirrors: list[str], sha256: str | None = None) -> Iterator[str]:
    """The test repo on a mirror, listed in a metalink after `mirrors` (with its true hash unless given one);
    the repo file [fedora] names only the metalink. Yields the good mirror's URL."""
    host.publish([])
    host.write_origin(["frob"])
    lists = host.root / "lists"
    lists.mkdir()
    with serve(host.rpm_repo) as mirror, serve(lists) as mirrormanager:
        _metalink(lists / "metalink", host.rpm_repo, [*mirrors, mirror.url], sha256)
        exampleos.write_repo_file(host.reposdir, "fedora", None, metalink=f"{mirrormanager.url}/metalink")
        yield mirror.url


def test_metalink_with_a_dead_first_mirror(host: Host) -> None:
    with metalink_repo(host, [dead_url()]) as mirror:
        plan = host.run("plan", "--json")
        assert plan.code == 0, plan.stderr
        assert plan.json()["repos"][0]["url"].startswith(mirror)
        host.apply_ok()
    assert f"frob-3.0-2.{ARCH}" in nevras(host)


def test_metalink_hash_mismatch_is_corrupt(host: Host) -> None:
    with metalink_repo(host, [], sha256="0" * 64) as mirror:
        before = host.state()
        result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "[fedora]", "fedora.repo", "corrupt", mirror)
    assert "unreachable" not in result.stderr


def test_mirrorlist_with_a_dead_first_mirror(host: Host) -> None:
    host.publish([])
    host.write_origin(["frob"])
    lists = host.root / "lists"
    lists.mkdir()
    with serve(host.rpm_repo) as mirror, serve(lists) as lister:
        (lists / "mirrorlist").write_text(f"# mirrors\n{dead_url()}\n{mirror.url}\n")
        exampleos.write_repo_file(host.reposdir, "centos", None, mirrorlist=f"{lister.url}/mirrorlist")
        host.apply_ok()
    assert f"frob-3.0-2.{ARCH}" in nevras(host)


@pytest.mark.parametrize("separator", [",", " ", "\n  "])
def test_baseurl_lists(host: Host, separator: str) -> None:
    host.publish([])
    host.write_origin(["hello"])
    with serve(host.rpm_repo) as mirror:
        exampleos.write_repo_file(host.reposdir, "test", f"{dead_url()}{separator}{mirror.url}")
        host.apply_ok()
    assert "hello-1.2-1.noarch" in nevras(host)


def test_a_dropped_connection_fails_over_to_the_next_mirror(host: Host) -> None:
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    with (
        serve(host.rpm_repo, Faults(drop_after={"bigdata-1.0-1.noarch.rpm": 20_000})) as flaky,
        serve(host.rpm_repo) as good,
    ):
        exampleos.write_repo_file(host.reposdir, "test", f"{flaky.url} {good.url}")
        host.apply_ok()
        assert any(p.endswith("bigdata-1.0-1.noarch.rpm") for p, _ in flaky.faults.log)
        assert any(p.endswith("bigdata-1.0-1.noarch.rpm") and not r for p, r in good.faults.log), (
            flaky.faults.log,
            good.faults.log,
        )
    assert "bigdata-1.0-1.noarch" in nevras(host)


@pytest.mark.parametrize("retries", [0, 10])
def test_retries(host: Host, retries: int) -> None:
    """A mirror that answers 503 six times: librepo's own tries per round are not enough, dnf's retries are."""
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, retries=retries)
        assert host.run("plan").code == 0
        server.faults.fail_first["bigdata-1.0-1.noarch.rpm"] = 6
        before = host.state()
        result = host.run("apply")
        if retries:
            assert result.code == 0, result.stderr
            assert "Retrying 1 download(s)" in result.stderr
        else:
            assert_failed_cleanly(host, before, result, 1, "bigdata-1.0-1.noarch", "[test]", "Status code: 503")


def test_an_interrupted_download_resumes(host: Host) -> None:
    """apply is killed mid-download; the next apply asks only for the rest (an HTTP Range request)."""
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    rpm_name = "bigdata-1.0-1.noarch.rpm"
    with serve(host.rpm_repo, Faults(trickle={rpm_name: 20_000})) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        assert host.run("plan").code == 0  # metadata and header read, at full speed
        argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
        proc = subprocess.Popen([*map(str, argv), "--yes"], env=exampleos.sysroot_env(), stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                files = list((host.cachedir / "packages").rglob(rpm_name))
                if files and files[0].stat().st_size > 30_000:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the download never started")
        finally:
            proc.kill()  # the process this test started, by its PID
            proc.wait()
        size = files[0].stat().st_size
        server.faults.trickle.clear()
        server.faults.log.clear()
        host.apply_ok()
        ranges = [r for p, r in server.faults.log if p.endswith(rpm_name)]
    assert ranges and ranges[0].startswith("bytes="), ranges
    assert int(ranges[0][6:].split("-")[0]) >= size - 65536, (ranges, size)
    assert "bigdata-1.0-1.noarch" in nevras(host)
    assert host.downloaded() == []


def test_a_stale_file_of_the_same_name_is_fetched_afresh(host: Host) -> None:
    """A leftover partial under the package's name that is another build (a rebuilt NEVRA) does not block it:
    the resumed file fails its checksum and is fetched whole again (librepo does that per mirror)."""
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        assert host.run("plan").code == 0
        stale = host.cachedir / "packages"
        plan = host.run("plan", "--json").json()
        [pinned] = plan["target"]["packages"]
        key = next((host.cachedir / "repos").iterdir()).name
        (stale / key).mkdir(parents=True)
        leftover = stale / key / pinned["location"]
        leftover.write_bytes(os.urandom(400_000))  # longer than the real one, and marked as librepo marks a partial
        os.setxattr(leftover, "user.Librepo.DownloadInProgress", b"1")
        host.apply_ok()
    assert "bigdata-1.0-1.noarch" in nevras(host)


def test_a_transfer_below_minrate_is_abandoned(host: Host) -> None:
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    with serve(host.rpm_repo) as slow:
        exampleos.write_repo_file(host.reposdir, "test", slow.url, timeout=2, minrate=5000, retries=0)
        assert host.run("plan").code == 0
        slow.faults.trickle["bigdata-1.0-1.noarch.rpm"] = 200
        before = host.state()
        start = time.monotonic()
        result = host.run("apply")
        took = time.monotonic() - start
    assert_failed_cleanly(host, before, result, 1, "bigdata-1.0-1.noarch", "[test]", slow.url)
    assert re.search(r"too slow|timed out|Timeout", result.stderr, re.IGNORECASE), result.stderr
    assert took < 30, f"abandoned only after {took:.0f} s"


def test_parallel_downloads(host: Host) -> None:
    packages = [Package(f"par{i}", files=(File(f"/usr/share/par{i}/x", f"{i}\n"),)) for i in range(6)]
    host.publish(packages, examples=False)
    host.write_origin([p.name for p in packages])
    with serve(host.rpm_repo, Faults(delay=0.4)) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, max_parallel_downloads=3)
        assert host.run("plan").code == 0
        server.faults.log.clear()
        server.faults.concurrency.clear()
        host.apply_ok()
        assert max(server.faults.concurrency) == 3, server.faults.concurrency


def test_a_proxy_with_credentials(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    with serve(host.rpm_repo) as origin_server, forward_proxy("alice", "s3cret") as proxy:
        exampleos.write_repo_file(
            host.reposdir, "test", origin_server.url, proxy=proxy.url, proxy_username="alice", proxy_password="wrong"
        )
        before = host.state()
        assert_failed_cleanly(host, before, host.run("plan"), 1, "[test]", origin_server.url)
        exampleos.write_repo_file(
            host.reposdir, "test", origin_server.url, proxy=proxy.url, proxy_username="alice", proxy_password="s3cret"
        )
        host.apply_ok()
    assert any(p.endswith("repomd.xml") for p in proxy.seen) and any(p.endswith(".rpm") for p in proxy.seen)


def test_a_corrupt_primary_is_called_corrupt(host: Host) -> None:
    repo = host.publish([])
    primary = next((repo / "repodata").glob("*primary.xml.gz"))
    data = bytearray(primary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    primary.write_bytes(bytes(data))
    host.write_origin(["hello"])
    with serve(repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        before = host.state()
        result = host.run("plan")
    assert_failed_cleanly(host, before, result, 1, "[test]", "test.repo", "corrupt", server.url)
    assert "unreachable" not in result.stderr


def test_a_primary_that_matches_its_checksum_but_is_not_rpm_md_names_its_file_and_url(host: Host) -> None:
    repo = host.publish([])
    primary = next((repo / "repodata").glob("*primary.xml.gz"))
    opened = b"<metadata this is not rpm-md"
    packed = gzip.compress(opened)
    primary.write_bytes(packed)
    repomd = repo / "repodata" / "repomd.xml"
    text = repomd.read_text()
    block = re.search(r'<data type="primary">.*?</data>', text, re.S)
    assert block is not None
    new = re.sub(r"(<checksum [^>]*>)[0-9a-f]+", rf"\g<1>{hashlib.sha256(packed).hexdigest()}", block.group(0))
    new = re.sub(r"(<open-checksum [^>]*>)[0-9a-f]+", rf"\g<1>{hashlib.sha256(opened).hexdigest()}", new)
    new = re.sub(r"<size>\d+", f"<size>{len(packed)}", new)
    new = re.sub(r"<open-size>\d+", f"<open-size>{len(opened)}", new)
    repomd.write_text(text.replace(block.group(0), new))
    host.write_origin(["hello"])
    with serve(repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url)
        before = host.state()
        result = host.run("plan")
    href = primary.relative_to(repo)
    assert_failed_cleanly(host, before, result, 1, "[test]", "test.repo", "corrupt", f"{server.url}/{href}")
    assert "unreachable" not in result.stderr


def _sysroot_lock_is_free(host: Host) -> bool:
    import fcntl

    with open(host.sysroot / "ostree" / "lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_a_mirror_that_is_slow_but_above_minrate_meets_the_deadline_and_the_sysroot_lock_stays_free(
    host: Host,
) -> None:
    """minrate never fires on 4 kB/s; the transfer deadline does, and the download ran without the lock."""
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    rpm_name = "bigdata-1.0-1.noarch.rpm"
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, minrate=100, retries=0)
        assert host.run("plan").code == 0
        server.faults.trickle[rpm_name] = 4000  # 300 kB: 75 s
        before = host.state()
        argv = [RECONCILE, "apply", "--sysroot", host.sysroot, "--origin", host.origin, "--reposdir", host.reposdir]
        start = time.monotonic()
        proc = subprocess.Popen(
            [*map(str, argv), "--yes", "--transfer-deadline", "4"],
            env=exampleos.sysroot_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            free_while_downloading = []
            while proc.poll() is None:
                files = list((host.cachedir / "packages").rglob(rpm_name))
                if files and files[0].stat().st_size > 0:
                    free_while_downloading.append(_sysroot_lock_is_free(host))
                time.sleep(0.2)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()  # the process this test started, by its PID
        took = time.monotonic() - start
    assert proc.returncode == 1, err
    assert free_while_downloading and all(free_while_downloading), free_while_downloading
    assert "transfer deadline of 4 s" in err and "bytes/s" in err, err
    assert "[test]" in err and f"{server.url}/{rpm_name}" in err and "bigdata-1.0-1.noarch" in err, err
    assert "Traceback" not in err
    assert took < 30, f"abandoned only after {took:.0f} s"
    assert host.state() == before


def test_repo_metadata_slower_than_the_deadline_is_abandoned(host: Host) -> None:
    host.publish([])
    host.write_origin(["hello"])
    with serve(host.rpm_repo, Faults(trickle={"repomd.xml": 300})) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, minrate=100, retries=0)
        before = host.state()
        start = time.monotonic()
        result = host.run("plan", "--transfer-deadline", "2")
        took = time.monotonic() - start
    assert_failed_cleanly(host, before, result, 1, "repomd.xml", "[test]", server.url, "transfer deadline of 2 s")
    assert took < 20, f"abandoned only after {took:.0f} s"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Faults(drop_after={"bigdata-1.0-1.noarch.rpm": 50}), ("Cannot download",)),
        (Faults(trickle={"bigdata-1.0-1.noarch.rpm": 1}), ("too slow",)),
        (Faults(missing={"bigdata-1.0-1.noarch.rpm"}), ("404",)),
        (Faults(corrupt={"bigdata-1.0-1.noarch.rpm"}), ("is corrupt",)),
    ],
    ids=["reset", "stall", "missing", "corrupt"],
)
def test_a_network_failure_reading_a_header_at_plan_time_names_the_repo_package_and_url(
    host: Host, fault: Faults, words: tuple[str, ...]
) -> None:
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    with serve(host.rpm_repo, fault) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, timeout=2, minrate=1000, retries=0)
        before = host.state()
        result = host.run("plan")
    rpm_url = f"{server.url}/bigdata-1.0-1.noarch.rpm"
    assert_failed_cleanly(host, before, result, 1, "[test]", "bigdata-1.0-1.noarch", rpm_url, *words)
    assert "internal error" not in result.stderr


def test_a_corrupt_package_download_at_apply_time_is_called_corrupt(host: Host) -> None:
    host.publish([BIG], examples=False)
    host.write_origin(["bigdata"])
    rpm_name = "bigdata-1.0-1.noarch.rpm"
    with serve(host.rpm_repo) as server:
        exampleos.write_repo_file(host.reposdir, "test", server.url, retries=0)
        assert host.run("plan").code == 0  # the header read whole and well
        server.faults.corrupt.add(rpm_name)
        before = host.state()
        result = host.run("apply")
    assert_failed_cleanly(host, before, result, 1, "[test]", "bigdata-1.0-1.noarch", "is corrupt", server.url)
    assert "unreachable" not in result.stderr and "server is up" not in result.stderr
    assert host.downloaded() == [], "the damaged file is not kept"


def test_an_unchanged_local_repo_is_read_in_place_and_a_changed_one_fetched_again(host: Host) -> None:
    host.publish([Package("first")])
    host.write_origin(["first"])
    assert host.run("plan").code == 0
    state = next(host.cachedir.rglob("state.json"))
    fetched = state.read_bytes()
    assert host.run("plan").code == 0
    assert state.read_bytes() == fetched, "the same repomd.xml was fetched again through librepo"

    host.publish([Package("first"), Package("second")])
    host.write_origin(["second"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    assert [e["name"] for e in plan.json()["resolution"]["added"]] == ["second"]
    assert state.read_bytes() != fetched

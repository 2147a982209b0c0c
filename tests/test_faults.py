"""Starve it: a fault-injecting HTTP server on 127.0.0.1 at each point reconcile fetches from (repomd.xml,
primary metadata, a signing key, a header read at plan time, a package at apply time), with each fault
(404, 500, reset, truncated, a body that never comes, a trickle below minrate, damaged bytes). Every case must
fail within bounds, naming the repo and the URL, with nothing changed and no traceback. `make test` runs one
fault per point; `make reliability` (RECONCILE_RELIABILITY=full) runs every pair."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import Host
from servers import Faults, serve
from support import File, Package, exampleos
from test_bad_input import assert_failed_cleanly

FULL = os.environ.get("RECONCILE_RELIABILITY") == "full"
BIG = Package("faulty", files=(File("/usr/share/faulty/blob", os.urandom(200_000)),))
RPM = "faulty-1.0-1.noarch.rpm"
# Each repo option keeps a case short: no retry rounds, and a stall or trickle is given up after 2 s.
OPTIONS = {"retries": 0, "timeout": 2, "minrate": 1000}


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Faults, str], None]  # (the server's faults, the path suffix to hit)
    words: tuple[str, ...]


FAULTS = [
    Fault("404", lambda f, p: f.missing.add(p), ("404",)),
    Fault("500", lambda f, p: f.status.__setitem__(p, 500), ("500",)),
    Fault("reset", lambda f, p: f.reset_after.__setitem__(p, 100), ()),
    Fault("truncated", lambda f, p: f.drop_after.__setitem__(p, 100), ()),
    Fault("stall", lambda f, p: f.stall.add(p), ("too slow",)),
    Fault("trickle", lambda f, p: f.trickle.__setitem__(p, 20), ("too slow",)),
    Fault("corrupt", lambda f, p: f.corrupt.add(p), ("corrupt",)),
]
POINTS = ["repomd", "primary", "key", "header", "package"]


def _cases() -> list[tuple[str, Fault]]:
    if FULL:
        return [(point, fault) for point in POINTS for fault in FAULTS]
    return [(point, FAULTS[(i * 2 + 1) % len(FAULTS)]) for i, point in enumerate(POINTS)]  # one fault per point


@pytest.mark.parametrize(("point", "fault"), _cases(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_a_fault_at_a_fetch_point_fails_cleanly_naming_the_repo_and_url(
    host: Host, keys: dict, point: str, fault: Fault
) -> None:
    repo = host.publish([BIG], examples=False)
    host.write_origin(["faulty"])
    options: dict[str, object] = dict(OPTIONS)
    suffix = {"repomd": "repomd.xml", "primary": "primary.xml.gz", "key": "key.asc"}.get(point, RPM)
    if point == "primary":
        suffix = next((repo / "repodata").glob("*primary.xml*")).name
    if point == "key":
        shutil.copy(keys["trusted"].public, repo / "key.asc")
    with serve(repo) as server:
        if point == "key":
            options.update(gpgcheck=1, gpgkey=f"{server.url}/key.asc")
        exampleos.write_repo_file(host.reposdir, "test", server.url, **options)
        command = "plan"
        if point == "package":
            assert host.run("plan").code == 0, "metadata and header read whole before the fault"
            command = "apply"
        fault.inject(server.faults, suffix)
        before = host.state()
        start = time.monotonic()
        result = host.run(command)
        took = time.monotonic() - start
        words = ("not a usable key",) if (point, fault.name) == ("key", "corrupt") else fault.words  # no checksum
        assert_failed_cleanly(host, before, result, 1, "[test]", server.url, *words)
        if point == "package":
            server.faults.__init__()  # the mirror heals: the next apply finishes from what was kept
            converged = host.run("apply")
    assert "internal error" not in result.stderr, result.stderr
    assert took < 30, f"{took:.0f} s"
    if point in ("header", "package"):
        assert "faulty-1.0-1.noarch" in result.stderr, result.stderr
    if point == "package":
        assert converged.code == 0, converged.stderr
        assert host.downloaded() == []

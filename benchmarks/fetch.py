"""P7: fetch 40 packages from a local HTTP server that adds 20 ms to every response, against `dnf download`
of the same packages in the same run; both start cold (no metadata, no packages) every sample."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data import RECONCILE, BenchData, exampleos
from benchmarks.measure import Series, repeat, timed

DELAY = 0.020
COUNT = 40


class _DelayedHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real mirror
    delay = DELAY

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # As real servers do: without it, headers and body sent apart meet the client's delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # every response waits `delay` first, like a distant mirror
        if self.delay:
            time.sleep(self.delay)
        super().do_GET()


@contextmanager
def delayed_server(root: Path, delay: float = DELAY) -> Iterator[str]:
    kind = type("_Handler", (_DelayedHandler,), {"delay": delay})

    def handler(*args: object) -> http.server.BaseHTTPRequestHandler:
        return kind(*args, directory=str(root))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class FetchTimes:
    ours: Series
    dnf: Series
    ours_one: Series  # the same commands fetching one package: what does not grow with the packages
    dnf_one: Series
    count: int

    @property
    def marginal_ratio(self) -> float:
        """How the part that grows with the packages compares (40 packages minus 1, medians)."""
        return (self.ours.median - self.ours_one.median) / (self.dnf.median - self.dnf_one.median)


def fetch_comparison(data: BenchData, work: Path, sysroot: Path, origin: Path, reps: int) -> FetchTimes:
    """reconcile apply --download-only against dnf download, fetching COUNT packages and one."""
    names = data.layer_names[:COUNT]
    repo = work / "p7-repo"
    shutil.rmtree(repo, ignore_errors=True)
    rpms = [next(data.rpm_repo.glob(f"{name}-1.0-1.*.rpm")) for name in names]
    exampleos.make_repo(rpms, repo)
    reposdir = work / "p7-repos.d"
    cache, dnf_cache, dest = work / "p7-cache", work / "p7-dnf-cache", work / "p7-dnf-dest"

    def cold() -> None:
        for path in (cache, dnf_cache, dest):
            shutil.rmtree(path, ignore_errors=True)

    with delayed_server(repo) as url:
        exampleos.write_repo_file(reposdir, "p7", url)

        def ours_argv(wanted: list[str]) -> list[str]:
            one = origin.with_name(f"p7-origin-{len(wanted)}.toml")
            items = ", ".join(f'"{n}"' for n in wanted)
            one.write_text(origin.read_text().split("requested")[0] + f"requested = [{items}]\n")
            argv = [RECONCILE, "apply", "--sysroot", str(sysroot), "--origin", str(one), "--reposdir", str(reposdir)]
            return [*argv, "--cachedir", str(cache), "--download-only", "--yes", "--json"]

        def dnf_argv(wanted: list[str]) -> list[str]:
            argv = ["dnf", "download", "--disableplugin=local", f"--setopt=reposdir={reposdir}"]
            argv.append(f"--setopt=cachedir={dnf_cache}")
            return [*argv, "--releasever=1", "--destdir", str(dest), "-q", *wanted]

        def ours(wanted: list[str]) -> float:
            seconds, _proc = timed(ours_argv(wanted))
            assert len(list((cache / "packages").rglob("*.rpm"))) == len(wanted), "reconcile fetched too little"
            return seconds

        def theirs(wanted: list[str]) -> float:
            seconds, _proc = timed(dnf_argv(wanted))
            assert len(list(dest.glob("*.rpm"))) == len(wanted), "dnf fetched too little"
            return seconds

        times = FetchTimes(Series(), Series(), Series(), Series(), len(names))
        for _ in range(reps):  # alternate, so a slow phase of the machine hits both sides
            for series, measure, wanted in (
                (times.ours, ours, names),
                (times.dnf, theirs, names),
                (times.ours_one, ours, names[:1]),
                (times.dnf_one, theirs, names[:1]),
            ):
                series.seconds += repeat(1, functools.partial(measure, wanted), cold).seconds
    return times

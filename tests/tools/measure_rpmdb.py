"""Time of writing a layered tree's rpmdb into an OSTree repo, today's whole copy against the delta (the base's
file kept, rpm's changes in the write-ahead log): build_rpmdb + writing the objects + the transaction's commit
(its fsyncs), min and median of N runs.

Usage: python tests/tools/measure_rpmdb.py BASE_RPMDB.sqlite PACKAGE.rpm [N]
(a big base: `rpm --dbpath D --define '_db_backend sqlite' --justdb --nodeps --install` of many RPMs)."""

from __future__ import annotations

import shutil
import stat
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reconcile.ostree import Repo
from reconcile.rpm import rpmdb


def _stream(repo: Repo, path: Path) -> str:
    with open(path, "rb") as f:
        return repo.write_file_stream(
            0, 0, stat.S_IFREG | 0o644, path.stat().st_size, iter(lambda: f.read(8 << 20), b"")
        )


def whole(repo: Repo, base: Path, headers: list[tuple[str, bytes]], work: Path) -> int:
    """What reconcile did before the delta: copy, rpm --justdb, the whole file into the repo."""
    (work / "rpmdb").mkdir()
    db = work / "rpmdb" / rpmdb.RPMDB_FILE
    shutil.copyfile(base, db)
    rpmdb._run_rpm(work / "rpmdb", headers, [], work, {"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    _stream(repo, db)
    return db.stat().st_size


def delta(repo: Repo, base: Path, headers: list[tuple[str, bytes]], work: Path) -> int:
    built = rpmdb.build_rpmdb((base, None), headers, [], work)
    assert built.wal is not None and built.shm is not None, "the delta fell back to a whole database"
    _stream(repo, built.wal)
    _stream(repo, built.shm)
    return built.wal.stat().st_size + built.shm.stat().st_size


def main() -> None:
    base, pkg = Path(sys.argv[1]), Path(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    headers = [(pkg.name, pkg.read_bytes())]
    with tempfile.TemporaryDirectory(prefix="measure-rpmdb-", dir="/var/tmp") as tmp:
        for name, fn in (("whole (today)", whole), ("delta (WAL)", delta)):
            times, size = [], 0
            for i in range(runs):
                path = Path(tmp) / f"repo-{fn.__name__}-{i}"  # a fresh repo: every run writes its objects
                repo = Repo.open_or_create(path)
                (path / "tmp").mkdir(exist_ok=True)
                work = Path(tempfile.mkdtemp(dir=path / "tmp"))
                t0 = time.perf_counter()
                with repo.transaction():
                    size = fn(repo, base, headers, work)
                times.append(time.perf_counter() - t0)
                shutil.rmtree(path)
            print(
                f"{name}: min {min(times):.3f} s, median {statistics.median(times):.3f} s, "
                f"{size / 1e6:.2f} MB written (base {base.stat().st_size / 1e6:.1f} MB)"
            )


if __name__ == "__main__":
    main()

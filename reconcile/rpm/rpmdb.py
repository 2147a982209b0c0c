"""The rpmdb inside a tree: read the base's packages from a commit without a checkout, and write a new
database for base + layered packages with rpm itself (`--justdb`), so `rpm -qa` works in the deployment."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.errors import ReconcileError
from reconcile.ostree import Repo
from reconcile.process import run
from reconcile.rpm.header import Header, HeaderError, file_paths, header_from_blob

# Where trees keep their rpmdb, in the order we look (rpm-ostree uses usr/share/rpm).
RPMDB_DIRS = ("usr/share/rpm", "usr/lib/sysimage/rpm")
RPMDB_FILE = "rpmdb.sqlite"
DEFAULT_RPMDB_DIR = "usr/share/rpm"


@dataclass(frozen=True)
class TreeRpmdb:
    """Where a commit keeps its rpmdb, and the content object of the database file."""

    directory: str
    file_checksum: str


def find_rpmdb(repo: Repo, commit: str) -> TreeRpmdb | None:
    for directory in RPMDB_DIRS:
        found = repo.lookup_path(commit, f"{directory}/{RPMDB_FILE}")
        if found and found[0] == "file":
            return TreeRpmdb(directory, found[1])
        legacy = repo.lookup_path(commit, f"{directory}/Packages")
        if legacy:
            raise ReconcileError(
                f"The rpmdb of commit {commit[:12]} at /{directory} is in the Berkeley DB format; "
                "only sqlite rpmdbs are supported."
            )
    return None


class TreeRpmdbReader:
    """Queries on the rpmdb inside a commit, through rpm's own sqlite indexes: what is read grows with the
    question (a few names, a few paths), not with the size of the base."""

    def __init__(self, repo: Repo, commit: str) -> None:
        self.commit = commit
        self._tmp: Any = None
        self._conn: sqlite3.Connection | None = None
        self._headers: dict[int, Header] = {}
        self._paths: dict[int, frozenset[str]] = {}
        db = find_rpmdb(repo, commit)
        if db is None:
            return
        path = repo.content_path(db.file_checksum)
        if path is None:
            self._tmp = tempfile.NamedTemporaryFile(prefix="rpmdb-", suffix=".sqlite")  # noqa: SIM115
            self._tmp.write(repo.read_bytes(db.file_checksum, limit=1 << 32))
            self._tmp.flush()
            path = Path(self._tmp.name)
        try:
            # immutable=1: the object is read-only and must never grow -wal/-shm files next to it.
            self._conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error as e:
            raise ReconcileError(f"Cannot read the rpmdb of commit {commit[:12]}: {e}.") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._tmp is not None:
            self._tmp.close()

    def __enter__(self) -> TreeRpmdbReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        if self._conn is None:
            return []
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise ReconcileError(f"Cannot read the rpmdb of commit {self.commit[:12]}: {e}.") from None

    def _header(self, hnum: int, blob: bytes | None = None) -> Header:
        if hnum not in self._headers:
            if blob is None:
                blob = self._query("SELECT blob FROM Packages WHERE hnum = ?", (hnum,))[0][0]
            try:
                self._headers[hnum] = header_from_blob(blob)
            except HeaderError as e:
                raise ReconcileError(f"The rpmdb of commit {self.commit[:12]} holds a damaged header: {e}.") from None
        return self._headers[hnum]

    def all(self) -> list[Header]:
        return [self._header(hnum, blob) for hnum, blob in self._query("SELECT hnum, blob FROM Packages ORDER BY hnum")]

    def named(self, names: set[str]) -> list[Header]:
        rows = []
        for name in sorted(names):
            rows += self._query("SELECT hnum FROM Name WHERE key = ?", (name,))
        return [self._header(hnum) for (hnum,) in sorted(set(rows))]

    def indexed(self, table: str) -> list[Header]:
        """Packages with an entry in one of rpm's index tables (e.g. Transfiletriggername)."""
        if table not in {row[0] for row in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}:
            return []
        rows = self._query(f'SELECT DISTINCT hnum FROM "{table}"')
        return [self._header(hnum) for (hnum,) in sorted(rows)]

    def under(self, prefix: str) -> list[Header]:
        """Packages with a directory name (rpm keeps them with a trailing /) starting with `prefix`, through
        the Dirnames index."""
        if not prefix:
            return []
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._query("SELECT DISTINCT hnum FROM Dirnames WHERE key >= ? AND key < ?", (prefix, upper))
        return [self._header(hnum) for (hnum,) in sorted(rows)]

    def owners(self, path: str) -> list[Header]:
        """The packages whose file list holds `path`."""
        base = path.rsplit("/", 1)[-1]
        found = []
        for hnum, _idx in self._query("SELECT hnum, idx FROM Basenames WHERE key = ?", (base,)):
            if hnum not in self._paths:
                self._paths[hnum] = frozenset(file_paths(self._header(hnum)))
            if path in self._paths[hnum]:
                found.append(self._header(hnum))
        return found


def read_headers(repo: Repo, commit: str) -> list[Header]:
    """Every package header in the commit's rpmdb (empty when the tree has none)."""
    with TreeRpmdbReader(repo, commit) as db:
        return db.all()


_RPM_COMMON = ["--define", "_db_backend sqlite", "--nodeps", "--noscripts", "--notriggers"]


def build_rpmdb(
    base_db: Path | None, package_headers: list[tuple[str, bytes]], erase: list[str], workdir: Path
) -> Path:
    """Write an rpmdb: the base database, minus `erase` (NEVRAs), plus `package_headers` ((name, raw)).

    rpm reads header-only files (lead + signature + header) fine with payload verification off: nothing but
    the header goes in the database.
    """
    dbdir = workdir / "rpmdb"
    dbdir.mkdir()
    env = dict(os.environ, LC_ALL="C")
    if base_db is not None:
        shutil.copyfile(base_db, dbdir / RPMDB_FILE)  # in the kernel (copy_file_range), not through Python
    else:
        run(["rpm", "--dbpath", str(dbdir), "--define", "_db_backend sqlite", "--initdb"], "Creating an empty rpmdb")
    if erase:
        argv = ["rpm", "--dbpath", str(dbdir), *_RPM_COMMON, "--justdb", "--erase", "--allmatches", *erase]
        run(argv, "Removing packages from the rpmdb", env=env)
    if package_headers:
        hdrdir = workdir / "headers"
        hdrdir.mkdir()
        files = []
        for i, (name, raw) in enumerate(package_headers):
            f = hdrdir / f"{i:05d}-{name}.rpm"
            f.write_bytes(raw)
            files.append(str(f))
        argv = [
            "rpm",
            "--dbpath",
            str(dbdir),
            *_RPM_COMMON,
            "--define",
            "_pkgverify_level none",
            "--nodigest",
            "--nosignature",
            "--justdb",
            "--install",
            "--ignorearch",
            "--ignoreos",
            "--ignoresize",
            "--replacefiles",
            "--replacepkgs",
            *files,
        ]
        run(argv, "Writing the rpmdb", env=env)
    db = dbdir / RPMDB_FILE
    if not db.exists():
        raise ReconcileError(f"rpm did not write {db}.")
    return db

"""The rpmdb inside a tree: read the base's packages from a commit without a checkout, and write a new
database for base + layered packages with rpm itself (`--justdb`), so `rpm -qa` works in the deployment.

On a base, the new database is a delta: the base's rpmdb.sqlite stays byte-identical (its object is shared
with the base) and what rpm changed lives in rpmdb.sqlite-wal, sqlite's write-ahead log, which rpm and sqlite
read natively. rpmdb.sqlite-shm ships too: without it a read-only /usr cannot be read in WAL mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import struct
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
WAL_FILE = "rpmdb.sqlite-wal"
SHM_FILE = "rpmdb.sqlite-shm"
DEFAULT_RPMDB_DIR = "usr/share/rpm"
# sqlite's lock bytes (os_unix.c): the SHARED range of the database file, and the checkpoint lock of the -shm.
_SHARED_FIRST, _SHARED_SIZE = 0x40000002, 510
_WAL_CKPT_LOCK = 121


@dataclass(frozen=True)
class TreeRpmdb:
    """Where a commit keeps its rpmdb, the content object of the database file and of its write-ahead log."""

    directory: str
    file_checksum: str
    wal_checksum: str | None = None


def find_rpmdb(repo: Repo, commit: str) -> TreeRpmdb | None:
    for directory in RPMDB_DIRS:
        found = repo.lookup_path(commit, f"{directory}/{RPMDB_FILE}")
        if found and found[0] == "file":
            wal = repo.lookup_path(commit, f"{directory}/{WAL_FILE}")
            return TreeRpmdb(directory, found[1], wal[1] if wal and wal[0] == "file" else None)
        legacy = repo.lookup_path(commit, f"{directory}/Packages")
        if legacy:
            raise ReconcileError(
                f"The rpmdb of commit {commit[:12]} at /{directory} is in the Berkeley DB format; "
                "only sqlite rpmdbs are supported."
            )
    return None


def _open_with_wal(repo: Repo, db: TreeRpmdb, path: Path | None, tmp: Path) -> sqlite3.Connection:
    """The database and its log side by side (sqlite finds the log by name) in `tmp`: the object hardlinked
    when it can be (a read-only connection never writes the database file), else copied."""
    main = tmp / RPMDB_FILE
    if path is not None:
        try:
            os.link(path, main)
        except OSError:
            shutil.copyfile(path, main)
    else:
        main.write_bytes(repo.read_bytes(db.file_checksum, limit=1 << 34))
    if db.wal_checksum is not None:
        (tmp / WAL_FILE).write_bytes(repo.read_bytes(db.wal_checksum, limit=1 << 34))
    return sqlite3.connect(f"file:{main}?mode=ro", uri=True)


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
        try:
            if db.wal_checksum is None and path is not None:
                # immutable=1: the object is read-only and must never grow -wal/-shm files next to it.
                self._conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
            else:  # in the repo's tmp, so the object can be hardlinked rather than copied
                tmp_root = repo.path / "tmp"
                where = tmp_root if tmp_root.is_dir() and os.access(tmp_root, os.W_OK) else None
                self._tmp = tempfile.TemporaryDirectory(prefix="reconcile-rpmdb-read-", dir=where)
                self._conn = _open_with_wal(repo, db, path, Path(self._tmp.name))
        except (sqlite3.Error, OSError) as e:
            raise ReconcileError(f"Cannot read the rpmdb of commit {commit[:12]}: {e}.") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._tmp is not None:
            self._tmp.cleanup()

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


@dataclass(frozen=True)
class BuiltRpmdb:
    """The new rpmdb: a whole database (`db`), or, with `wal` set, the base's database file unchanged plus
    rpm's changes in `wal` and the matching wal-index in `shm`."""

    db: Path
    wal: Path | None = None
    shm: Path | None = None


def build_rpmdb(
    base: tuple[Path, Path | None] | None,
    package_headers: list[tuple[str, bytes]],
    erase: list[str],
    workdir: Path,
) -> BuiltRpmdb:
    """Write an rpmdb: the base database (its file and its write-ahead log, if any), minus `erase` (NEVRAs),
    plus `package_headers` ((name, raw)).

    rpm reads header-only files (lead + signature + header) fine with payload verification off: nothing but
    the header goes in the database.
    """
    dbdir = workdir / "rpmdb"
    dbdir.mkdir()
    db = dbdir / RPMDB_FILE
    env = dict(os.environ, LC_ALL="C")
    if base is None:
        run(["rpm", "--dbpath", str(dbdir), "--define", "_db_backend sqlite", "--initdb"], "Creating an empty rpmdb")
        _run_rpm(dbdir, package_headers, erase, workdir, env)
        _one_file(_exists(db))
        return BuiltRpmdb(db)
    base_db, base_wal = base
    shutil.copyfile(base_db, db)  # in the kernel (copy_file_range), not through Python
    if base_wal is not None:
        shutil.copyfile(base_wal, dbdir / WAL_FILE)
    with _NoCheckpoint(db) as guard:
        _run_rpm(dbdir, package_headers, erase, workdir, env)
        if guard.switched and not _wal_has_page_one(dbdir / WAL_FILE):
            guard.log_page_one()
    if guard.kept_base(db) and (not guard.switched or _wal_has_page_one(dbdir / WAL_FILE)):
        return BuiltRpmdb(db, dbdir / WAL_FILE, _fresh_shm(db, dbdir / WAL_FILE, workdir / "shm"))
    _one_file(db)  # the delta did not hold (rpm wrote the database file): ship the whole database
    return BuiltRpmdb(db)


class _NoCheckpoint:
    """While rpm writes, keep every change in the write-ahead log: rpm checkpoints on close (PRAGMA
    wal_checkpoint), which needs the -shm checkpoint lock, held here; sqlite's own checkpoint-on-close needs an
    exclusive lock on the database, which the read-only connection held here prevents."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None
        self._shm = -1
        self._before: tuple[int, int] = (0, 0)
        self.switched = False  # the base's page 1 says rollback-journal mode: readers must get page 1 from the log

    def __enter__(self) -> _NoCheckpoint:
        with open(self.db, "rb") as f:
            header = f.read(20)
        wal = Path(f"{self.db}-wal")
        if header[18:20] != b"\x02\x02":  # a rollback-journal database (rpm-ostree composes them so)
            self.switched = True
            # With a log already there (a layered base), sqlite reads it as it is; converting would fold it in.
            if not (wal.exists() and wal.stat().st_size > 0):
                conn = sqlite3.connect(self.db, isolation_level=None)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.close()
        st = self.db.stat()
        self._before = (st.st_size, st.st_mtime_ns)
        self._conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # maps the -shm; no read lock kept
        self._shm = os.open(f"{self.db}-shm", os.O_RDWR)
        # Unguarded, rpm checkpoints into the file: kept_base() then says so and the whole database ships.
        with contextlib.suppress(OSError):
            fcntl.lockf(self._shm, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _WAL_CKPT_LOCK)
        return self

    def __exit__(self, *_exc: object) -> None:
        # A read-only connection never checkpoints, so closing it leaves the log as rpm wrote it.
        if self._conn is not None:
            self._conn.close()
        if self._shm >= 0:
            os.close(self._shm)  # after the connection: closing any descriptor drops the process's locks

    def log_page_one(self) -> None:
        """A write of page 1 as it is (user_version unchanged) into the log, when rpm's changes did not touch it."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")
        finally:
            conn.close()  # no checkpoint on close: the read-only connection still holds its lock

    def kept_base(self, db: Path) -> bool:
        st = db.stat()
        return (st.st_size, st.st_mtime_ns) == self._before


def _wal_has_page_one(wal: Path) -> bool:
    """Whether the log holds page 1 (the header: journal mode, page count)."""
    if not wal.exists():
        return False
    with open(wal, "rb") as f:
        header = f.read(32)
        if len(header) < 32:
            return False
        page_size = struct.unpack(">I", header[8:12])[0]
        while frame := f.read(24):
            if len(frame) < 24:
                break
            if struct.unpack(">I", frame[:4])[0] == 1:
                return True
            f.seek(page_size, os.SEEK_CUR)
    return False


def _fresh_shm(db: Path, wal: Path, where: Path) -> Path:
    """The wal-index a first reader builds from the log: rpm run as root where the tree is writable rebuilds
    exactly these bytes, so even a hardlinked checkout's object keeps its checksum."""
    where.mkdir()
    os.link(db, where / RPMDB_FILE)
    shutil.copyfile(wal, where / WAL_FILE)
    conn = sqlite3.connect(f"file:{where / RPMDB_FILE}?mode=ro", uri=True)
    conn.execute("SELECT count(*) FROM Packages").fetchall()
    conn.close()
    return where / SHM_FILE


def _one_file(db: Path) -> None:
    """A whole database in rollback-journal mode, as rpm-ostree composes them: rpm leaves it in WAL mode, and
    a WAL-mode file alone (no -shm beside it) cannot be opened where /usr is read-only."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()


def _exists(db: Path) -> Path:
    if not db.exists():
        raise ReconcileError(f"rpm did not write {db}.")
    return db


def _run_rpm(
    dbdir: Path, package_headers: list[tuple[str, bytes]], erase: list[str], workdir: Path, env: dict[str, str]
) -> None:
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

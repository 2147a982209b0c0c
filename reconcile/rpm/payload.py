"""Stream an RPM payload into an OSTree tree: no temp extraction, metadata from the header.

The cpio stream carries only names, types and bytes (rpm writes uid/gid 0 and drops capabilities), so
owners, modes and link targets come from the header, and every payload entry must match a header file.
Where each path goes and what is refused is decided by rpm/treerules.py, the rules the plan applied too.
"""

from __future__ import annotations

import hashlib
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from reconcile import ostree
from reconcile.errors import PackageError
from reconcile.ostree import MutableTree, Repo
from reconcile.rpm import header as h
from reconcile.rpm.fcaps import CapabilityError, capability_xattr
from reconcile.rpm.header import FileEntry, RpmHeaders
from reconcile.rpm.treerules import (
    FACTORY,
    USRMERGE,
    Owners,
    Placement,
    file_findings,
    keeps_capabilities,
    place,
    tree_path,
)
from reconcile.selinux import SELINUX_XATTR, Labeler

INLINE_MAX = 1 << 20
CAPABILITY_XATTR = b"security.capability\0"
READ_BLOCK = 1 << 16
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755
_PAYLOAD_DIGEST_ALGOS = {8: "sha256", 9: "sha384", 10: "sha512", 2: "sha1"}


@dataclass
class ImportedTree:
    tree: MutableTree
    tmpfiles: list[str] = field(default_factory=list)


class _Writes:
    """Small files go to two worker threads: libostree hashes and writes them without the GIL while the main
    thread keeps decompressing. At most WINDOW bytes and MAX_PENDING files wait, so memory stays flat: a
    package of many tiny files would otherwise queue every one (a future, a closure and the bytes each)."""

    WINDOW = 16 << 20
    MAX_PENDING = 256

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile-write")
        self.pending: deque[tuple[Future[str], Callable[[str], None], int]] = deque()
        self.size = 0

    def submit(self, then: Callable[[str], None], size: int, write: Callable[..., str], *args: Any) -> None:
        self.pending.append((self.pool.submit(write, *args), then, size))
        self.size += size
        while self.size > self.WINDOW or len(self.pending) > self.MAX_PENDING:
            self._place_oldest()

    def _place_oldest(self) -> None:
        future, then, size = self.pending.popleft()
        self.size -= size
        then(future.result())

    def flush(self) -> None:
        """Wait for every pending write and place the results, in payload order."""
        while self.pending:
            self._place_oldest()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _HashingReader:
    """A non-seekable stream that hashes what libarchive reads, to check the payload digest."""

    def __init__(self, f: BinaryIO, algorithm: str | None) -> None:
        self.f = f
        self.hash = hashlib.new(algorithm) if algorithm else None

    def readinto(self, buf: Any) -> int:
        n = self.f.readinto(buf)  # type: ignore[attr-defined]
        if n and self.hash is not None:
            self.hash.update(memoryview(buf)[:n])
        return n or 0

    def seekable(self) -> bool:
        return False

    def drain(self) -> None:
        while block := self.f.read(READ_BLOCK):
            if self.hash is not None:
                self.hash.update(block)


def tmpfiles_conf_name(pkg: str) -> str:
    """The tmpfiles.d file (in /usr/lib/tmpfiles.d) generated for a package's /var, /run and /opt entries."""
    return f"reconcile-pkg-{pkg}.conf"


class PayloadImporter:
    """Import one RPM into a fresh tree; `run()` raises PackageError naming the package and path."""

    def __init__(
        self,
        repo: Repo,
        pkg: str,
        headers: RpmHeaders,
        owners: Owners,
        allow_skeleton: bool,
        labeler: Labeler | None = None,
        planned: bool = True,
    ) -> None:
        self.repo = repo
        self.planned = planned
        self.pkg = pkg
        self.headers = headers
        self.owners = owners
        self.allow_skeleton = allow_skeleton
        self.labeler = labeler
        self.root = ostree.new_tree()
        self._dirs: dict[str, MutableTree] = {"": self.root}
        self.writes = _Writes()
        self._files: set[str] = set()
        self.root.set_metadata_checksum(repo.write_dirmeta(0, 0, DEFAULT_DIR_MODE, self._xattrs("/", DEFAULT_DIR_MODE)))
        self.tmpfiles: list[str] = []
        self.opt_links: set[str] = set()

    def fail(self, message: str) -> PackageError:
        return PackageError(f"Package {self.pkg}: {message}")

    def run(self, f: BinaryIO) -> ImportedTree:
        try:
            files = h.file_entries(self.headers.header)
        except h.HeaderError as e:
            raise self.fail(f"its header is damaged: {e}.") from None
        self._check_rules(files)
        groups = self._hardlink_groups(files)
        linked = self._stream(f, {fe.path: fe for fe in files}, groups)
        self._place_hardlinks(groups, linked)
        self._write_tmpfiles_conf()
        return ImportedTree(self.root, self.tmpfiles)

    def _stream(
        self, f: BinaryIO, by_path: dict[str, FileEntry], groups: dict[tuple[int, int], list[FileEntry]]
    ) -> dict[tuple[int, int], tuple[str, ostree.Xattrs | None]]:
        """Every payload entry into the tree, checked against the header; the content written for each
        hard-link group (placed afterwards, once every member's path is known)."""
        import libarchive  # only importing pays for it; plans do not

        hdr = self.headers.header
        group_csum: dict[tuple[int, int], tuple[str, ostree.Xattrs | None]] = {}
        seen: set[str] = set()
        f.seek(self.headers.payload_offset)
        algo = _PAYLOAD_DIGEST_ALGOS.get(hdr.integer(h.PAYLOADDIGESTALGO, 8) or 8)
        reader = _HashingReader(f, algo if hdr.strings(h.PAYLOADDIGEST) else None)
        try:
            with libarchive.stream_reader(reader, format_name="cpio", block_size=READ_BLOCK) as archive:
                for entry in archive:
                    path = self._payload_path(entry)
                    listed = by_path.get(path)
                    if listed is None or listed.is_ghost:
                        raise self.fail(f"the payload holds {path!r}, which its header does not list.")
                    if path in seen:
                        raise self.fail(f"the payload holds {path!r} twice.")
                    seen.add(path)
                    self._import_entry(entry, listed, groups, group_csum)
            reader.drain()
            self.writes.flush()
        except libarchive.ArchiveError as e:
            raise self.fail(f"its payload is damaged or truncated ({e.msg}).") from None
        finally:
            self.writes.close()
        self._check_payload_digest(reader)
        missing = sorted(p for p, fe in by_path.items() if p not in seen and not fe.is_ghost)
        if missing:
            raise self.fail(f"its header lists {missing[0]!r} (and {len(missing) - 1} more), but the payload lacks it.")
        return group_csum

    def _place_hardlinks(
        self,
        groups: dict[tuple[int, int], list[FileEntry]],
        linked: dict[tuple[int, int], tuple[str, ostree.Xattrs | None]],
    ) -> None:
        for key, members in groups.items():
            written = linked.get(key) or (self._write_regular(members[0], b""), self._file_xattrs(members[0]))
            for fe in members:
                # A member whose path labels differently cannot share the object (nor the inode).
                wanted = self._file_xattrs(fe)
                if wanted == written[1]:
                    csum = written[0]
                else:
                    csum = self.repo.copy_with_xattrs(written[0], _replaced_by(wanted))
                self._place_file(fe, csum)

    def _write_tmpfiles_conf(self) -> None:
        """The package's /var, /run and /opt entries, as the tmpfiles.d file systemd applies at boot."""
        for name in sorted(self.opt_links):
            self.tmpfiles.append(f"L /opt/{_quote(name)} - - - - /usr/lib/opt/{_quote(name)}")
        if not self.tmpfiles:
            return
        conf = "".join(
            line + "\n" for line in [f"# Generated by reconcile from {self.pkg}", *sorted(set(self.tmpfiles))]
        )
        name = tmpfiles_conf_name(self.pkg)
        mode = stat.S_IFREG | 0o644
        csum = self.repo.write_file(0, 0, mode, conf.encode(), self._xattrs(f"/usr/lib/tmpfiles.d/{name}", mode))
        if f"usr/lib/tmpfiles.d/{name}" in self._files:
            raise self.fail(f"it ships /usr/lib/tmpfiles.d/{name}, the file reconcile generates for it.")
        ostree.tree_replace_file(self._ensure_dirs(["usr", "lib", "tmpfiles.d"]), name, csum)

    # -- checks ------------------------------------------------------------------------------------
    def _check_rules(self, files: list[FileEntry]) -> None:
        """The tree rules the plan applied to this package (treerules): after a plan, a refusal here means
        the two disagree, which is a bug, never a silent difference."""
        found = file_findings(files, self.owners.users.keys(), self.owners.groups.keys(), self.allow_skeleton)
        refused = [f for f in found if f.refuses]
        if not refused:
            return
        message = refused[0].message(self.pkg) + (f" ({len(refused) - 1} more findings)" if len(refused) > 1 else "")
        if not self.planned:
            raise PackageError(message)
        raise PackageError(
            f"Plan and apply disagree about {self.pkg}: the plan found its files fit the tree, but the import "
            f"finds this: {message} Nothing was deployed.",
            hint="This is a bug in reconcile; please report it with the plan (`reconcile plan --json`).",
        )

    def owners_of(self, fe: FileEntry) -> tuple[int, int]:
        return self.owners.users[fe.user], self.owners.groups[fe.group]

    @staticmethod
    def _hardlink_groups(files: list[FileEntry]) -> dict[tuple[int, int], list[FileEntry]]:
        by_inode: dict[tuple[int, int], list[FileEntry]] = {}
        for fe in files:
            if stat.S_ISREG(fe.mode) and not fe.is_ghost:
                by_inode.setdefault((fe.device, fe.inode), []).append(fe)
        return {k: v for k, v in by_inode.items() if len(v) > 1}

    def _payload_path(self, entry: Any) -> str:
        try:
            name = entry.pathname
        except UnicodeDecodeError:
            raise self.fail("the payload holds a file name that is not UTF-8.") from None
        if name.startswith("./"):
            name = name[1:]
        elif not name.startswith("/"):
            name = "/" + name
        parts = name.split("/")[1:]
        if any(p in ("", ".", "..") for p in parts):
            raise self.fail(f"the payload holds the unsafe path {entry.pathname!r}.")
        return name

    def _check_payload_digest(self, reader: _HashingReader) -> None:
        want = self.headers.header.string(h.PAYLOADDIGEST)
        if reader.hash is not None and want and reader.hash.hexdigest() != want:
            raise self.fail("its payload digest does not match the header (the file is corrupt or was tampered with).")

    # -- writing -----------------------------------------------------------------------------------
    def _import_entry(self, entry: Any, fe: FileEntry, groups: dict, group_csum: dict[tuple[int, int], Any]) -> None:
        kind = stat.S_IFMT(fe.mode)
        if entry.isdir != (kind == stat.S_IFDIR) or entry.issym != (kind == stat.S_IFLNK):
            raise self.fail(f"the payload's type of {fe.path!r} differs from its header.")
        if kind != stat.S_IFREG or entry.size > INLINE_MAX:
            self.writes.flush()  # keep placements in payload order around anything not written in a worker
        if kind == stat.S_IFDIR:
            self._place_dir(fe)
        elif kind == stat.S_IFLNK:
            target = fe.linkto or entry.linkpath
            if entry.linkpath and entry.linkpath != target:
                raise self.fail(f"the payload's link target of {fe.path!r} differs from its header.")
            uid, gid = self.owners_of(fe)
            self._place_file(fe, self.repo.write_symlink(uid, gid, target, self._file_xattrs(fe)))
        else:
            key = (fe.device, fe.inode)
            if key in groups:
                if entry.size > 0:
                    group_csum[key] = (self._write_regular(fe, None, entry), self._file_xattrs(fe))
                return
            if entry.size > INLINE_MAX:
                self._place_file(fe, self._write_regular(fe, None, entry))
                return
            uid, gid = self.owners_of(fe)
            data = self._read_small(fe, entry)
            mode = stat.S_IFREG | stat.S_IMODE(fe.mode)

            def place(csum: str, fe: FileEntry = fe) -> None:
                self._place_file(fe, csum)

            self.writes.submit(place, len(data), self.repo.write_file, uid, gid, mode, data, self._file_xattrs(fe))

    def _write_regular(self, fe: FileEntry, data: bytes | None, entry: Any = None) -> str:
        uid, gid = self.owners_of(fe)
        mode = stat.S_IFREG | stat.S_IMODE(fe.mode)
        xattrs = self._file_xattrs(fe)
        size = entry.size if entry is not None else len(data or b"")
        if entry is not None and size != fe.size:
            raise self.fail(f"the payload's size of {fe.path!r} ({size}) differs from its header ({fe.size}).")
        if entry is None:
            return self.repo.write_file(uid, gid, mode, data or b"", xattrs)
        if size <= INLINE_MAX:
            return self.repo.write_file(uid, gid, mode, self._read_small(fe, entry), xattrs)
        return self.repo.write_file_stream(uid, gid, mode, size, _blocks(entry), xattrs)

    def _read_small(self, fe: FileEntry, entry: Any) -> bytes:
        """A small file's bytes in one buffer the size of the file (get_blocks' default copies 64 KiB a read)."""
        if entry.size != fe.size:
            raise self.fail(f"the payload's size of {fe.path!r} ({entry.size}) differs from its header ({fe.size}).")
        data = b"".join(entry.get_blocks(entry.size + 1))
        if len(data) != entry.size:
            raise self.fail(f"the payload's content of {fe.path!r} is shorter than its size.")
        return data

    def _tree_path(self, path: str) -> str:
        return "/" + (tree_path(path, self.allow_skeleton) or "")

    def _xattrs(self, tree_path: str, mode: int, caps: str = "") -> ostree.Xattrs | None:
        if self.labeler is None and not caps:
            return None
        pairs = []
        if self.labeler is not None:
            pairs.append((SELINUX_XATTR, self.labeler.label(tree_path, mode)))
        if caps:
            try:
                pairs.append((CAPABILITY_XATTR, capability_xattr(caps)))
            except CapabilityError as e:
                raise self.fail(f"the file capabilities of {tree_path} are invalid: {e}.") from None
        return ostree.xattrs(pairs)

    def _file_xattrs(self, fe: FileEntry) -> ostree.Xattrs | None:
        # tmpfiles.d cannot set capabilities: the plan warns, the factory copy goes without them.
        return self._xattrs(self._tree_path(fe.path), fe.mode, fe.caps if keeps_capabilities(fe.path) else "")

    def _ensure_dirs(self, parts: list[str], for_path: str = "") -> MutableTree:
        """The directory `parts` of the package tree, created as needed. The tree starts empty, so a Python
        index of what was placed answers every lookup (libostree's lookup raises for a missing name)."""
        key = "/".join(parts)
        found = self._dirs.get(key)
        if found is not None:
            return found
        if key in self._files:
            raise self.fail(
                f"the payload writes {for_path or '/' + key} through /{key}, which it made a file or symlink "
                "(a write through a planted symlink is refused)."
            )
        parent = self._ensure_dirs(parts[:-1], for_path)
        sub = ostree.tree_ensure_dir(parent, parts[-1])
        sub.set_metadata_checksum(
            self.repo.write_dirmeta(0, 0, DEFAULT_DIR_MODE, self._xattrs("/" + key, DEFAULT_DIR_MODE))
        )
        self._dirs[key] = sub
        return sub

    def _place_dir(self, fe: FileEntry) -> None:
        where, rel = place(fe.path, self.allow_skeleton)
        uid, gid = self.owners_of(fe)
        if where is Placement.TMPFILES:
            self.tmpfiles.append(f"d {_quote(fe.path)} {stat.S_IMODE(fe.mode):04o} {fe.user} {fe.group} - -")
            return
        if where is Placement.SKIP or rel is None or (where is Placement.TOPLEVEL and rel in USRMERGE):
            return  # a package owning /bin as a directory means /usr/bin on a usrmerged tree
        self._note_opt(fe.path)
        mt = self._ensure_dirs(rel.split("/"), fe.path)
        mt.set_metadata_checksum(self.repo.write_dirmeta(uid, gid, fe.mode, self._xattrs(f"/{rel}", fe.mode, fe.caps)))

    def _place_file(self, fe: FileEntry, csum: str) -> None:
        where, rel = place(fe.path, self.allow_skeleton)
        if where is Placement.TMPFILES:
            self._var_file(fe, csum)
            return
        if rel is None:
            return
        self._note_opt(fe.path)
        *dirs, name = rel.split("/")
        parent = self._ensure_dirs(dirs, fe.path)
        if rel in self._files or rel in self._dirs:
            raise self.fail(
                f"the payload writes {fe.path!r} over an entry it already created (a path through a symlink?)."
            )
        ostree.tree_replace_file(parent, name, csum)
        self._files.add(rel)

    def _note_opt(self, path: str) -> None:
        """/opt/<name> lives in /usr/lib/opt; a tmpfiles symlink puts it back at boot."""
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "opt":
            self.opt_links.add(parts[2])

    def _var_file(self, fe: FileEntry, csum: str) -> None:
        """/var and /run are not deployed from the tree: describe the entry for systemd-tmpfiles."""
        path = _quote(fe.path)
        if stat.S_ISLNK(fe.mode):
            self.tmpfiles.append(f"L {path} - - - - {_quote(fe.linkto)}")
            return
        mode = f"{stat.S_IMODE(fe.mode):04o}"
        if fe.size == 0:
            self.tmpfiles.append(f"f {path} {mode} {fe.user} {fe.group} - -")
            return
        # Content is kept in the factory tree and copied into place once, like systemd's own /var files.
        parts = [*FACTORY.split("/"), *[p for p in fe.path.split("/") if p]]
        ostree.tree_replace_file(self._ensure_dirs(parts[:-1]), parts[-1], csum)
        self._files.add("/".join(parts))
        self.tmpfiles.append(f"C {path} - - - - /usr/share/factory{path}")
        self.tmpfiles.append(f"z {path} {mode} {fe.user} {fe.group} - -")


def _replaced_by(xattrs: ostree.Xattrs | None) -> Callable[[list[tuple[bytes, bytes]], int], ostree.Xattrs | None]:
    """A copy_with_xattrs transform that sets `xattrs` whatever the object had."""
    return lambda _old, _mode: xattrs


def _blocks(entry: Any) -> Iterator[bytes]:
    yield from entry.get_blocks(READ_BLOCK)


def _quote(path: str) -> str:
    """tmpfiles.d fields are whitespace-separated; quote and escape the ones that need it."""
    if all(c.isprintable() and not c.isspace() and c not in "\\\"'" for c in path):
        return path
    escaped = "".join(
        c if c.isprintable() and c not in '\\"' else f"\\x{ord(c):02x}" if ord(c) < 256 else c for c in path
    )
    return f'"{escaped}"'


def read_payload_files(f: BinaryIO, headers: RpmHeaders, wanted: set[str], limit: int = 1 << 20) -> dict[str, bytes]:
    """The content of a few small files (e.g. sysusers.d) from a payload, streaming past everything else."""
    import libarchive

    found: dict[str, bytes] = {}
    if not wanted:
        return found
    f.seek(headers.payload_offset)
    with libarchive.stream_reader(f, format_name="cpio", block_size=READ_BLOCK) as archive:
        for entry in archive:
            name = entry.pathname
            path = name[1:] if name.startswith("./") else name
            if path in wanted and entry.isfile and entry.size <= limit:
                found[path] = b"".join(entry.get_blocks(entry.size + 1))
                if len(found) == len(wanted):
                    break
    return found

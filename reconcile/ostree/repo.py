"""An OSTree repo: reading commits, trees and objects, writing objects and commits in a transaction."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile import stopping
from reconcile.errors import OstreeError
from reconcile.ostree._gi import (
    AT_FDCWD,
    Gio,
    GLib,
    OSTree,
    SePolicy,
    TreeRoot,
    Xattrs,
    call,
    is_not_found,
    log,
    unwrap,
)


class CommitMetadata(Mapping[str, Any]):
    """A commit's metadata, a value unpacked on first use: a Fedora-sized base's pkglist is 10,000 variants, and
    reading a deployment's state needs none of them. Byte arrays come back as bytes in one piece."""

    def __init__(self, variants: dict[str, Any]) -> None:
        self._variants = variants
        self._values: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            value = self._variants[key]
            is_bytes = value.get_type_string() == "ay"
            self._values[key] = bytes(value.get_data_as_bytes().get_data()) if is_bytes else value.unpack()
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._variants)

    def __len__(self) -> int:
        return len(self._variants)


@dataclass(frozen=True)
class DirEntries:
    """A dirtree object: files (name, content checksum) and dirs (name, tree checksum, meta checksum)."""

    files: list[tuple[str, str]]
    dirs: list[tuple[str, str, str]]


class Repo:
    def __init__(self, repo: OSTree.Repo, path: Path) -> None:
        self.gi = repo
        self.path = Path(path).absolute()
        self._dirmeta_cache: dict[tuple[int, int, int, bytes], str] = {}

    @classmethod
    def open(cls, path: Path) -> Repo:
        repo = OSTree.Repo.new(Gio.File.new_for_path(str(path)))
        unwrap(f"open repo {path}", call(f"open repo {path}", repo.open, None))
        return cls(repo, Path(path))

    @classmethod
    def open_or_create(cls, path: Path) -> Repo:
        if (Path(path) / "config").exists():
            return cls.open(path)
        Path(path).mkdir(parents=True, exist_ok=True)
        repo = OSTree.Repo.new(Gio.File.new_for_path(str(path)))
        unwrap(f"create repo {path}", call(f"create bare repo {path}", repo.create, OSTree.RepoMode.BARE, None))
        return cls(repo, Path(path))

    # -- reading ------------------------------------------------------------------------------------
    def resolve(self, rev: str) -> str | None:
        """Resolve a ref, `remote:ref` or checksum; None when it does not exist."""
        try:
            ok, csum = self.gi.resolve_rev(rev, True)
        except GLib.Error as e:
            if is_not_found(e) or "Invalid" in e.message:
                return None
            raise OstreeError(f"resolve {rev}: {e.message}") from e
        return csum if ok and csum else None

    def load_commit(self, csum: str) -> Any:
        return unwrap(f"load commit {csum}", call(f"load_commit {csum}", self.gi.load_commit, csum))[0]

    def commit_metadata(self, csum: str) -> CommitMetadata:
        """Commit metadata as Python values, each unpacked when it is first read."""
        return CommitMetadata(self.commit_metadata_variants(csum))

    def commit_metadata_variants(self, csum: str) -> dict[str, Any]:
        """The commit metadata as variants, to copy into another commit unchanged."""
        v = self.load_commit(csum).get_child_value(0)
        out = {}
        for i in range(v.n_children()):
            entry = v.get_child_value(i)
            out[entry.get_child_value(0).get_string()] = entry.get_child_value(1).get_variant()
        return out

    def is_partial(self, csum: str) -> bool:
        """A commit pulled with only some of its paths (a plan's subpath pull): its other objects are missing."""
        state = unwrap(f"load commit {csum}", call(f"load_commit {csum}", self.gi.load_commit, csum))[1]
        return bool(state & OSTree.RepoCommitState.PARTIAL)

    def has_commit(self, csum: str) -> bool:
        try:
            self.gi.load_commit(csum)
        except GLib.Error:
            return False
        return True

    def commit_parent(self, csum: str) -> str | None:
        return OSTree.commit_get_parent(self.load_commit(csum))

    def commit_timestamp(self, csum: str) -> int:
        return int(OSTree.commit_get_timestamp(self.load_commit(csum)))

    def commit_root(self, csum: str) -> tuple[str, str]:
        """The (contents, metadata) checksums of a commit's root directory."""
        root = unwrap(f"read commit {csum}", call(f"read_commit {csum}", self.gi.read_commit, csum, None))[0]
        root.ensure_resolved()
        return root.tree_get_contents_checksum(), root.tree_get_metadata_checksum()

    def lookup_path(self, csum: str, relpath: str) -> tuple[str, str] | None:
        """Find `relpath` in a commit without a checkout: ("file"|"symlink"|"dir", checksum) or None."""
        root = unwrap(f"read commit {csum}", call(f"read_commit {csum}", self.gi.read_commit, csum, None))[0]
        f = root.resolve_relative_path(relpath)
        try:
            f.ensure_resolved()
            info = f.query_info("standard::type", Gio.FileQueryInfoFlags.NOFOLLOW_SYMLINKS, None)
        except GLib.Error as e:
            if is_not_found(e):
                return None
            raise OstreeError(f"look up {relpath} in {csum}: {e.message}") from e
        ftype = info.get_file_type()
        if ftype == Gio.FileType.DIRECTORY:
            return "dir", f.tree_get_contents_checksum()
        kind = "symlink" if ftype == Gio.FileType.SYMBOLIC_LINK else "file"
        return kind, f.get_checksum()

    def read_text(self, commit: str, relpath: str, limit: int = 64 * 1024 * 1024) -> str | None:
        """A regular file of a commit as text (undecodable bytes replaced), or None if it is not one."""
        found = self.lookup_path(commit, relpath)
        if found is None or found[0] != "file":
            return None
        return self.read_bytes(found[1], limit).decode("utf-8", "replace")

    def read_bytes(self, file_csum: str, limit: int = 64 * 1024 * 1024) -> bytes:
        stream, _info, _xattrs = unwrap("load file", call(f"load_file {file_csum}", self.gi.load_file, file_csum, None))
        chunks = []
        total = 0
        while True:
            data = stream.read_bytes(65536, None).get_data()
            if not data:
                break
            total += len(data)
            if total > limit:
                raise OstreeError(f"object {file_csum} is larger than {limit} bytes")
            chunks.append(data)
        stream.close(None)
        return b"".join(chunks)

    def content_path(self, file_csum: str) -> Path | None:
        """The on-disk path of a regular file object, when the repo stores files as plain files."""
        if self.gi.get_mode() not in (OSTree.RepoMode.BARE, OSTree.RepoMode.BARE_USER):
            return None
        return self.path / "objects" / file_csum[:2] / f"{file_csum[2:]}.file"

    def load_dirtree(self, contents_csum: str) -> DirEntries:
        v = unwrap(
            "load dirtree",
            call(
                f"load_variant dirtree {contents_csum}",
                self.gi.load_variant,
                OSTree.ObjectType.DIR_TREE,
                contents_csum,
            ),
        )
        files = [(name, OSTree.checksum_from_bytes(c)) for name, c in v.get_child_value(0).unpack()]
        dirs = [
            (name, OSTree.checksum_from_bytes(t), OSTree.checksum_from_bytes(m))
            for name, t, m in v.get_child_value(1).unpack()
        ]
        return DirEntries(files, dirs)

    def load_dirmeta(self, meta_csum: str) -> tuple[int, int, int, list[tuple[bytes, bytes]]]:
        """(uid, gid, mode, xattrs) of a dirmeta object (stored big-endian)."""
        v = unwrap(
            "load dirmeta",
            call(f"load dirmeta {meta_csum}", self.gi.load_variant, OSTree.ObjectType.DIR_META, meta_csum),
        )
        uid, gid, mode, xattrs = v.unpack()
        pairs = [(bytes(k), bytes(val)) for k, val in xattrs]
        return socket.ntohl(uid), socket.ntohl(gid), socket.ntohl(mode), pairs

    def refs(self, prefix: str | None = None) -> dict[str, str]:
        return dict(unwrap("list refs", call(f"list_refs {prefix}", self.gi.list_refs, prefix, None)))

    # -- writing ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside land together; refs move only if the block completes."""
        call("prepare_transaction", self.gi.prepare_transaction, None)
        try:
            yield
        except BaseException:
            with contextlib.suppress(GLib.Error):
                log.debug("ostree: abort_transaction")
                self.gi.abort_transaction(None)
            raise
        call("commit_transaction", self.gi.commit_transaction, None)

    def set_ref(self, ref: str, csum: str | None) -> None:
        """Set (or with None, delete) a ref inside the current transaction."""
        call(f"transaction_set_ref {ref} {csum}", self.gi.transaction_set_ref, None, ref, csum)

    def set_ref_now(self, ref: str, csum: str | None) -> None:
        call(f"set_ref_immediate {ref} {csum}", self.gi.set_ref_immediate, None, ref, csum, None)

    def write_file(self, uid: int, gid: int, mode: int, data: bytes, xattrs: Xattrs | None = None) -> str:
        return str(
            call(
                f"write_regfile_inline mode={mode:o} size={len(data)}",
                self.gi.write_regfile_inline,
                None,
                uid,
                gid,
                mode,
                xattrs.variant if xattrs else None,
                data,
                None,
            )
        )

    def write_file_stream(
        self, uid: int, gid: int, mode: int, size: int, blocks: Iterator[bytes], xattrs: Xattrs | None = None
    ) -> str:
        """Stream a large regular file into the repo, counting bytes (ContentWriter ignores short writes)."""
        writer = call(
            f"write_regfile mode={mode:o} size={size}",
            self.gi.write_regfile,
            None,
            uid,
            gid,
            mode,
            size,
            xattrs.variant if xattrs else None,
        )
        written = 0
        for block in blocks:
            written += len(block)
            if written > size:
                break
            call("content write", writer.write_all, block, None)
        if written != size:
            raise OstreeError(f"file content is {written} bytes where {size} were declared")
        return str(call("content finish", writer.finish, None))

    def copy_with_xattrs(
        self, file_csum: str, transform: Callable[[list[tuple[bytes, bytes]], int], Xattrs | None]
    ) -> str:
        """The same file (content, owner, mode) with xattrs `transform(old xattrs, mode)`: relabelling
        without a checkout."""
        stream, info, old = unwrap("load file", call(f"load_file {file_csum}", self.gi.load_file, file_csum, None))
        uid = info.get_attribute_uint32("unix::uid")
        gid = info.get_attribute_uint32("unix::gid")
        mode = info.get_attribute_uint32("unix::mode")
        xattrs = transform([(bytes(k), bytes(v)) for k, v in (old.unpack() if old is not None else [])], mode)
        if info.get_file_type() == Gio.FileType.SYMBOLIC_LINK:
            return self.write_symlink(uid, gid, info.get_symlink_target(), xattrs)

        def blocks() -> Iterator[bytes]:
            while data := stream.read_bytes(1 << 16, None).get_data():
                yield data

        try:
            return self.write_file_stream(uid, gid, mode, info.get_size(), blocks(), xattrs)
        finally:
            stream.close(None)

    def write_symlink(self, uid: int, gid: int, target: str, xattrs: Xattrs | None = None) -> str:
        return str(
            call(
                f"write_symlink -> {target}",
                self.gi.write_symlink,
                None,
                uid,
                gid,
                xattrs.variant if xattrs else None,
                target,
                None,
            )
        )

    def write_dirmeta(self, uid: int, gid: int, mode: int, xattrs: Xattrs | None = None) -> str:
        key = (uid, gid, mode, xattrs.key() if xattrs is not None else b"")
        cached = self._dirmeta_cache.get(key)
        if cached:
            return cached
        info = Gio.FileInfo.new()
        info.set_attribute_uint32("unix::uid", uid)
        info.set_attribute_uint32("unix::gid", gid)
        info.set_attribute_uint32("unix::mode", mode)
        v = OSTree.create_directory_metadata(info, xattrs.variant if xattrs else None)
        raw = unwrap(
            "write dirmeta",
            call("write_metadata dirmeta", self.gi.write_metadata, OSTree.ObjectType.DIR_META, None, v, None),
        )
        csum = OSTree.checksum_from_bytes(raw)
        self._dirmeta_cache[key] = csum
        return str(csum)

    def write_mtree(self, mt: OSTree.MutableTree) -> TreeRoot:
        return TreeRoot(unwrap("write tree", call("write_mtree", self.gi.write_mtree, mt, None)))

    def write_commit(
        self, parent: str | None, subject: str, metadata: dict[str, Any], root: TreeRoot, timestamp: int
    ) -> str:
        meta = GLib.Variant("a{sv}", metadata)
        return str(
            unwrap(
                "write commit",
                call(
                    f"write_commit_with_time parent={parent} subject={subject!r}",
                    self.gi.write_commit_with_time,
                    parent,
                    subject,
                    None,
                    meta,
                    root.file,
                    timestamp,
                    None,
                ),
            )
        )

    def checkout(self, commit: str, dest: Path) -> None:
        """A hardlink checkout (bare repo, as root): files ARE repo objects; never write into one.
        Objects still in the open transaction's staging area cannot be hardlinked and are copied."""
        opts = OSTree.RepoCheckoutAtOptions()
        opts.mode = int(OSTree.RepoCheckoutMode.NONE)
        opts.overwrite_mode = int(OSTree.RepoCheckoutOverwriteMode.NONE)
        what = f"checkout {commit} {dest}"
        # checkout_at wants a checksum and reports some failures only through its return value.
        unwrap(what, call(what, self.gi.checkout_at, opts, AT_FDCWD, str(dest), commit, None))

    def write_directory(
        self, tree: OSTree.MutableTree, path: Path, xattrs: Callable[[str], Xattrs | None], policy: SePolicy | None
    ) -> None:
        """Add a directory on disk to `tree`: `xattrs(commit path)` gives each entry's xattrs; with a policy,
        libostree labels every entry (and fails on one it cannot label)."""

        failed: list[BaseException] = []

        def callback(_repo: Any, relpath: str, _info: Any, _data: Any) -> Any:
            # PyGObject prints an exception raised in a callback and carries on; keep it, raise it below.
            try:
                with stopping.callback():
                    found = xattrs(relpath)
                    return found.variant if found else None
            except BaseException as e:
                failed.append(e)
                return None

        flags = OSTree.RepoCommitModifierFlags.ERROR_ON_UNLABELED if policy is not None else 0
        modifier = OSTree.RepoCommitModifier.new(flags, None, None)
        modifier.set_xattr_callback(callback, None)
        if policy is not None:
            modifier.set_sepolicy(policy.gi)
        what = f"write_dfd_to_mtree {path}"
        unwrap(what, call(what, self.gi.write_dfd_to_mtree, AT_FDCWD, str(path), tree, modifier, None))
        if failed:
            raise failed[0]

    def tree_from_commit(self, csum: str) -> OSTree.MutableTree:
        """A lazily loaded mutable tree of a commit: cost grows with what is touched, not its size."""
        return call(f"MutableTree.new_from_commit {csum}", OSTree.MutableTree.new_from_commit, self.gi, csum)

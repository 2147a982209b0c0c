"""The one module that talks to libostree: every call is logged and every failure becomes an `OstreeError`.

See ../shared/docs/ostree-platform-notes.md for the traps this module steps around (checksum types, calls
that fail by returning False, enum fields, lazy trees).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from reconcile.errors import LockTimeoutError, OstreeError  # noqa: E402

log = logging.getLogger("reconcile.ostree")
T = TypeVar("T")

Variant = GLib.Variant
KeyFile = GLib.KeyFile
MutableTree = OSTree.MutableTree
Deployment = OSTree.Deployment
NOT_FOUND = Gio.IOErrorEnum.NOT_FOUND
AT_FDCWD = -100


def _call(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run one libostree call, logging it and translating GLib errors."""
    log.debug("ostree: %s", what)
    try:
        return fn(*args)
    except GLib.Error as e:
        raise OstreeError(f"{what}: {e.message}") from e


def _ok(what: str, result: Any) -> Any:
    """Unwrap `(ok, value...)` tuples; several gi calls report failure only through `ok`."""
    if isinstance(result, tuple):
        if not result[0]:
            raise OstreeError(f"{what}: libostree reported failure")
        return result[1] if len(result) == 2 else result[1:]
    if result is False:
        raise OstreeError(f"{what}: libostree reported failure")
    return result


@contextlib.contextmanager
def _chatter_to_stderr() -> Iterator[None]:
    """libostree prints progress (e.g. "Freed objects: ...") on stdout, which is reserved for our output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def is_not_found(e: GLib.Error) -> bool:
    return bool(e.matches(Gio.io_error_quark(), NOT_FOUND))


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
        _ok(f"open repo {path}", _call(f"open repo {path}", repo.open, None))
        return cls(repo, Path(path))

    @classmethod
    def open_or_create(cls, path: Path) -> Repo:
        if (Path(path) / "config").exists():
            return cls.open(path)
        Path(path).mkdir(parents=True, exist_ok=True)
        repo = OSTree.Repo.new(Gio.File.new_for_path(str(path)))
        _ok(f"create repo {path}", _call(f"create bare repo {path}", repo.create, OSTree.RepoMode.BARE, None))
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
        return _ok(f"load commit {csum}", _call(f"load_commit {csum}", self.gi.load_commit, csum))[0]

    def commit_metadata(self, csum: str) -> dict[str, Any]:
        """Commit metadata as Python values; byte arrays come back as bytes in one piece."""
        out = {}
        for key, value in self.commit_metadata_variants(csum).items():
            out[key] = (
                bytes(value.get_data_as_bytes().get_data()) if value.get_type_string() == "ay" else value.unpack()
            )
        return out

    def commit_metadata_variants(self, csum: str) -> dict[str, Any]:
        """The commit metadata as variants, to copy into another commit unchanged."""
        v = self.load_commit(csum).get_child_value(0)
        out = {}
        for i in range(v.n_children()):
            entry = v.get_child_value(i)
            out[entry.get_child_value(0).get_string()] = entry.get_child_value(1).get_variant()
        return out

    def commit_timestamp(self, csum: str) -> int:
        return int(OSTree.commit_get_timestamp(self.load_commit(csum)))

    def commit_root(self, csum: str) -> tuple[str, str]:
        """The (contents, metadata) checksums of a commit's root directory."""
        root = _ok(f"read commit {csum}", _call(f"read_commit {csum}", self.gi.read_commit, csum, None))[0]
        root.ensure_resolved()
        return root.tree_get_contents_checksum(), root.tree_get_metadata_checksum()

    def lookup_path(self, csum: str, relpath: str) -> tuple[str, str] | None:
        """Find `relpath` in a commit without a checkout: ("file"|"symlink"|"dir", checksum) or None."""
        root = _ok(f"read commit {csum}", _call(f"read_commit {csum}", self.gi.read_commit, csum, None))[0]
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
        stream, _info, _xattrs = _ok("load file", _call(f"load_file {file_csum}", self.gi.load_file, file_csum, None))
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
        v = _ok(
            "load dirtree",
            _call(
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
        v = _ok(
            "load dirmeta",
            _call(f"load dirmeta {meta_csum}", self.gi.load_variant, OSTree.ObjectType.DIR_META, meta_csum),
        )
        uid, gid, mode, xattrs = v.unpack()
        pairs = [(bytes(k), bytes(val)) for k, val in xattrs]
        return socket.ntohl(uid), socket.ntohl(gid), socket.ntohl(mode), pairs

    def refs(self, prefix: str | None = None) -> dict[str, str]:
        return dict(_ok("list refs", _call(f"list_refs {prefix}", self.gi.list_refs, prefix, None)))

    # -- writing ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside land together; refs move only if the block completes."""
        _call("prepare_transaction", self.gi.prepare_transaction, None)
        try:
            yield
        except BaseException:
            with contextlib.suppress(GLib.Error):
                log.debug("ostree: abort_transaction")
                self.gi.abort_transaction(None)
            raise
        _call("commit_transaction", self.gi.commit_transaction, None)

    def set_ref(self, ref: str, csum: str | None) -> None:
        """Set (or with None, delete) a ref inside the current transaction."""
        _call(f"transaction_set_ref {ref} {csum}", self.gi.transaction_set_ref, None, ref, csum)

    def set_ref_now(self, ref: str, csum: str | None) -> None:
        _call(f"set_ref_immediate {ref} {csum}", self.gi.set_ref_immediate, None, ref, csum, None)

    def write_file(self, uid: int, gid: int, mode: int, data: bytes, xattrs: Any = None) -> str:
        return str(
            _call(
                f"write_regfile_inline mode={mode:o} size={len(data)}",
                self.gi.write_regfile_inline,
                None,
                uid,
                gid,
                mode,
                xattrs,
                data,
                None,
            )
        )

    def write_file_stream(
        self, uid: int, gid: int, mode: int, size: int, blocks: Iterator[bytes], xattrs: Any = None
    ) -> str:
        """Stream a large regular file into the repo, counting bytes (ContentWriter ignores short writes)."""
        writer = _call(
            f"write_regfile mode={mode:o} size={size}",
            self.gi.write_regfile,
            None,
            uid,
            gid,
            mode,
            size,
            xattrs,
        )
        written = 0
        for block in blocks:
            written += len(block)
            if written > size:
                break
            _call("content write", writer.write_all, block, None)
        if written != size:
            raise OstreeError(f"file content is {written} bytes where {size} were declared")
        return str(_call("content finish", writer.finish, None))

    def copy_with_xattrs(self, file_csum: str, transform: Callable[[list[tuple[bytes, bytes]], int], Any]) -> str:
        """The same file (content, owner, mode) with xattrs `transform(old xattrs, mode)`: relabelling
        without a checkout."""
        stream, info, old = _ok("load file", _call(f"load_file {file_csum}", self.gi.load_file, file_csum, None))
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

    def write_symlink(self, uid: int, gid: int, target: str, xattrs: Any = None) -> str:
        return str(_call(f"write_symlink -> {target}", self.gi.write_symlink, None, uid, gid, xattrs, target, None))

    def write_dirmeta(self, uid: int, gid: int, mode: int, xattrs: Any = None) -> str:
        key = (uid, gid, mode, bytes(xattrs.get_data_as_bytes().get_data()) if xattrs is not None else b"")
        cached = self._dirmeta_cache.get(key)
        if cached:
            return cached
        info = Gio.FileInfo.new()
        info.set_attribute_uint32("unix::uid", uid)
        info.set_attribute_uint32("unix::gid", gid)
        info.set_attribute_uint32("unix::mode", mode)
        v = OSTree.create_directory_metadata(info, xattrs)
        raw = _ok(
            "write dirmeta",
            _call("write_metadata dirmeta", self.gi.write_metadata, OSTree.ObjectType.DIR_META, None, v, None),
        )
        csum = OSTree.checksum_from_bytes(raw)
        self._dirmeta_cache[key] = csum
        return str(csum)

    def write_mtree(self, mt: OSTree.MutableTree) -> Any:
        return _ok("write tree", _call("write_mtree", self.gi.write_mtree, mt, None))

    def write_commit(
        self, parent: str | None, subject: str, metadata: dict[str, Any], root: Any, timestamp: int
    ) -> str:
        meta = GLib.Variant("a{sv}", metadata)
        return str(
            _ok(
                "write commit",
                _call(
                    f"write_commit_with_time parent={parent} subject={subject!r}",
                    self.gi.write_commit_with_time,
                    parent,
                    subject,
                    None,
                    meta,
                    root,
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
        _ok(what, _call(what, self.gi.checkout_at, opts, AT_FDCWD, str(dest), commit, None))

    def write_directory(self, tree: OSTree.MutableTree, path: Path, xattrs: Callable[[str], Any], policy: Any) -> None:
        """Add a directory on disk to `tree`: `xattrs(commit path)` gives each entry's xattrs; with a policy,
        libostree labels every entry (and fails on one it cannot label)."""

        def callback(_repo: Any, relpath: str, _info: Any, _data: Any) -> Any:
            return xattrs(relpath)

        flags = OSTree.RepoCommitModifierFlags.ERROR_ON_UNLABELED if policy is not None else 0
        modifier = OSTree.RepoCommitModifier.new(flags, None, None)
        modifier.set_xattr_callback(callback, None)
        if policy is not None:
            modifier.set_sepolicy(policy)
        what = f"write_dfd_to_mtree {path}"
        _ok(what, _call(what, self.gi.write_dfd_to_mtree, AT_FDCWD, str(path), tree, modifier, None))

    def tree_from_commit(self, csum: str) -> OSTree.MutableTree:
        """A lazily loaded mutable tree of a commit: cost grows with what is touched, not its size."""
        return _call(f"MutableTree.new_from_commit {csum}", OSTree.MutableTree.new_from_commit, self.gi, csum)


def new_tree() -> OSTree.MutableTree:
    return OSTree.MutableTree.new()


def tree_lookup(mt: OSTree.MutableTree, name: str) -> tuple[str | None, OSTree.MutableTree | None] | None:
    """(file checksum, subdir) of `name` in a mutable tree, or None when absent."""
    try:
        _, csum, sub = mt.lookup(name)
    except GLib.Error as e:
        if is_not_found(e):
            return None
        raise OstreeError(f"look up {name}: {e.message}") from e
    return csum, sub


def tree_ensure_dir(mt: OSTree.MutableTree, name: str) -> OSTree.MutableTree:
    return _ok(f"mkdir {name}", _call(f"ensure_dir {name}", mt.ensure_dir, name))


def tree_fill(mt: OSTree.MutableTree, repo: Repo, contents: str, meta: str) -> None:
    _call("fill_empty_from_dirtree", mt.fill_empty_from_dirtree, repo.gi, contents, meta)


def tree_replace_file(mt: OSTree.MutableTree, name: str, csum: str) -> None:
    _call(f"replace_file {name}", mt.replace_file, name, csum)


def tree_walk(mt: OSTree.MutableTree, parts: list[str]) -> OSTree.MutableTree | None:
    """The directory at `parts` below `mt`, or None."""
    for name in parts:
        found = tree_lookup(mt, name)
        if found is None or found[1] is None:
            return None
        mt = found[1]
    return mt


def tree_remove(mt: OSTree.MutableTree, name: str) -> None:
    _call(f"remove {name}", mt.remove, name, True)


def tree_remove_path(mt: OSTree.MutableTree, rel: str) -> None:
    """Remove `rel` (a file or a whole directory) below `mt`, if it is there."""
    parent_rel, _, name = rel.rpartition("/")
    parent = tree_walk(mt, parent_rel.split("/")) if parent_rel else mt
    if parent is not None:
        tree_remove(parent, name)


def sepolicy_from_commit(repo: Repo, commit: str) -> Any:
    """The SELinux policy inside a commit; an enabled but unloadable policy is an error, not silence."""
    policy = _call(f"SePolicy.new_from_commit {commit}", OSTree.SePolicy.new_from_commit, repo.gi, commit, None)
    if policy.get_name() is None:
        raise OstreeError(f"Commit {commit[:12]} enables SELinux, but its policy cannot be loaded.")
    return policy


def sepolicy_label(policy: Any, path: str, mode: int) -> str | None:
    _, label = _call(f"sepolicy label {path}", policy.get_label, path, mode, None)
    return str(label) if label else None


def bytes_variant(data: bytes) -> Any:
    """An `ay` variant built in one piece (PyGObject's Variant("ay", ...) makes one child per byte)."""
    return GLib.Variant.new_from_bytes(GLib.VariantType.new("ay"), GLib.Bytes.new(data), True)


def xattrs(pairs: list[tuple[bytes, bytes]]) -> Any:
    """An `a(ayay)` xattr list for content and dirmeta objects (names end in NUL, as ostree stores them)."""
    return Variant("a(ayay)", pairs) if pairs else None


# -- sysroots --------------------------------------------------------------------------------------


class Sysroot:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.gi = OSTree.Sysroot.new(Gio.File.new_for_path(str(path)))
        self._locked = False

    def load(self) -> None:
        _call(f"load sysroot {self.path}", self.gi.load, None)

    def repo(self) -> Repo:
        gi_repo = _ok("sysroot repo", _call("get_repo", self.gi.get_repo, None))
        return Repo(gi_repo, self.path / "ostree" / "repo")

    def deployments(self) -> list[OSTree.Deployment]:
        return list(self.gi.get_deployments())

    def booted(self) -> OSTree.Deployment | None:
        return self.gi.get_booted_deployment()

    def deployment_dir(self, dep: OSTree.Deployment) -> Path:
        return Path(self.gi.get_deployment_directory(dep).get_path())

    def lock(self, timeout: float, on_wait: Callable[[], None]) -> None:
        """Take the sysroot lock, waiting up to `timeout` seconds (telling the user once that it waits)."""
        deadline = time.monotonic() + timeout
        told = False
        while True:
            _, acquired = _call("try_lock", self.gi.try_lock)
            if acquired:
                self._locked = True
                return
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"Another process holds the lock of the sysroot {self.path} and did not release it "
                    f"within {timeout:g} s.",
                    hint="Wait for the other operation to finish, or pass a longer --lock-timeout.",
                )
            if not told:
                on_wait()
                told = True
            time.sleep(0.2)

    def unlock(self) -> None:
        if self._locked:
            self.gi.unlock()
            self._locked = False

    def deploy(
        self, osname: str, commit: str, origin: GLib.KeyFile, merge: OSTree.Deployment | None
    ) -> OSTree.Deployment:
        what = f"deploy_tree {osname} {commit}"
        try:
            with _chatter_to_stderr():
                dep = _ok(what, _call(what, self.gi.deploy_tree, osname, commit, origin, merge, None, None))
        except OstreeError:
            # deploy_tree leaves its half-written deployment directory behind; cleanup removes it.
            with contextlib.suppress(OstreeError):
                self.cleanup()
            raise
        flags = OSTree.SysrootSimpleWriteDeploymentFlags.NO_CLEAN
        with _chatter_to_stderr():
            _call("simple_write_deployment", self.gi.simple_write_deployment, osname, dep, merge, flags, None)
        return dep

    def write_origin(self, dep: OSTree.Deployment, origin: GLib.KeyFile) -> None:
        _call("write_origin_file", self.gi.write_origin_file, dep, origin, None)

    def cleanup(self) -> None:
        with _chatter_to_stderr():
            _call("sysroot cleanup", self.gi.cleanup, None)


def keyfile_from_text(text: str) -> GLib.KeyFile:
    kf = GLib.KeyFile.new()
    try:
        kf.load_from_data(text, len(text.encode()), GLib.KeyFileFlags.KEEP_COMMENTS)
    except GLib.Error as e:
        raise OstreeError(f"parse keyfile: {e.message}") from e
    return kf


def keyfile_copy(kf: GLib.KeyFile) -> GLib.KeyFile:
    data, _length = kf.to_data()
    return keyfile_from_text(data)


def keyfile_get(kf: GLib.KeyFile, group: str, key: str) -> str | None:
    try:
        return str(kf.get_string(group, key))
    except GLib.Error:
        return None


def keyfile_get_list(kf: GLib.KeyFile, group: str, key: str) -> list[str]:
    try:
        return [str(x) for x in kf.get_string_list(group, key)]
    except GLib.Error:
        return []


def keyfile_remove(kf: GLib.KeyFile, group: str, key: str | None = None) -> None:
    with contextlib.suppress(GLib.Error):
        if key is None:
            kf.remove_group(group)
        else:
            kf.remove_key(group, key)

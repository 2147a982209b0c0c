"""Assemble base + package trees into one commit at the metadata level: no checkout of the base.

The base tree loads lazily; only directories a package touches are read, so the cost grows with what is
layered. Directories the base already has keep the base's metadata; a file two trees ship with different
content is a conflict naming both owners.
"""

from __future__ import annotations

import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile import commitmeta as cm
from reconcile import ostree
from reconcile.errors import PackageError
from reconcile.ostree import MutableTree, Repo, Variant
from reconcile.pkgcache import CachedPackage, PackageCache
from reconcile.rpm import header as h
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.payload import tmpfiles_conf_name
from reconcile.rpm.rpmdb import (
    DEFAULT_RPMDB_DIR,
    RPMDB_FILE,
    SHM_FILE,
    WAL_FILE,
    build_rpmdb,
    find_rpmdb,
    read_headers,
)
from reconcile.rpm.treerules import PathRefused, tree_path
from reconcile.selinux import Labeler, label_xattrs

BASE_OWNER = "the base"


@dataclass
class TreeMerger:
    """Merges package trees into `tree`, remembering which package put each path there."""

    repo: Repo
    tree: MutableTree
    owners: dict[str, str] = field(default_factory=dict)

    def merge(self, pkg: CachedPackage) -> None:
        contents, _meta = self.repo.commit_root(pkg.commit)
        self._merge_dir(self.tree, contents, "", str(pkg.nevra))

    def _owner_of(self, path: str) -> str:
        while path:
            if path in self.owners:
                return self.owners[path]
            path = path.rpartition("/")[0]
        return BASE_OWNER

    def _conflict(self, path: str, owner: str, detail: str) -> PackageError:
        return PackageError(
            f"File conflict at /{path}: {owner} and {self._owner_of(path)} both ship it, {detail}.",
            hint="Layer only one of them; nothing was deployed.",
        )

    def _merge_dir(self, target: MutableTree, contents: str, path: str, owner: str) -> None:
        entries = self.repo.load_dirtree(contents)
        for name, csum in entries.files:
            p = f"{path}/{name}" if path else name
            found = ostree.tree_lookup(target, name)
            if found is None:
                ostree.tree_replace_file(target, name, csum)
                self.owners[p] = owner
            elif found[1] is not None:
                raise self._conflict(p, owner, "as a file where the other has a directory")
            elif found[0] != csum:
                raise self._conflict(p, owner, "with different content or metadata")
        for name, tree_csum, meta_csum in entries.dirs:
            p = f"{path}/{name}" if path else name
            found = ostree.tree_lookup(target, name)
            if found is None:
                sub = ostree.tree_ensure_dir(target, name)
                ostree.tree_fill(sub, self.repo, tree_csum, meta_csum)
                self.owners[p] = owner
            elif found[1] is None:
                raise self._conflict(p, owner, "as a directory where the other has a file or symlink")
            else:
                self._merge_dir(found[1], tree_csum, p, owner)


def write_rpmdb(
    repo: Repo,
    tree: MutableTree,
    base: str | None,
    cache: PackageCache,
    packages: list[CachedPackage],
    erase: list[str] | None = None,
    labeler: Labeler | None = None,
) -> None:
    """Replace the tree's rpmdb with one listing the base's packages, minus `erase`, plus `packages`. On a base,
    the base's rpmdb.sqlite stays as it is (its object shared with the base) and the changes go in beside it
    as sqlite's write-ahead log; only a tree without a base gets a database file of its own."""
    found = find_rpmdb(repo, base) if base else None
    base_db = repo.content_path(found.file_checksum) if found else None
    base_wal = repo.content_path(found.wal_checksum) if found and found.wal_checksum else None
    if found and (base_db is None or (found.wal_checksum and base_wal is None)):
        raise PackageError("The base's rpmdb cannot be read from this repo mode (bare or bare-user needed).")
    directory = found.directory if found else DEFAULT_RPMDB_DIR
    headers = [(p.nevra.name, cache.header_raw(p.commit)) for p in packages]
    (repo.path / "tmp").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reconcile-rpmdb-", dir=repo.path / "tmp") as work:
        built = build_rpmdb((base_db, base_wal) if base_db else None, headers, erase or [], Path(work))
        if built.wal is not None and built.shm is not None:
            written = {WAL_FILE: built.wal, SHM_FILE: built.shm}
        else:
            written = {RPMDB_FILE: built.db}
        csums = {name: _write_file(repo, path, f"/{directory}/{name}", labeler) for name, path in written.items()}
    parent = tree
    parts = directory.split("/")
    for i, name in enumerate(parts):
        found_dir = ostree.tree_lookup(parent, name)
        if found_dir is None:
            parent = ostree.tree_ensure_dir(parent, name)
            dir_mode = stat.S_IFDIR | 0o755
            xattrs = label_xattrs(labeler, "/" + "/".join(parts[: i + 1]), dir_mode)
            parent.set_metadata_checksum(repo.write_dirmeta(0, 0, dir_mode, xattrs))
        elif found_dir[1] is None:
            raise PackageError(f"/{directory} is not a directory in the tree; cannot write the rpmdb.")
        else:
            parent = found_dir[1]
    if RPMDB_FILE in csums:  # a whole database: a log or index left from the base would be applied over it
        for stale in (WAL_FILE, SHM_FILE):
            if ostree.tree_lookup(parent, stale) is not None:
                ostree.tree_remove(parent, stale)
    for name, csum in csums.items():
        ostree.tree_replace_file(parent, name, csum)


def _write_file(repo: Repo, path: Path, tree_path: str, labeler: Labeler | None) -> str:
    size = path.stat().st_size
    mode = stat.S_IFREG | 0o644
    xattrs = label_xattrs(labeler, tree_path, mode)
    with open(path, "rb") as f:
        return repo.write_file_stream(0, 0, mode, size, iter(lambda: f.read(8 << 20), b""), xattrs)


def ensure_boot_mountpoint(repo: Repo, tree: MutableTree, labeler: Labeler | None) -> None:
    """An empty /boot (0755): the boot partition's mount point, which distribution compose checks expect
    (kernels live under /usr/lib/modules/<kver>/). A base's own /boot is the base's: it is left as it is."""
    if ostree.tree_lookup(tree, "boot") is not None:
        return
    boot = ostree.tree_ensure_dir(tree, "boot")
    mode = stat.S_IFDIR | 0o755
    boot.set_metadata_checksum(repo.write_dirmeta(0, 0, mode, label_xattrs(labeler, "/boot", mode)))


def remove_base_packages(repo: Repo, tree: MutableTree, base: str, nevras: list[str]) -> None:
    """`overrides.remove`: drop the files of base packages; directories go only when nothing else in the
    base owns them and they end up empty."""
    headers = {str(Nevra.from_header(hdr)): hdr for hdr in read_headers(repo, base)}
    doomed = [headers[n] for n in nevras]
    kept: set[str] = set()  # tree paths (and their parents) that remaining base packages still own
    for name, hdr in headers.items():
        if name in nevras:
            continue
        for path in h.file_paths(hdr):
            rel = _tree_path(path)
            if rel:
                parts = rel.split("/")
                kept.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    dirs = []
    for hdr in doomed:
        ostree.tree_remove_path(tree, f"usr/lib/tmpfiles.d/{tmpfiles_conf_name(hdr.string(h.NAME))}")
        for fe in h.file_entries(hdr):
            rel = _tree_path(fe.path)
            if rel is None or rel in kept:
                continue
            if stat.S_ISDIR(fe.mode):
                dirs.append(rel)
            else:
                ostree.tree_remove_path(tree, rel)
    for rel in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        found = ostree.tree_walk(tree, rel.split("/"))
        if found is not None and not found.get_files() and not found.get_subdirs():
            ostree.tree_remove_path(tree, rel)


def _tree_path(path: str) -> str | None:
    try:
        return tree_path(path, allow_skeleton=True)
    except PathRefused:
        return None


def boot_metadata(repo: Repo, commit: str) -> dict[str, Any]:
    meta = repo.commit_metadata(commit)
    out: dict[str, Any] = {}
    if "ostree.bootable" in meta:
        out["ostree.bootable"] = Variant("b", bool(meta["ostree.bootable"]))
    if "ostree.linux" in meta:
        out["ostree.linux"] = Variant("s", str(meta["ostree.linux"]))
    version = cm.commit_version(meta)
    if version is not None:
        out[cm.VERSION] = Variant("s", version)
    return out


def kernel_metadata(tree: MutableTree) -> dict[str, Any]:
    """`ostree commit --bootable` style keys, from the kernel under /usr/lib/modules."""
    modules = ostree.tree_walk(tree, ["usr", "lib", "modules"])
    if modules is None:
        return {}
    for kver, sub in sorted(modules.get_subdirs().items()):
        if "vmlinuz" in sub.get_files():
            return {"ostree.bootable": Variant("b", True), "ostree.linux": Variant("s", kver)}
    return {}

"""Mutable trees (what a commit is built from), SELinux policies of commits, and xattr variants."""

from __future__ import annotations

from typing import Any

from reconcile.errors import OstreeError
from reconcile.ostree._gi import (
    GLib,
    OSTree,
    SePolicy,
    Variant,
    Xattrs,
    call,
    is_not_found,
    unwrap,
)
from reconcile.ostree.repo import Repo


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
    return unwrap(f"mkdir {name}", call(f"ensure_dir {name}", mt.ensure_dir, name))


def tree_fill(mt: OSTree.MutableTree, repo: Repo, contents: str, meta: str) -> None:
    call("fill_empty_from_dirtree", mt.fill_empty_from_dirtree, repo.gi, contents, meta)


def tree_replace_file(mt: OSTree.MutableTree, name: str, csum: str) -> None:
    call(f"replace_file {name}", mt.replace_file, name, csum)


def tree_walk(mt: OSTree.MutableTree, parts: list[str]) -> OSTree.MutableTree | None:
    """The directory at `parts` below `mt`, or None."""
    for name in parts:
        found = tree_lookup(mt, name)
        if found is None or found[1] is None:
            return None
        mt = found[1]
    return mt


def tree_remove(mt: OSTree.MutableTree, name: str) -> None:
    call(f"remove {name}", mt.remove, name, True)


def tree_remove_path(mt: OSTree.MutableTree, rel: str) -> None:
    """Remove `rel` (a file or a whole directory) below `mt`, if it is there."""
    parent_rel, _, name = rel.rpartition("/")
    parent = tree_walk(mt, parent_rel.split("/")) if parent_rel else mt
    if parent is not None:
        tree_remove(parent, name)


def sepolicy_from_commit(repo: Repo, commit: str) -> SePolicy:
    """The SELinux policy inside a commit; an enabled but unloadable policy is an error, not silence."""
    policy = call(f"SePolicy.new_from_commit {commit}", OSTree.SePolicy.new_from_commit, repo.gi, commit, None)
    name = policy.get_name()
    if name is None:
        raise OstreeError(f"Commit {commit[:12]} enables SELinux, but its policy cannot be loaded.")
    return SePolicy(policy, str(name))


def sepolicy_label(policy: SePolicy, path: str, mode: int) -> str | None:
    _, label = call(f"sepolicy label {path}", policy.gi.get_label, path, mode, None)
    return str(label) if label else None


def bytes_variant(data: bytes) -> Any:
    """An `ay` variant built in one piece (PyGObject's Variant("ay", ...) makes one child per byte)."""
    return GLib.Variant.new_from_bytes(GLib.VariantType.new("ay"), GLib.Bytes.new(data), True)


def xattrs(pairs: list[tuple[bytes, bytes]]) -> Xattrs | None:
    """An `a(ayay)` xattr list for content and dirmeta objects (names end in NUL, as ostree stores them)."""
    return Xattrs(Variant("a(ayay)", pairs)) if pairs else None

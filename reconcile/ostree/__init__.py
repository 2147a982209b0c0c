"""The one package that talks to libostree: every call is logged and every failure becomes an `OstreeError`.

`repo` (commits, objects, transactions), `tree` (mutable trees, SELinux policies, xattrs), `sysroot`
(deployments, the lock) and `keyfile` (origin files); `_gi` holds the bindings and the call wrappers.
See ../shared/docs/ostree-platform-notes.md for the traps stepped around (checksum types, calls that fail by
returning False, enum fields, lazy trees).
"""

from reconcile.ostree._gi import (
    AT_FDCWD,
    NOT_FOUND,
    Deployment,
    KeyFile,
    MutableTree,
    SePolicy,
    TreeRoot,
    Variant,
    Xattrs,
    is_not_found,
)
from reconcile.ostree.keyfile import keyfile_copy, keyfile_from_text, keyfile_get, keyfile_get_list, keyfile_remove
from reconcile.ostree.repo import DirEntries, Repo
from reconcile.ostree.sysroot import Sysroot
from reconcile.ostree.tree import (
    bytes_variant,
    new_tree,
    sepolicy_from_commit,
    sepolicy_label,
    tree_ensure_dir,
    tree_fill,
    tree_lookup,
    tree_remove,
    tree_remove_path,
    tree_replace_file,
    tree_walk,
    xattrs,
)

__all__ = [
    "AT_FDCWD",
    "NOT_FOUND",
    "Deployment",
    "DirEntries",
    "KeyFile",
    "MutableTree",
    "Repo",
    "SePolicy",
    "Sysroot",
    "TreeRoot",
    "Variant",
    "Xattrs",
    "bytes_variant",
    "is_not_found",
    "keyfile_copy",
    "keyfile_from_text",
    "keyfile_get",
    "keyfile_get_list",
    "keyfile_remove",
    "new_tree",
    "sepolicy_from_commit",
    "sepolicy_label",
    "tree_ensure_dir",
    "tree_fill",
    "tree_lookup",
    "tree_remove",
    "tree_remove_path",
    "tree_replace_file",
    "tree_walk",
    "xattrs",
]

"""SELinux labels for what reconcile writes, from the base's own policy.

The policy is identified by the OSTree content checksum of the base's `selinux` configuration directory,
which covers the binary policy and the file contexts alike (libostree's own policy checksum covers only
the binary policy, so a file-contexts change would go unnoticed).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconcile import ostree
from reconcile.errors import ReconcileError
from reconcile.ostree import Repo

NO_POLICY = ""
SELINUX_XATTR = b"security.selinux\0"
_CONFIG_DIRS = ("usr/etc/selinux", "etc/selinux")


@dataclass(frozen=True)
class Labeler:
    """Labels paths of the final tree (e.g. /usr/etc/foo) the way the base's policy would."""

    policy_id: str
    policy: ostree.SePolicy

    def label(self, path: str, mode: int) -> bytes:
        label = ostree.sepolicy_label(self.policy, path, mode)
        if not label:
            raise ReconcileError(
                f"The base's SELinux policy gives no label for {path}; refusing to write an unlabelled file "
                "into a tree that enforces a policy."
            )
        return label.encode() + b"\0"


def label_xattrs(labeler: Labeler | None, path: str, mode: int) -> ostree.Xattrs | None:
    """The xattrs to write a final-tree path with: its label, or none when the base has no policy."""
    return ostree.xattrs([(SELINUX_XATTR, labeler.label(path, mode))]) if labeler else None


def policy_id(repo: Repo, commit: str) -> str:
    """NO_POLICY when the tree has no SELinux configuration, or it is disabled."""
    for directory in _CONFIG_DIRS:
        found = repo.lookup_path(commit, directory)
        if found and found[0] == "dir":
            text = repo.read_text(commit, f"{directory}/config", limit=1 << 20)
            if text is None:
                return NO_POLICY
            mode = next(
                (line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("SELINUX=")), ""
            )
            return found[1] if mode in ("enforcing", "permissive") else NO_POLICY
    return NO_POLICY


def labeler_for(repo: Repo, commit: str) -> Labeler | None:
    pid = policy_id(repo, commit)
    if pid == NO_POLICY:
        return None
    policy = ostree.sepolicy_from_commit(repo, commit)
    return Labeler(pid, policy)

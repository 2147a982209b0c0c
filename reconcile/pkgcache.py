"""The package cache: one OSTree commit per RPM, ref `reconcile/pkg/<name>/<evr>.<arch>` (DESIGN §3).

A cached commit is reused only when everything it was built from still holds: the repodata checksum of
the RPM, the ids its owners map to in the target tree, the SELinux policy and the import format.
"""

from __future__ import annotations

import dataclasses
import io
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile import commitmeta as cm
from reconcile import ostree
from reconcile.errors import PackageError
from reconcile.ostree import Repo
from reconcile.rpm import header as h
from reconcile.rpm.nevra import Nevra, pkgcache_ref
from reconcile.rpm.payload import PayloadImporter
from reconcile.rpm.treerules import Owners
from reconcile.selinux import NO_POLICY, SELINUX_XATTR, Labeler

IMPORT_FORMAT = 1
_PASSWD_PATHS = ("usr/etc/passwd", "usr/lib/passwd", "etc/passwd")
_GROUP_PATHS = ("usr/etc/group", "usr/lib/group", "etc/group")
BOOTSTRAP_FILES = {"/etc/passwd", "/etc/group", "/usr/lib/passwd", "/usr/lib/group", "/etc/selinux/config"}


@dataclass(frozen=True)
class CachedPackage:
    nevra: Nevra
    commit: str
    checksum: str
    repo: str

    @property
    def ref(self) -> str:
        return pkgcache_ref(self.nevra)


def owners_in_commit(repo: Repo, commit: str) -> Owners:
    """Users and groups of a tree, from /usr/etc and nss-altfiles style /usr/lib files."""

    def read(paths: tuple[str, ...]) -> str:
        texts = [repo.read_text(commit, p, limit=16 << 20) for p in paths]
        return "\n".join(t for t in texts if t is not None)

    users, groups = Owners.parse(read(_PASSWD_PATHS), read(_GROUP_PATHS))
    return Owners(users, groups)


def read_rpm(path: Path, what: str) -> h.RpmHeaders:
    try:
        with open(path, "rb") as f:
            headers = h.read_rpm_headers(f)
        headers.verify_header_digest()
    except h.HeaderError as e:
        raise PackageError(f"{what} is not a valid RPM: {e}.") from None
    return headers


def refuse_scriptlets(headers: h.RpmHeaders, nevra: Nevra) -> None:
    """Scriptlets are not run yet; layering without them would give a silently broken tree."""
    found = list(h.scripts(headers.header))
    if found:
        kinds = ", ".join(f"{kind} ({prog})" for kind, prog in found)
        raise PackageError(
            f"Package {nevra} has scriptlets ({kinds}); reconcile does not run scriptlets yet, so it refuses "
            "to layer it rather than skip them.",
            hint="Remove it from packages.requested (or the package that pulls it in).",
        )


class PackageCache:
    def __init__(self, repo: Repo, owners: Owners | None, labeler: Labeler | None, mode: str) -> None:
        self.repo = repo
        self.owners = owners
        self.labeler = labeler
        self.policy = labeler.policy_id if labeler else NO_POLICY
        self.mode = mode

    def find(self, nevra: Nevra, checksum: str, repo_id: str) -> CachedPackage | None:
        """A cached commit usable as is; one that differs only by SELinux policy is relabelled in place
        (a new package commit, no download: the base is never touched)."""
        commit = self.repo.resolve(pkgcache_ref(nevra))
        if commit is None:
            return None
        pc = cm.PackageCommit.from_metadata(self.repo.commit_metadata(commit))
        if (
            pc is None
            or pc.checksum != checksum
            or pc.import_format != IMPORT_FORMAT
            or pc.mode != self.mode
            or not self._owners_match(pc.owners)
        ):
            return None
        if pc.policy != self.policy:
            commit = self._relabel(commit, pc)
        return CachedPackage(nevra, commit, checksum, repo_id)

    def _relabel(self, commit: str, pc: cm.PackageCommit) -> str:
        """Rewrite a package commit's objects with this policy's labels (inside the caller's transaction)."""
        contents, dirmeta = self.repo.commit_root(commit)
        tree = ostree.new_tree()
        self._relabel_dir(tree, contents, dirmeta, "")
        metadata = dataclasses.replace(pc, policy=self.policy).to_metadata()
        nevra = pc.nevra
        root = self.repo.write_mtree(tree)
        new = self.repo.write_commit(None, str(nevra), metadata, root, self.repo.commit_timestamp(commit))
        self.repo.set_ref(pkgcache_ref(nevra), new)
        return new

    def _relabel_dir(self, tree: Any, contents: str, dirmeta: str, path: str) -> None:
        uid, gid, mode, xattrs = self.repo.load_dirmeta(dirmeta)
        tree.set_metadata_checksum(self.repo.write_dirmeta(uid, gid, mode, self._labelled(xattrs, path or "/", mode)))
        entries = self.repo.load_dirtree(contents)
        for name, csum in entries.files:
            child = f"{path}/{name}"

            def relabelled(old: list[tuple[bytes, bytes]], mode: int, child: str = child) -> ostree.Xattrs | None:
                return self._labelled(old, child, mode)

            ostree.tree_replace_file(tree, name, self.repo.copy_with_xattrs(csum, relabelled))
        for name, sub_contents, sub_meta in entries.dirs:
            self._relabel_dir(ostree.tree_ensure_dir(tree, name), sub_contents, sub_meta, f"{path}/{name}")

    def _labelled(self, xattrs: list[tuple[bytes, bytes]], path: str, mode: int) -> ostree.Xattrs | None:
        pairs = [(k, v) for k, v in xattrs if k != SELINUX_XATTR]
        if self.labeler is not None:
            pairs.insert(0, (SELINUX_XATTR, self.labeler.label(path, mode)))
        return ostree.xattrs(pairs)

    def cached_raw(self, nevra: Nevra, checksum: str) -> bytes | None:
        """Lead, signature header and header of a package the cache holds (any import), as the RPM had them."""
        commit = self.repo.resolve(pkgcache_ref(nevra))
        if commit is None:
            return None
        pc = cm.PackageCommit.from_metadata(self.repo.commit_metadata(commit))
        return pc.header if pc is not None and pc.checksum == checksum else None

    def cached_header(self, nevra: Nevra, checksum: str) -> h.Header | None:
        """The header of a package the cache holds (any import), to check it before downloading."""
        raw = self.cached_raw(nevra, checksum)
        if raw is None:
            return None
        try:
            return h.read_rpm_headers(io.BytesIO(raw)).header
        except h.HeaderError:
            return None

    def _owners_match(self, used: dict[str, int]) -> bool:
        if self.owners is None:
            return False
        for key, wanted in used.items():
            kind, name = key.split(":", 1)
            table = self.owners.users if kind == "u" else self.owners.groups
            if table.get(name, -1) != wanted:
                return False
        return True

    def import_rpm(self, path: Path, expected: Nevra, checksum: str, repo_id: str) -> CachedPackage:
        """Import inside the caller's transaction; the ref lands only when that transaction commits."""
        headers = read_rpm(path, f"The downloaded file for {expected}")
        nevra = Nevra.from_header(headers.header)
        if nevra != expected:
            raise PackageError(f"The repo metadata promised {expected}, but the downloaded file is {nevra}.")
        if h.SOURCERPM not in headers.header:
            raise PackageError(f"{nevra} is a source RPM; only binary RPMs can be layered.")
        fmt = headers.header.string(h.PAYLOADFORMAT, "cpio")
        if fmt != "cpio":
            raise PackageError(f"{nevra} has a {fmt!r} payload; only cpio payloads are supported.")
        if self.mode == "compose":
            refuse_scriptlets(headers, nevra)  # composing a base runs no scriptlets yet
        if self.owners is None:
            raise PackageError("internal: the package cache was opened without an owner map")
        composing = self.mode == "compose"  # a compose has no plan that checked the files first
        importer = PayloadImporter(
            self.repo, nevra.name, headers, self.owners, composing, labeler=self.labeler, planned=not composing
        )
        with open(path, "rb") as f:
            imported = importer.run(f)
        root = self.repo.write_mtree(imported.tree)
        files = h.file_entries(headers.header)
        metadata = cm.PackageCommit(
            nevra=nevra,
            header=headers.raw,
            checksum=checksum,
            owners=self.owners.used_by([f for f in files if not f.is_ghost]),
            policy=self.policy,
            import_format=IMPORT_FORMAT,
            mode=self.mode,
        ).to_metadata()
        timestamp = headers.header.integer(h.BUILDTIME, 0) or 0
        commit = self.repo.write_commit(None, str(nevra), metadata, root, timestamp)
        cached = CachedPackage(nevra, commit, checksum, repo_id)
        self.repo.set_ref(cached.ref, commit)
        return cached

    def header_raw(self, commit: str) -> bytes:
        pc = cm.PackageCommit.from_metadata(self.repo.commit_metadata(commit))
        if pc is None:
            raise PackageError(f"The package-cache commit {commit} lacks its RPM header.")
        return pc.header


def ships_bootstrap_files(headers: h.RpmHeaders) -> bool:
    """Accounts or the SELinux configuration: what the rest of a compose is imported against."""
    return any(
        f.path in BOOTSTRAP_FILES and stat.S_ISREG(f.mode) and not f.is_ghost for f in h.file_entries(headers.header)
    )

"""`reconcile compose`: build a base commit from RPMs with the same import and merge used for layering."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile import commitmeta as cm
from reconcile import ostree
from reconcile.apply.assemble import TreeMerger, ensure_boot_mountpoint, kernel_metadata, write_rpmdb
from reconcile.errors import ReconcileError
from reconcile.ostree import Repo, Variant
from reconcile.pkgcache import (
    CachedPackage,
    PackageCache,
    owners_in_commit,
    read_rpm,
    ships_bootstrap_files,
)
from reconcile.planner import model as m
from reconcile.planner.pins import pin_candidate
from reconcile.planner.solver import Solver
from reconcile.report import Reporter
from reconcile.repos.config import load_repo_configs
from reconcile.repos.source import RepoSet, wanted
from reconcile.repos.variables import Variables
from reconcile.rpm.nevra import Nevra
from reconcile.rpm.treerules import Owners
from reconcile.selinux import label_xattrs, labeler_for

COMPOSE_MODE = "compose"


@dataclass(frozen=True)
class ComposeResult:
    commit: str
    packages: list[Nevra]


def compose(
    repo_path: Path,
    ref: str,
    reposdir: Path,
    specs: list[str],
    reporter: Reporter,
    version: str | None = None,
    releasever: str | None = None,
) -> ComposeResult:
    repo = Repo.open_or_create(repo_path)
    arch = os.uname().machine
    solver = Solver(arch)
    variables = Variables.for_host(arch, releasever, None)
    configs = load_repo_configs([reposdir], variables)
    if not configs.repos:
        raise ReconcileError(f"{reposdir} has no enabled repos to compose from.")
    repos = RepoSet(configs, repo.path / "tmp" / "reconcile-cache", reporter)
    with reporter.step("Refreshing repo metadata"):
        for meta in repos.load_metadata():
            solver.add_repo(meta)
    if repos.unavailable:
        raise next(iter(repos.unavailable.values()))
    with reporter.step("Resolving dependencies"):
        solved = solver.resolve(specs, recommends=True, filelists=repos.filelists)
    pinned = [pin_candidate(c, c.nevra.name in solved.requested) for c in solved.packages]
    wanted_packages = [wanted(p) for p in pinned]
    files = repos.download(wanted_packages)
    with repo.transaction():
        with reporter.step(f"Importing {len(pinned)} package(s)"):
            cache, packages = _import_all(repo, pinned, files)
        with reporter.step("Assembling and committing the base"):
            commit = _commit(repo, cache, packages, ref, version)
    repos.discard(wanted_packages)
    return ComposeResult(commit, [p.nevra for p in packages])


def _import_all(
    repo: Repo, pinned: list[m.PinnedPackage], files: dict[str, Path]
) -> tuple[PackageCache, list[CachedPackage]]:
    """Packages shipping passwd/group or the SELinux configuration go first: the others' owners are mapped
    through those files and labelled with that policy (and the first ones are relabelled with it)."""
    first = [p for p in pinned if ships_bootstrap_files(read_rpm(files[p.nevra], p.nevra))]
    rest = [p for p in pinned if p not in first]
    cache = PackageCache(repo, Owners({}, {}), None, mode=COMPOSE_MODE)
    imported = [_import_one(cache, p, files) for p in first]
    if imported:
        tree = ostree.new_tree()
        tree.set_metadata_checksum(repo.write_dirmeta(0, 0, stat.S_IFDIR | 0o755))
        merger = TreeMerger(repo, tree)
        for pkg in imported:
            merger.merge(pkg)
        bootstrap = repo.write_commit(None, "bootstrap", {}, repo.write_mtree(tree), 0)
        cache = PackageCache(repo, owners_in_commit(repo, bootstrap), labeler_for(repo, bootstrap), mode=COMPOSE_MODE)
        imported = [_import_one(cache, p, files) for p in first]
    imported += [_import_one(cache, p, files) for p in rest]
    return cache, sorted(imported, key=lambda c: c.nevra)


def _import_one(cache: PackageCache, p: m.PinnedPackage, files: dict[str, Path]) -> CachedPackage:
    nevra = p.parsed()
    return cache.find(nevra, p.checksum, p.repo) or cache.import_rpm(files[p.nevra], nevra, p.checksum, p.repo)


def _link_sysimage_rpmdb(repo: Repo, tree: ostree.MutableTree, cache: PackageCache) -> None:
    """rpm's own default database path (/usr/lib/sysimage/rpm) points at the tree's /usr/share/rpm, as in
    rpm-ostree bases, so `rpm --root TREE -qa` finds it with a stock rpm configuration."""
    lib = ostree.tree_walk(tree, ["usr", "lib"])
    if lib is None or ostree.tree_lookup(lib, "sysimage") is not None:
        return
    sysimage = ostree.tree_ensure_dir(lib, "sysimage")
    dir_mode, link_mode = stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777
    dir_xattrs = label_xattrs(cache.labeler, "/usr/lib/sysimage", dir_mode)
    sysimage.set_metadata_checksum(repo.write_dirmeta(0, 0, dir_mode, dir_xattrs))
    link_xattrs = label_xattrs(cache.labeler, "/usr/lib/sysimage/rpm", link_mode)
    ostree.tree_replace_file(sysimage, "rpm", repo.write_symlink(0, 0, "../../share/rpm", link_xattrs))


def _commit(repo: Repo, cache: PackageCache, packages: list[CachedPackage], ref: str, version: str | None) -> str:
    tree = ostree.new_tree()
    mode = stat.S_IFDIR | 0o755
    root_xattrs = label_xattrs(cache.labeler, "/", mode)
    tree.set_metadata_checksum(repo.write_dirmeta(0, 0, mode, root_xattrs))
    merger = TreeMerger(repo, tree)
    for pkg in packages:
        merger.merge(pkg)
    write_rpmdb(repo, tree, None, cache, packages, labeler=cache.labeler)
    _link_sysimage_rpmdb(repo, tree, cache)
    ensure_boot_mountpoint(repo, tree, cache.labeler)
    metadata: dict[str, Any] = {
        **kernel_metadata(tree),
        cm.PKGLIST: cm.nevra_list([p.nevra for p in packages]),
    }
    if version:
        metadata[cm.VERSION] = Variant("s", version)
    root = repo.write_mtree(tree)
    timestamp = max((repo.commit_timestamp(p.commit) for p in packages), default=0)
    commit = repo.write_commit(None, f"reconcile compose: {len(packages)} packages", metadata, root, timestamp)
    repo.set_ref(ref, commit)
    return commit

"""Building the layered commit: headers, accounts, import, assembly, then scriptlets when there are any.

Everything is written in one OSTree transaction, so a failure anywhere (a bad download, a refused or failing
scriptlet) moves no ref. Without scriptlets there is no checkout at all: the tree is assembled from commit
metadata alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile import commitmeta as cm
from reconcile import rpmostree_meta
from reconcile.accounts import Declared, declared, sysusers_paths, sysusers_texts
from reconcile.apply.assemble import (
    TreeMerger,
    boot_metadata,
    ensure_boot_mountpoint,
    remove_base_packages,
    write_rpmdb,
)
from reconcile.apply.packages import PackageFetcher
from reconcile.apply.scripts import ScriptPlan, plan_scripts, run_scripts
from reconcile.apply.users import AccountDb
from reconcile.commitmeta import LayeredPackage
from reconcile.context import Context
from reconcile.errors import PackageError
from reconcile.ostree import MutableTree, Repo
from reconcile.pkgcache import CachedPackage, PackageCache, read_rpm
from reconcile.planner import model as m
from reconcile.report import Reporter
from reconcile.rpm.header import FILESIZES, LONGFILESIZES, Header
from reconcile.rpm.nevra import Nevra
from reconcile.selinux import Labeler, labeler_for, policy_id

LAYER_MODE = "layer"
Fetch = Callable[[list[m.PinnedPackage]], dict[str, Path]]


MIB = 1048576
SPACE_MARGIN = 64 * MIB  # room for the commit's own objects: the tree, the rpmdb, the metadata


@dataclass(frozen=True)
class BuildInputs:
    plan: m.Plan
    ignore_scripts: list[str]
    previous_accounts: list[tuple[str, str]]
    fetcher: PackageFetcher


def build_layered_commit(ctx: Context, inputs: BuildInputs) -> str:
    repo, reporter, target = ctx.repo, ctx.reporter, inputs.plan.target
    base = target.base_checksum
    labeler = labeler_for(repo, base)
    fetch = inputs.fetcher.fetch
    with repo.transaction():
        with reporter.step("Reading the packages' headers"):
            headers, files = _headers(repo, target.to_install, labeler, fetch)
        accounts = AccountDb.load(repo, base, inputs.previous_accounts)
        requests = _account_requests(repo, headers, files, target.to_install)
        if requests:
            with reporter.step("Creating the packages' users and groups"):
                accounts.create(requests)
        cache = PackageCache(repo, accounts.owners(), labeler, mode=LAYER_MODE)
        packages = _import(ctx, cache, target.to_install, files, fetch)
        layered = {str(p.nevra): headers[str(p.nevra)] for p in packages}
        scripts = plan_scripts(repo, base, layered, inputs.ignore_scripts, erased=set(target.erased_base))
        with reporter.step("Assembling the layered commit"):
            tree = _assemble(repo, target, cache, packages, accounts, labeler)
        if not scripts.empty:
            tree = _scripted(repo, target, tree, scripts, reporter, labeler)
            new_policy = _policy_built(repo, target, tree, labeler)
            if new_policy is not None:  # the scripts installed a policy module: label by the tree's new policy
                with reporter.step("Relabelling the layered packages with the policy their scripts built"):
                    cache = PackageCache(repo, accounts.owners(), new_policy, mode=LAYER_MODE)
                    packages = _import(ctx, cache, target.to_install, files, fetch)
                    tree = _assemble(repo, target, cache, packages, accounts, new_policy)
                tree = _scripted(repo, target, tree, scripts, reporter, new_policy)
                again = _policy_built(repo, target, tree, labeler)
                if again is None or again.policy_id != new_policy.policy_id:
                    raise PackageError(
                        "The SELinux policy the layered packages' scripts build differs between two runs on the "
                        "same tree; the layered files cannot be labelled by it.",
                        hint="Nothing was deployed. Check the packages' %post semodule calls.",
                    )
        return _commit(repo, target, tree, packages, [(r.id, r.timestamp) for r in inputs.plan.repos])


def _scripted(
    repo: Repo, target: m.Target, tree: MutableTree, scripts: ScriptPlan, reporter: Reporter, labeler: Labeler | None
) -> MutableTree:
    draft = repo.write_commit(target.base_checksum, "reconcile: before scriptlets", {}, repo.write_mtree(tree), 0)
    folded, _runs = run_scripts(repo, draft, scripts, reporter, labeler.policy if labeler else None)
    return folded


def _policy_built(repo: Repo, target: m.Target, tree: MutableTree, labeler: Labeler | None) -> Labeler | None:
    """The tree's policy when the scripts changed it from the base's (compared by policy id), else None."""
    if labeler is None:
        return None
    after = repo.write_commit(target.base_checksum, "reconcile: after scriptlets", {}, repo.write_mtree(tree), 0)
    if policy_id(repo, after) == labeler.policy_id:  # the usual case: no policy is loaded again
        return None
    return labeler_for(repo, after)


def _headers(
    repo: Repo, pinned: list[m.PinnedPackage], labeler: Labeler | None, fetch: Fetch
) -> tuple[dict[str, Header], dict[str, Path]]:
    """Every package's header: from the package cache when it holds that build, else downloaded."""
    probe = PackageCache(repo, None, labeler, mode=LAYER_MODE)
    headers: dict[str, Header] = {}
    missing = []
    for p in pinned:
        hdr = probe.cached_header(p.parsed(), p.checksum)
        if hdr is None:
            missing.append(p)
        else:
            headers[p.nevra] = hdr
    files = fetch(missing) if missing else {}
    for p in missing:
        headers[p.nevra] = read_rpm(files[p.nevra], p.nevra).header
    _room_for(repo, {p.nevra: headers[p.nevra] for p in missing})
    return headers, files


def _room_for(repo: Repo, imports: dict[str, Header]) -> None:
    """The files a header declares must fit the repo's filesystem before any is written: a small package that
    unpacks to far more (a decompression bomb, or just a big one) is refused, not left to fill the disk."""
    need = {nevra: sum(hdr.integers(LONGFILESIZES) or hdr.integers(FILESIZES)) for nevra, hdr in imports.items()}
    stat = os.statvfs(repo.path)
    free = stat.f_bavail * stat.f_frsize
    if sum(need.values()) + SPACE_MARGIN > free:
        largest = max(need, key=lambda nevra: need[nevra])
        raise PackageError(
            f"The packages to import unpack to {sum(need.values()) / MIB:.0f} MiB (the largest, {largest}, to "
            f"{need[largest] / MIB:.0f} MiB), but the filesystem of {repo.path} has {free / MIB:.0f} MiB free "
            f"(and keeps {SPACE_MARGIN / MIB:.0f} MiB spare).",
            hint="Free space there, or drop the package. Nothing was written or deployed.",
        )


def _account_requests(
    repo: Repo, headers: dict[str, Header], files: dict[str, Path], pinned: list[m.PinnedPackage]
) -> Declared:
    """Users, groups and memberships the packages declare (the same decision the plan showed)."""
    wanted = Declared()
    for p in pinned:
        hdr = headers[p.nevra]
        wanted += declared(hdr, p.nevra, sysusers_texts(repo, p.parsed(), files.get(p.nevra), sysusers_paths(hdr)))
    return wanted


def _import(
    ctx: Context, cache: PackageCache, pinned: list[m.PinnedPackage], files: dict[str, Path], fetch: Fetch
) -> list[CachedPackage]:
    """Cached package commits that still fit (same build, owners, policy), else a fresh import."""
    out = []
    with ctx.reporter.step(f"Importing or reusing {len(pinned)} package(s)"):
        for p in sorted(pinned, key=lambda p: p.nevra):
            hit = cache.find(p.parsed(), p.checksum, p.repo)
            if hit is None:
                if p.nevra not in files:
                    files.update(fetch([p]))
                hit = cache.import_rpm(files[p.nevra], p.parsed(), p.checksum, p.repo)
            out.append(hit)
    return out


def _assemble(
    repo: Repo,
    target: m.Target,
    cache: PackageCache,
    packages: list[CachedPackage],
    accounts: AccountDb,
    labeler: Labeler | None,
) -> MutableTree:
    base = target.base_checksum
    tree = repo.tree_from_commit(base)
    if target.erased_base:  # a replaced base package goes first: its replacement's files go in next
        remove_base_packages(repo, tree, base, target.erased_base)
    merger = TreeMerger(repo, tree)
    for pkg in packages:
        merger.merge(pkg)
    accounts.write(repo, tree, labeler)
    ensure_boot_mountpoint(repo, tree, labeler)
    write_rpmdb(repo, tree, base, cache, packages, erase=target.erased_base, labeler=labeler)
    return tree


def _commit(
    repo: Repo, target: m.Target, tree: MutableTree, packages: list[CachedPackage], repos: list[tuple[str, int]]
) -> str:
    base = target.base_checksum
    root = repo.write_mtree(tree)
    gone = set(target.erased_base)
    base_pkgs = [n for n in cm.package_list(repo, base) if str(n) not in gone]
    replaced_by = {r.after: r.before for r in target.replace_base}
    built = [LayeredPackage(p.nevra, p.checksum, p.repo) for p in packages]
    layered = cm.LayeredCommit(
        base=base,
        pkglist=sorted(base_pkgs + [p.nevra for p in packages]),
        layered=[p for p in built if str(p.nevra) not in replaced_by],
        replaced_base=[
            cm.ReplacedBase(Nevra.parse(replaced_by[str(p.nevra)]), p) for p in built if str(p.nevra) in replaced_by
        ],
        requested=target.active_requests,
        requested_names=sorted(p.name for p in target.packages if p.requested),
        removed_base=[Nevra.parse(n) for n in target.remove_base],
        state_digest=target.state_digest,
        format_version=m.ASSEMBLY_FORMAT_VERSION,
    )
    replaced = [rpmostree_meta.Replacement(r.package.nevra, r.base, r.package.repo) for r in layered.replaced_base]
    client_layer = rpmostree_meta.client_layer(
        layered.pkglist, layered.requested, layered.removed_base, replaced, repos, target.state_digest or ""
    )
    metadata: dict[str, Any] = {**boot_metadata(repo, base), **client_layer, **layered.to_metadata()}
    subject = f"reconcile: {target.base_refspec} + " + ", ".join(str(p.nevra) for p in packages)
    if target.replace_base:
        subject += " (replacing " + ", ".join(r.before for r in target.replace_base) + ")"
    if target.remove_base:
        subject += " - " + ", ".join(target.remove_base)
    return repo.write_commit(base, subject, metadata, root, repo.commit_timestamp(base))

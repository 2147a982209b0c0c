"""`apply()`: the checklist. Plan (or read the saved plan), let the caller review it, fetch what it pins: all
without the sysroot lock, since those wait on mirrors. Then lock the sysroot and `apply_plan()`: verify fresh,
verify the fetched files again, import, assemble, commit, deploy, clean up."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.apply.deploy import DEPLOY_REASONS, DeployMethod, collect_garbage, deploy
from reconcile.apply.leftovers import remove_earlier_runs
from reconcile.apply.packages import PackageFetcher
from reconcile.base import base_is_partial, pull_whole
from reconcile.coexist import record_managed
from reconcile.context import Context
from reconcile.deployed import DeploymentState, current_deployment
from reconcile.errors import InvalidInputError, ReconcileError, StalePlanError, UsageError
from reconcile.origin import LoadedOrigin, load_origin
from reconcile.origin_fragments import fragment_dir
from reconcile.origin_keyfile import Replacements, write_origin_keyfile
from reconcile.ostree import Deployment, KeyFile
from reconcile.planner import model as m


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    deployed: str | None
    message: str
    aborted: bool = False
    deploy_method: DeployMethod | None = None


@dataclass(frozen=True)
class ApplyRequest:
    """Plan against `origin` and apply that, or apply the `saved` plan exactly (its own origin file)."""

    origin: Path | None
    saved: m.Plan | None = None
    reposdir: Path | None = None
    stateroot: str | None = None
    update: bool = False
    download_only: bool = False
    lock_timeout: float = 60.0
    bundle: Path | None = None  # packages and keys from this offline bundle instead of the host's repos


# Plans made again because another apply deployed, or the origin file changed, while this one fetched.
MAX_PLANS = 3


def apply(ctx: Context, request: ApplyRequest, review: Callable[[m.Plan], bool]) -> tuple[m.Plan, ApplyResult]:
    """The plan, `review(plan)` when it changes anything (False aborts), its packages fetched; then, under the
    sysroot lock, apply_plan. A deployment or origin that moved before the lock was had means planning again
    (a saved plan is stale instead). Returns the plan applied and what happened."""
    if request.bundle is not None and request.saved is None:
        raise UsageError(
            "A bundle is applied with the plan saved with it: `reconcile apply DIR/plan.json --bundle DIR`."
        )
    for _ in range(MAX_PLANS):
        plan, loaded = _plan(ctx, request)
        if plan.has_changes and not review(plan):
            return plan, ApplyResult(False, None, "Aborted; nothing was changed.", aborted=True)
        fetcher = _prefetch(ctx, plan, loaded, request)
        if request.download_only:
            return plan, _download_only(ctx, fetcher) if fetcher else _nothing_to_download(plan)
        ctx.sysroot.lock(
            request.lock_timeout, lambda: ctx.reporter.info(f"Waiting for the lock of {ctx.sysroot.path}…")
        )
        try:
            ctx.reload()  # another process may have deployed while we fetched or waited
            for problem in remove_earlier_runs(ctx.repo.path):
                ctx.reporter.info(f"warning: what an earlier, killed apply left: {problem}")
            if request.saved is None and _moved(ctx, plan, request):
                ctx.reporter.info("The deployment or the origin file changed meanwhile; planning again.")
                continue
            saved = request.saved is not None
            _journal_plan(ctx, plan, saved)
            result = apply_plan(ctx, plan, loaded, saved=saved, reposdir=request.reposdir, fetcher=fetcher)
            _journal_result(ctx, plan, result)
            return plan, result
        finally:
            ctx.sysroot.unlock()
    raise ReconcileError(
        f"The deployment or the origin file changed each time while reconcile planned ({MAX_PLANS} plans).",
        hint="Another tool keeps deploying or editing the origin file; run apply again once it is done.",
    )


def _journal_plan(ctx: Context, plan: m.Plan, saved: bool) -> None:
    if ctx.reporter.journal is None:
        return
    from reconcile.journal import PLAN_APPLIED

    digest = m.plan_digest(plan)
    t = plan.target
    ctx.reporter.event(
        f"Applying {'saved ' if saved else ''}plan {digest[:12]} from {plan.origin.path}: "
        f"{len(t.packages)} layered, {len(t.remove_base)} base removals, {len(t.replace_base)} replacements",
        PLAN_APPLIED,
        PLAN_DIGEST=digest,
        STATE_DIGEST=t.state_digest,
        ORIGIN=plan.origin.path,
        HAS_CHANGES=int(plan.has_changes),
        LAYERED=" ".join(p.nevra for p in t.packages),
        SAVED_PLAN=int(saved),
    )


def _journal_result(ctx: Context, plan: m.Plan, result: ApplyResult) -> None:
    if ctx.reporter.journal is None:
        return
    from reconcile.journal import RESULT

    ctx.reporter.event(
        result.message,
        RESULT,
        RESULT="changed" if result.changed else "unchanged",
        DEPLOYMENT=result.deployed,
        PLAN_DIGEST=m.plan_digest(plan),
    )


def _plan(ctx: Context, request: ApplyRequest) -> tuple[m.Plan, LoadedOrigin]:
    from reconcile.planner.plan import make_plan

    if request.saved is not None:
        return request.saved, _origin_of_saved(request.saved)
    assert request.origin is not None
    loaded = load_origin(request.origin)
    plan = make_plan(ctx, loaded, request.reposdir, request.stateroot, update=request.update, whole_packages=True)
    return plan, loaded


def _prefetch(ctx: Context, plan: m.Plan, loaded: LoadedOrigin, request: ApplyRequest) -> PackageFetcher | None:
    """Download and verify what the plan pins before the lock is taken; None when nothing is to be fetched."""
    saved = request.saved is not None
    if saved:
        _verify_fresh(ctx, plan, loaded)  # a stale saved plan fetches nothing (and is checked again under the lock)
    if plan.applyable and plan.target.needs_deployment and not request.download_only:
        _pull_base(ctx, plan)  # a network wait: before the lock
    if not (plan.applyable and plan.has_changes and plan.target.to_install):
        return None
    _current, dep = current_deployment(ctx.sysroot, ctx.repo, plan.prior.stateroot)
    bundle = None
    if request.bundle is not None:
        from reconcile.apply.bundle import open_bundle

        bundle = open_bundle(request.bundle, plan)  # every pinned file and key checked, cached copies or not
    local_check = loaded.desired.options.localpkg_gpgcheck
    fetcher = PackageFetcher(ctx, plan, dep, request.reposdir, local_check, saved=saved, bundle=bundle)
    fetcher.fetch(fetcher.not_cached())
    return fetcher


def _moved(ctx: Context, plan: m.Plan, request: ApplyRequest) -> bool:
    """Under the lock: the deployment or the origin file is no longer what the plan was made against."""
    assert request.origin is not None
    current, _dep = current_deployment(ctx.sysroot, ctx.repo, plan.prior.stateroot)
    now = load_origin(request.origin)
    moved = m.fingerprint(current.id, current.base_checksum, current.requested, now.sha256) != plan.prior.fingerprint
    return moved or _kargs_moved(plan, current)


def _kargs_moved(plan: m.Plan, current: DeploymentState) -> bool:
    """The deployment's kernel arguments changed in place (ostree admin kargs edit-in-place) since the plan."""
    return plan.prior.kernel_args is not None and current.kernel_args != plan.prior.kernel_args


def _origin_of_saved(plan: m.Plan) -> LoadedOrigin:
    """The origin file a saved plan was made from; a changed or missing file makes the plan stale."""
    try:
        return load_origin(Path(plan.origin.path))
    except InvalidInputError as e:
        raise StalePlanError(
            f"The plan is stale: its origin file {plan.origin.path} can no longer be read as it was ({e.message})"
        ) from None


def apply_plan(
    ctx: Context,
    plan: m.Plan,
    loaded: LoadedOrigin,
    *,
    saved: bool = False,
    reposdir: Path | None = None,
    fetcher: PackageFetcher | None = None,
) -> ApplyResult:
    """Apply exactly `plan`, under the sysroot lock. With `saved`, anything that no longer matches it is a stale
    plan (exit 3). `fetcher` has fetched the plan's packages already; they are verified again here."""
    current, dep = _verify_fresh(ctx, plan, loaded)
    if not plan.applyable:
        raise ReconcileError("The plan cannot be applied: " + " ".join(plan.errors), hint="Nothing was changed.")
    if not plan.has_changes:
        notes = [c.message for c in plan.checks if c.kind == m.CheckKind.BASE]
        return ApplyResult(False, None, " ".join(["Nothing to do: the deployment already matches the origin.", *notes]))
    target = plan.target
    if not ctx.repo.has_commit(target.base_checksum):
        raise StalePlanError(f"The plan's base commit {target.base_checksum[:12]} is no longer in the repo.")
    if target.needs_deployment:
        _pull_base(ctx, plan)  # fetched before the lock; only a base pruned meanwhile is pulled here
    if fetcher is None:
        fetcher = PackageFetcher(ctx, plan, dep, reposdir, loaded.desired.options.localpkg_gpgcheck, saved=saved)
    if not target.needs_deployment and target.kernel_args is None:
        ctx.sysroot.write_origin(dep, _origin_keyfile(loaded, target, current, dep, new_deployment=False))
        record_managed(ctx.cachedir(current.stateroot), loaded.path, current.id)
        return ApplyResult(True, None, f"Updated the origin of deployment {current.id}; no new deployment was needed.")
    commit = target.base_checksum
    if not target.needs_deployment:
        commit = current.checksum  # only the kernel arguments change: the same tree, deployed again
    elif target.state_digest:
        from reconcile.apply.layered import BuildInputs, build_layered_commit  # only builds pay for its imports

        accounts = _previous_accounts(ctx, current, dep)
        inputs = BuildInputs(plan, loaded.desired.options.ignore_scripts, accounts, fetcher)
        commit = build_layered_commit(ctx, inputs)
    origin = _origin_keyfile(loaded, target, current, dep, new_deployment=True)
    with ctx.reporter.step("Deploying"):
        new, method = deploy(ctx, current.stateroot, commit, origin, dep, target.kernel_args)
    ctx.reload()  # the sysroot changed on disk: read it (and its repo) again before pruning against it
    with ctx.reporter.step("Cleaning up"):
        collect_garbage(ctx)
        fetcher.finish()
    done = f"{'Staged' if method is DeployMethod.STAGED else 'Deployed'} {commit[:12]} for the next boot"
    new_id = f"{new.get_csum()}.{new.get_deployserial()}"
    record_managed(ctx.cachedir(current.stateroot), loaded.path, new_id)
    return ApplyResult(True, new_id, f"{done} ({DEPLOY_REASONS[method]}).", deploy_method=method)


def _origin_keyfile(
    loaded: LoadedOrigin, target: m.Target, current: DeploymentState, dep: Deployment, *, new_deployment: bool
) -> KeyFile:
    """The deployment's origin as rpm-ostree writes it: requests, the base pin, the base replacements."""
    pin = target.base_checksum if target.base_pinned else None
    replacements = _replacements(target, current)
    return write_origin_keyfile(
        loaded.desired,
        target.local,
        dep.get_origin(),
        new_deployment=new_deployment,
        pinned_commit=pin,
        replacements=replacements,
    )


def _replacements(target: m.Target, current: DeploymentState) -> Replacements:
    """What the origin records of the base replacements: each name under the repo it came from (rpm-ostree's
    `repo=REPO,NAME`), and the replace-local pins. Without a new build, the deployed ones are what is recorded."""
    swaps = [(r.package.repo, r.package.name) for r in target.replace_base]
    if not target.needs_deployment and not swaps:
        swaps = [(r.package.repo, r.package.nevra.name) for r in current.replaced_base]
    from_repos: dict[str, list[str]] = {}
    for repo, name in swaps:
        if repo != "@local":
            from_repos.setdefault(repo, []).append(name)
    return Replacements(from_repos, target.replace_local)


def _pull_base(ctx: Context, plan: m.Plan) -> None:
    """The rest of a remote base the plan fetched only in part (its commit and the paths planning reads)."""
    target = plan.target
    if not base_is_partial(ctx.repo, target.base_refspec, target.base_checksum):
        return
    with ctx.reporter.step("Pulling the base"):
        pulled = pull_whole(ctx.repo, target.base_refspec, target.base_checksum, ctx.fetch.deadline)
    if pulled is not None:
        ctx.reporter.info(
            f"Pulled the base {target.base_refspec} ({target.base_checksum[:12]}): "
            f"{pulled.objects} objects, {pulled.bytes} bytes in {pulled.seconds:.1f} s."
        )


def _download_only(ctx: Context, fetcher: PackageFetcher) -> ApplyResult:
    files = fetcher.fetch(fetcher.not_cached())  # fetched already: this lists and verifies them again
    size = sum(path.stat().st_size for path in files.values())
    where = fetcher.cache_root / "packages"
    return ApplyResult(
        False,
        None,
        f"Downloaded and verified {len(files)} package(s) ({size / 1048576:.1f} MiB) into {where}; "
        "nothing was deployed. `reconcile apply` (also with --cache-only) will use them.",
    )


def _nothing_to_download(plan: m.Plan) -> ApplyResult:
    if not plan.applyable:
        raise ReconcileError("The plan cannot be applied: " + " ".join(plan.errors), hint="Nothing was changed.")
    if not plan.has_changes:
        return ApplyResult(False, None, "Nothing to do: the deployment already matches the origin.")
    return ApplyResult(False, None, "Nothing to download: every package the plan needs is in the package cache.")


def _verify_fresh(ctx: Context, plan: m.Plan, loaded: LoadedOrigin) -> tuple[DeploymentState, Any]:
    """Under the lock: the deployment and origin must be what the plan was computed against."""
    current, dep = current_deployment(ctx.sysroot, ctx.repo, plan.prior.stateroot)
    now = m.fingerprint(current.id, current.base_checksum, current.requested, loaded.sha256)
    if now == plan.prior.fingerprint and not _kargs_moved(plan, current):
        return current, dep
    if current.id != plan.prior.deployment:
        why = f"the deployment moved from {plan.prior.deployment[:12]}… to {current.id[:12]}…"
    elif loaded.sha256 != plan.origin.sha256:
        why = f"the origin file {loaded.path} changed since the plan was made"
        if loaded.fragments or plan.origin.fragments:
            why = (
                f"the origin file {loaded.path} or its fragments in {fragment_dir(loaded.path)} changed since the plan"
            )
            why += f" was made ({_fragment_moves(plan, loaded)})"
    elif now == plan.prior.fingerprint:
        why = "the deployment's kernel arguments changed since the plan was made"
    else:
        why = "the deployment's requested packages or base changed"
    raise StalePlanError(f"The plan is stale: {why}.", hint="Run `reconcile plan` again. Nothing was changed.")


def _fragment_moves(plan: m.Plan, loaded: LoadedOrigin) -> str:
    """Which fragments were added, removed or edited, in words."""
    before = {f.path: f.sha256 for f in plan.origin.fragments}
    after = {str(p.absolute()): sha for p, sha in loaded.fragments}
    words = [
        f"{Path(p).name} {'added' if p not in before else 'removed' if p not in after else 'edited'}"
        for p in sorted(before.keys() | after.keys())
        if before.get(p) != after.get(p)
    ]
    return ", ".join(words) or "the origin file itself"


def _previous_accounts(ctx: Context, current: DeploymentState, dep: Any) -> list[tuple[str, str]]:
    """Accounts the deployed tree and the running system's /etc already have: their ids must not move."""
    out = []
    for passwd, group in (("usr/etc/passwd", "usr/etc/group"), ("usr/lib/passwd", "usr/lib/group")):
        texts = [ctx.repo.read_text(current.checksum, path) or "" for path in (passwd, group)]
        out.append((texts[0], texts[1]))
    etc = ctx.sysroot.deployment_dir(dep) / "etc"
    with contextlib.suppress(OSError):
        out.append(((etc / "passwd").read_text(errors="replace"), (etc / "group").read_text(errors="replace")))
    return out

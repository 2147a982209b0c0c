"""The Python API: plan, apply and status with typed results, for tools that drive reconcile without parsing
its text. The CLI is a thin shell over these functions.

    from reconcile import api
    plan = api.plan("/", "/etc/reconcile/origin.toml")
    if plan.has_changes and plan.applyable:
        report = api.apply("/", api.ApplyRequest(origin=Path("/etc/reconcile/origin.toml")))

Errors are `reconcile.errors.ReconcileError` subclasses, each with the CLI's exit code in `exit_code`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from reconcile.apply import ApplyRequest, ApplyResult
from reconcile.apply.deploy import DeployMethod
from reconcile.context import Context
from reconcile.lifecycle import CleanupReport, CleanupRequest, RollbackReport
from reconcile.planner.model import Plan
from reconcile.report import Reporter
from reconcile.repos.config import FetchMode
from reconcile.status import Status

APPLY_FORMAT_VERSION = "1.1"

__all__ = [
    "ApplyReport",
    "ApplyRequest",
    "ApplyResult",
    "CleanupReport",
    "CleanupRequest",
    "Plan",
    "RollbackReport",
    "Status",
    "apply",
    "cleanup",
    "open_context",
    "plan",
    "rollback",
    "status",
]


class StepTiming(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str
    seconds: float


class ApplyOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    changed: bool = Field(description="A deployment was made or an origin rewritten.")
    deployment: str | None = Field(description="The new deployment, `<checksum>.<serial>`, when one was made.")
    message: str
    timings: list[StepTiming] = Field(description="Each named step of the run and its duration.")
    deploy_method: DeployMethod | None = Field(
        default=None,
        description="How the new deployment was written: `staged` (booted sysroot, finalized at shutdown) or "
        "`written` (not booted: deployed directly); null when none was made.",
    )


class ApplyReport(BaseModel):
    """`apply --json`: the plan that was applied and what happened (docs/apply.schema.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: str = APPLY_FORMAT_VERSION
    plan: Plan
    result: ApplyOutcome
    aborted: bool = Field(default=False, description="The review declined; nothing was changed.")


def open_context(
    sysroot: str | Path,
    *,
    reporter: Reporter | None = None,
    cachedir: Path | None = None,
    cache_only: bool = False,
    refresh: bool = False,
) -> Context:
    mode = FetchMode(cache_only=cache_only, refresh=refresh)
    return Context.open(Path(sysroot), reporter or Reporter(quiet=True), cachedir, mode)


def plan(
    sysroot: str | Path | Context,
    origin: str | Path,
    *,
    reposdir: Path | None = None,
    stateroot: str | None = None,
    update: bool = False,
) -> Plan:
    """What apply would do for this origin file, read-only (no lock is taken)."""
    from reconcile.origin import load_origin
    from reconcile.planner.plan import make_plan

    ctx = sysroot if isinstance(sysroot, Context) else open_context(sysroot)
    return make_plan(ctx, load_origin(Path(origin)), reposdir, stateroot, update=update)


def apply(
    sysroot: str | Path | Context, request: ApplyRequest, review: Callable[[Plan], bool] = lambda _plan: True
) -> ApplyReport:
    """Plan (or take `request.saved`) under the sysroot lock, ask `review`, and apply."""
    from reconcile.apply import apply as run_apply

    ctx = sysroot if isinstance(sysroot, Context) else open_context(sysroot)
    applied, result = run_apply(ctx, request, review)
    timings = [StepTiming(step=t.name, seconds=round(t.seconds, 4)) for t in ctx.reporter.timings]
    outcome = ApplyOutcome(
        changed=result.changed,
        deployment=result.deployed,
        message=result.message,
        timings=timings,
        deploy_method=result.deploy_method,
    )
    return ApplyReport(plan=applied, result=outcome, aborted=result.aborted)


def status(sysroot: str | Path | Context) -> Status:
    from reconcile.status import status_document

    return status_document(sysroot if isinstance(sysroot, Context) else open_context(sysroot))


def rollback(
    sysroot: str | Path | Context,
    origin: Path | None = None,
    *,
    update_origin: bool = False,
    stateroot: str | None = None,
    lock_timeout: float = 60.0,
) -> RollbackReport:
    """Make the rollback deployment the default (under the sysroot lock); with `update_origin`, rewrite the
    origin file to ask for it."""
    from reconcile.lifecycle import rollback as run_rollback

    ctx = sysroot if isinstance(sysroot, Context) else open_context(sysroot)
    return run_rollback(ctx, origin, update_origin=update_origin, stateroot=stateroot, lock_timeout=lock_timeout)


def cleanup(sysroot: str | Path | Context, request: CleanupRequest) -> CleanupReport:
    """Remove what the request names (under the sysroot lock) and prune; with nothing named, say what could go."""
    from reconcile.lifecycle import cleanup as run_cleanup

    return run_cleanup(sysroot if isinstance(sysroot, Context) else open_context(sysroot), request)

"""`reconcile status`: the deployments in boot order, requested vs layered packages, as a typed document
(`status --json`, docs/status.schema.json) and as text."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field

from reconcile.base import read_newest
from reconcile.context import Context
from reconcile.deployed import DeploymentState, all_deployments, roles

STATUS_FORMAT_VERSION = "1.1"


class DeploymentStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(description="Position in boot order (0 is the default).")
    id: str = Field(description="`<stateroot>-<checksum>.<serial>`.")
    stateroot: str
    checksum: str = Field(description="The deployed commit.")
    serial: int
    booted: bool
    default: bool
    origin: str | None = Field(description="The origin's refspec or baserefspec, or its container image reference.")
    version: str | None
    timestamp: int = Field(description="The commit's timestamp (seconds since the epoch).")
    base_checksum: str = Field(description="The base commit (the deployed commit itself when nothing is layered).")
    requested_packages: list[str]
    layered_packages: list[str] = Field(description="NEVRAs layered on the base.")
    inactive_requests: list[str] = Field(description="Requests the base already provides.")
    requested_local_packages: list[str] = Field(description="`<sha256>:<nevra>` pins of local RPM files.")
    requested_base_removals: list[str] = Field(description="Names the origin's overrides.remove lists.")
    removed_base_packages: list[str] = Field(description="NEVRAs of base packages the deployment dropped.")
    requested_base_replacements: list[str] = Field(
        default_factory=list, description="The origin's overrides.replace specs and replace-local pins."
    )
    replaced_base_packages: list[str] = Field(
        default_factory=list, description="`BASE-NEVRA → NEW-NEVRA` for each base package the deployment replaced."
    )
    state_digest: str | None
    kernel_args: list[str] = Field(
        default_factory=list, description="Its kernel arguments, from its bootconfig (without libostree's ostree=)."
    )
    staged: bool = Field(
        default=False, description="Staged: libostree finalizes it at shutdown (/etc merge, bootloader switch)."
    )
    pinned: bool = Field(default=False, description="Pinned (`ostree admin pin`): cleanup and apply never remove it.")
    rollback: bool = Field(
        default=False,
        description="What `reconcile rollback` would make the default (and `cleanup --rollback` removes).",
    )
    update_available: str | None = Field(
        default=None,
        description="For a remote base: the newer commit of its ref a plan has seen, `VERSION (CHECKSUM)`.",
    )


class Status(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: str = STATUS_FORMAT_VERSION
    sysroot: str
    deployments: list[DeploymentStatus]


def status_document(ctx: Context) -> Status:
    states = all_deployments(ctx.sysroot, ctx.repo)
    deps, booted = ctx.sysroot.deployments(), ctx.sysroot.booted()
    rollbacks = {i for name in {s.stateroot for s in states} for i in roles(deps, booted, name).rollback[:1]}
    deployments = [_deployment(s, i, _update_available(ctx, s), i in rollbacks) for i, s in enumerate(states)]
    return Status(sysroot=str(ctx.sysroot.path), deployments=deployments)


def _update_available(ctx: Context, s: DeploymentState) -> str | None:
    """What the last plan that fetched this remote ref saw, when it is newer than the deployed base."""
    if s.refspec is None or ":" not in s.refspec or s.pinned_commit or s.pinned_version:
        return None
    newest = read_newest(ctx.cachedir(s.stateroot)).get(s.refspec)
    if not newest or newest.get("checksum") == s.base_checksum:
        return None
    if int(newest.get("timestamp", 0)) <= ctx.repo.commit_timestamp(s.base_checksum):
        return None
    checksum, version = str(newest["checksum"]), newest.get("version")
    return f"{version} ({checksum})" if version else checksum


def _deployment(s: DeploymentState, index: int, update: str | None = None, rollback: bool = False) -> DeploymentStatus:
    return DeploymentStatus(
        index=index,
        id=f"{s.stateroot}-{s.id}",
        stateroot=s.stateroot,
        checksum=s.checksum,
        serial=s.serial,
        booted=s.booted,
        default=index == 0,
        origin=s.container_image or s.refspec,
        version=s.version,
        timestamp=s.timestamp,
        base_checksum=s.base_checksum,
        requested_packages=sorted(s.requested),
        layered_packages=[str(p.nevra) for p in s.layered],
        inactive_requests=sorted(s.inactive_requests),
        requested_local_packages=sorted(s.local),
        requested_base_removals=sorted(s.override_remove),
        removed_base_packages=s.removed_base,
        requested_base_replacements=sorted(s.override_replace) + sorted(s.override_replace_local),
        replaced_base_packages=[f"{r.base} → {r.package.nevra}" for r in s.replaced_base],
        state_digest=s.state_digest,
        kernel_args=s.kernel_args or [],
        update_available=update,
        staged=s.staged,
        pinned=s.pinned,
        rollback=rollback,
    )


def render_status_json(doc: Status) -> str:
    return doc.model_dump_json(indent=2)


def render_status_text(doc: Status) -> str:
    if not doc.deployments:
        return f"No deployments in {doc.sysroot}."
    lines = [f"Deployments in {doc.sysroot}, in boot order:"]
    for d in doc.deployments:
        flags = (("booted", d.booted), ("default", d.default), ("staged", d.staged), ("rollback", d.rollback))
        marks = [m for m, on in (*flags, ("pinned", d.pinned)) if on]
        bullet = "●" if d.booted else "*" if d.default else " "
        lines.append(f"{bullet} {d.stateroot}:{d.origin}" + (f"  ({', '.join(marks)})" if marks else ""))
        when = datetime.datetime.fromtimestamp(d.timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        rows = [("Commit", f"{d.checksum}.{d.serial}"), ("Version", f"{d.version} ({when})" if d.version else when)]
        if d.base_checksum != d.checksum:
            rows.append(("Base", d.base_checksum))
        if d.requested_packages:
            rows.append(("Requested", ", ".join(d.requested_packages)))
        if d.layered_packages:
            rows.append(("Layered", ", ".join(d.layered_packages)))
        if d.requested_local_packages:
            rows.append(("Local", ", ".join(p.split(":", 1)[-1] for p in d.requested_local_packages)))
        if d.removed_base_packages:
            rows.append(("Removed", ", ".join(d.removed_base_packages) + " (from the base)"))
        if d.replaced_base_packages:
            rows.append(("Replaced", ", ".join(d.replaced_base_packages) + " (base packages)"))
        if d.update_available:
            rows.append(("Update", f"available: {d.update_available} (seen by a plan; apply --update takes it)"))
        if d.inactive_requests:
            rows.append(("Inactive", ", ".join(d.inactive_requests) + " (provided by the base)"))
        if d.kernel_args:
            rows.append(("Kargs", " ".join(d.kernel_args)))
        lines += [f"      {k + ':':<11}{v}" for k, v in rows]
    return "\n".join(lines)

"""`reconcile status`: the deployments in boot order as a typed document in the shape of `rpm-ostree status
--json` (docs/status.schema.json; reconcile's own fields under `reconcile`), and as text."""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema

from reconcile import ostree
from reconcile.base import read_newest
from reconcile.coexist import rebuilt_by_rpm_ostree
from reconcile.context import Context
from reconcile.deployed import DeploymentState, all_deployments, roles
from reconcile.gvariant_json import variant_to_json
from reconcile.ostree import Deployment, KeyFile, Repo
from reconcile.repos.source import LOCAL_REPO
from reconcile.rpm.nevra import Nevra

STATUS_FORMAT_VERSION = "2.0"

# rpm-ostree's package variant `(sstsss)`: nevra, name, epoch, version, release, arch.
PackageTuple = tuple[str, str, int, str, str, str]
Replacement = tuple[PackageTuple, PackageTuple]  # (new, old)

# Commit metadata keys `status` promotes to fields of their own (rpm-ostree's filter_commit_meta, then reconcile's).
_PROMOTED_META = {
    "rpmostree.rpmdb.pkglist",
    "rpmostree.advisories",
    "rpmostree.packages",
    "rpmostree.modules",
    "rpmostree.spec",
    "rpmostree.removed-base-packages",
    "rpmostree.replaced-base-packages",
    "rpmostree.replaced-base-remote-packages",
    "reconcile.rpmdb.pkglist",
    "reconcile.layered.packages",
    "reconcile.layered.sources",
    "reconcile.layered.requested",
    "reconcile.layered.requested-names",
    "reconcile.removed-base-packages",
    "reconcile.replaced-base-packages",
}
_CHECKSUM = re.compile(r"[0-9a-f]{64}")


def _drop_none(value: object) -> bool:
    return value is None


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(alias: str | None = None, description: str = "") -> Any:
    """A key that is left out when it has no value, as rpm-ostree leaves it out (never printed as null)."""
    return Field(
        default=None, alias=alias, description=description, exclude_if=_drop_none, json_schema_extra=_drop_default
    )


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, serialize_by_alias=True)


class DeploymentExtras(_Model):
    """reconcile's own view of a deployment, beside rpm-ostree's keys."""

    index: int = Field(description="Position in boot order (0 is the default).")
    default: bool
    rollback: bool = Field(description="What `reconcile rollback` would make the default.")
    built_by: Literal["reconcile", "rpm-ostree"] | None = Field(
        description="Who layered the deployed commit; null for a plain base."
    )
    layered_packages: list[str] = Field(description="NEVRAs layered on the base: the requests and what they pull in.")
    inactive_requests: list[str] = Field(description="Requests the base already provides.")
    local_pins: list[str] = Field(description="`<sha256>:<nevra>` pins of the requested local RPM files.")
    requested_base_replacements: list[str] = Field(
        description="The declaration's overrides.replace specs, then the replace-local pins."
    )
    replaced_base_packages: list[str] = Field(
        description="`BASE-NEVRA → NEW-NEVRA` for each base package the deployment replaced."
    )
    state_digest: str | None = Field(description="Of the layered commit; null for a plain base.")
    kernel_args: list[str] = Field(description="From its bootconfig, without libostree's ostree=.")
    update_available: str | None = Field(
        description="For a remote base: the newer commit of its ref a plan has seen, `VERSION (CHECKSUM)`."
    )


class DeploymentStatus(_Model):
    """One deployment, with rpm-ostree's names, meanings and JSON encodings (see docs/plan-format.md)."""

    id: str = Field(description="`<osname>-<checksum>.<serial>`.")
    osname: str = Field(description="The stateroot.")
    checksum: str = Field(description="The deployed commit.")
    serial: int
    booted: bool
    staged: bool
    pinned: bool
    unlocked: str = Field(description="libostree's unlock state: none, development, hotfix or transient.")
    origin: str | SkipJsonSchema[None] = _optional(description="The refspec (absent for an image base).")
    container_image_reference: str | SkipJsonSchema[None] = _optional("container-image-reference")
    container_image_reference_digest: str | SkipJsonSchema[None] = _optional("container-image-reference-digest")
    custom_origin: tuple[str, str] | SkipJsonSchema[None] = _optional("custom-origin")
    version: str | SkipJsonSchema[None] = _optional(description="The commit's `version`; absent when it has none.")
    timestamp: int | SkipJsonSchema[None] = _optional(description="Seconds since the epoch; absent when 0.")
    base_checksum: str | SkipJsonSchema[None] = _optional("base-checksum", "Only when layered: the base commit.")
    base_version: str | SkipJsonSchema[None] = _optional("base-version")
    base_timestamp: int | SkipJsonSchema[None] = _optional("base-timestamp")
    endoflife: str | SkipJsonSchema[None] = _optional()
    base_commit_meta: dict[str, JsonValue] = Field(alias="base-commit-meta")
    layered_commit_meta: dict[str, JsonValue] | SkipJsonSchema[None] = _optional("layered-commit-meta")
    pending_base_checksum: str | SkipJsonSchema[None] = _optional("pending-base-checksum")
    pending_base_version: str | SkipJsonSchema[None] = _optional("pending-base-version")
    pending_base_timestamp: int | SkipJsonSchema[None] = _optional("pending-base-timestamp")
    requested_packages: list[str] = Field(alias="requested-packages")
    requested_local_packages: list[str] = Field(alias="requested-local-packages", description="NEVRAs.")
    requested_local_fileoverride_packages: list[str] = Field(alias="requested-local-fileoverride-packages")
    requested_base_removals: list[str] = Field(alias="requested-base-removals")
    requested_base_local_replacements: list[str] = Field(alias="requested-base-local-replacements")
    requested_base_remote_replacements: list[tuple[str, list[str]]] | SkipJsonSchema[None] = _optional(
        "requested-base-remote-replacements"
    )
    regenerate_initramfs: bool = Field(alias="regenerate-initramfs")
    initramfs_args: list[str] | SkipJsonSchema[None] = _optional("initramfs-args")
    initramfs_etc: list[str] | SkipJsonSchema[None] = _optional("initramfs-etc")
    cliwrap: bool | SkipJsonSchema[None] = _optional()
    packages: list[str] = Field(description="The active requests: requested minus what the base provides.")
    base_removals: list[PackageTuple] = Field(alias="base-removals")
    base_local_replacements: list[Replacement] = Field(alias="base-local-replacements")
    base_remote_replacements: dict[str, list[Replacement]] = Field(alias="base-remote-replacements")
    reconcile: DeploymentExtras


class StatusExtras(_Model):
    sysroot: str
    warnings: list[str] = Field(default_factory=list)


class Status(_Model):
    format_version: str = STATUS_FORMAT_VERSION
    deployments: list[DeploymentStatus]
    transaction: None = Field(default=None, description="rpm-ostree's running transaction: always null here.")
    cached_update: None = Field(default=None, alias="cached-update")
    update_driver: None = Field(default=None, alias="update-driver")
    reconcile: StatusExtras


def status_document(ctx: Context) -> Status:
    states = all_deployments(ctx.sysroot, ctx.repo)
    deps, booted = ctx.sysroot.deployments(), ctx.sysroot.booted()
    rollbacks = {i for name in {s.stateroot for s in states} for i in roles(deps, booted, name).rollback[:1]}
    deployments = [
        _deployment(ctx.repo, s, dep, _update_available(ctx, s), i in rollbacks)
        for i, (s, dep) in enumerate(zip(states, deps, strict=True))
    ]
    warnings = rebuilt_by_rpm_ostree(states, {s.stateroot: ctx.cachedir(s.stateroot) for s in states})
    return Status(deployments=deployments, reconcile=StatusExtras(sysroot=str(ctx.sysroot.path), warnings=warnings))


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


def _deployment(
    repo: Repo, s: DeploymentState, dep: Deployment, update: str | None, rollback: bool
) -> DeploymentStatus:
    layered = s.built_by is not None or s.base_checksum != s.checksum
    base_meta = _metadata(repo, s.base_checksum)
    kf = dep.get_origin()
    return DeploymentStatus(
        id=f"{s.stateroot}-{s.id}",
        osname=s.stateroot,
        checksum=s.checksum,
        serial=s.serial,
        booted=s.booted,
        staged=s.staged,
        pinned=s.pinned,
        unlocked=dep.get_unlocked().value_nick,
        origin=None if s.container_image else s.refspec,
        container_image_reference=s.container_image,
        container_image_reference_digest=_string(base_meta, "ostree.manifest-digest") if s.container_image else None,
        custom_origin=_custom_origin(kf),
        version=s.version,
        timestamp=s.timestamp or None,
        **(_base_details(repo, s.base_checksum, base_meta) if layered else {}),
        endoflife=_string(base_meta, "ostree.endoflife"),
        base_commit_meta=base_meta,
        layered_commit_meta=_metadata(repo, s.checksum) if layered else None,
        **_pending_base(repo, s),
        requested_packages=sorted(set(s.requested)),
        requested_local_packages=sorted({_pinned_nevra(p) for p in s.local}),
        requested_local_fileoverride_packages=sorted(
            {_pinned_nevra(p) for p in _list(kf, "packages", "requested-local-fileoverride")}
        ),
        requested_base_removals=sorted(set(s.override_remove)),
        requested_base_local_replacements=sorted({_pinned_nevra(p) for p in s.override_replace_local}),
        requested_base_remote_replacements=_remote_replacement_requests(kf),
        **_initramfs(kf),
        cliwrap=True if _flag(kf, "rpmostree", "ex-cliwrap") else None,
        packages=sorted(s.active_requests),
        base_removals=[_package(Nevra.parse(n)) for n in s.removed_base],
        base_local_replacements=[_replacement(r) for r in s.replaced_base if r.package.repo == LOCAL_REPO],
        base_remote_replacements=_remote_replacements(s),
        reconcile=DeploymentExtras(
            index=s.index,
            default=s.index == 0,
            rollback=rollback,
            built_by=s.built_by,
            layered_packages=[str(p.nevra) for p in s.layered],
            inactive_requests=sorted(s.inactive_requests),
            local_pins=sorted(s.local),
            requested_base_replacements=sorted(s.override_replace) + sorted(s.override_replace_local),
            replaced_base_packages=[f"{r.base} → {r.package.nevra}" for r in s.replaced_base],
            state_digest=s.state_digest,
            kernel_args=s.kernel_args or [],
            update_available=update,
        ),
    )


def _metadata(repo: Repo, checksum: str) -> dict[str, Any]:
    """A commit's metadata as json-glib prints it, less the promoted keys (filtered first: a pkglist is long);
    {} for a commit the repo does not have (rpm-ostree fails there)."""
    if not repo.has_commit(checksum):
        return {}
    variants = repo.commit_metadata_variants(checksum).items()
    return {key: variant_to_json(v) for key, v in variants if key not in _PROMOTED_META}


def _string(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def _base_details(repo: Repo, base: str, meta: dict[str, Any]) -> dict[str, Any]:
    timestamp = repo.commit_timestamp(base) if repo.has_commit(base) else 0
    return {"base_checksum": base, "base_version": _string(meta, "version"), "base_timestamp": timestamp or None}


def _pending_base(repo: Repo, s: DeploymentState) -> dict[str, Any]:
    """As rpm-ostree: for an ostree refspec, the commit its ref points to now, when that is not the base."""
    refspec = s.refspec
    if s.container_image or refspec is None or _CHECKSUM.fullmatch(refspec):
        return {}
    tip = repo.resolve(refspec)
    if tip is None or tip == s.base_checksum or not repo.has_commit(tip):
        return {}
    timestamp = repo.commit_timestamp(tip)
    return {
        "pending_base_checksum": tip,
        "pending_base_version": _string(_metadata(repo, tip), "version"),
        "pending_base_timestamp": timestamp or None,
    }


def _pinned_nevra(pin: str) -> str:
    """The NEVRA of a `<sha256>:<nevra>` pin (the NEVRA may carry an epoch's colon)."""
    return pin.split(":", 1)[1] if ":" in pin else pin


def _package(n: Nevra) -> PackageTuple:
    return (str(n), n.name, n.epoch, n.version, n.release, n.arch)


def _replacement(r: Any) -> Replacement:
    return (_package(r.package.nevra), _package(r.base))


def _remote_replacements(s: DeploymentState) -> dict[str, list[Replacement]]:
    out: dict[str, list[Replacement]] = {}
    for r in s.replaced_base:
        if r.package.repo != LOCAL_REPO:
            out.setdefault(f"repo={r.package.repo}", []).append(_replacement(r))
    return out


def _list(kf: KeyFile | None, group: str, key: str) -> list[str]:
    return ostree.keyfile_get_list(kf, group, key) if kf is not None else []


def _has(kf: KeyFile | None, group: str, key: str) -> bool:
    return kf is not None and ostree.keyfile_get(kf, group, key) is not None


def _flag(kf: KeyFile | None, group: str, key: str) -> bool:
    value = ostree.keyfile_get(kf, group, key) if kf is not None else None
    return (value or "").strip().lower() in ("true", "1")


def _remote_replacement_requests(kf: KeyFile | None) -> list[tuple[str, list[str]]] | None:
    """`[overrides] replace` (`repo=REPO,NAME,...`) as rpm-ostree prints it: `[[from, [names]]]`."""
    if not _has(kf, "overrides", "replace"):
        return None
    entries = [e.split(",") for e in _list(kf, "overrides", "replace")]
    return [(e[0], sorted({n for n in e[1:] if n})) for e in entries]


def _initramfs(kf: KeyFile | None) -> dict[str, Any]:
    """`regenerate-initramfs` always; its arguments and /etc files only when the origin has initramfs settings."""
    regenerate = _flag(kf, "rpmostree", "regenerate-initramfs")
    args, etc = _has(kf, "rpmostree", "initramfs-args"), _has(kf, "rpmostree", "initramfs-etc")
    if not (regenerate or args or etc):
        return {"regenerate_initramfs": False}
    return {
        "regenerate_initramfs": regenerate,
        "initramfs_args": _list(kf, "rpmostree", "initramfs-args"),
        "initramfs_etc": sorted(set(_list(kf, "rpmostree", "initramfs-etc"))),
    }


def _custom_origin(kf: KeyFile | None) -> tuple[str, str] | None:
    url = ostree.keyfile_get(kf, "origin", "custom-url") if kf is not None else None
    if not url:
        return None
    return (url, ostree.keyfile_get(kf, "origin", "custom-description") or "")


def render_status_json(doc: Status) -> str:
    return doc.model_dump_json(indent=2)


def render_status_text(doc: Status) -> str:
    sysroot = doc.reconcile.sysroot
    if not doc.deployments:
        return f"No deployments in {sysroot}."
    lines = [f"Deployments in {sysroot}, in boot order:"]
    for d in doc.deployments:
        r = d.reconcile
        flags = (("booted", d.booted), ("default", r.default), ("staged", d.staged), ("rollback", r.rollback))
        marks = [m for m, on in (*flags, ("pinned", d.pinned)) if on]
        bullet = "●" if d.booted else "*" if r.default else " "
        origin = d.container_image_reference or d.origin
        lines.append(f"{bullet} {d.osname}:{origin}" + (f"  ({', '.join(marks)})" if marks else ""))
        stamp = datetime.datetime.fromtimestamp(d.timestamp or 0, datetime.UTC)
        when = stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
        rows = [("Commit", f"{d.checksum}.{d.serial}"), ("Version", f"{d.version} ({when})" if d.version else when)]
        if d.base_checksum is not None and d.base_checksum != d.checksum:
            rows.append(("Base", d.base_checksum))
        if d.requested_packages:
            rows.append(("Requested", ", ".join(d.requested_packages)))
        if r.layered_packages:
            rows.append(("Layered", ", ".join(r.layered_packages)))
        if d.requested_local_packages:
            rows.append(("Local", ", ".join(d.requested_local_packages)))
        if d.base_removals:
            rows.append(("Removed", ", ".join(p[0] for p in d.base_removals) + " (from the base)"))
        if r.replaced_base_packages:
            rows.append(("Replaced", ", ".join(r.replaced_base_packages) + " (base packages)"))
        if r.update_available:
            rows.append(("Update", f"available: {r.update_available} (seen by a plan; apply --update takes it)"))
        if r.inactive_requests:
            rows.append(("Inactive", ", ".join(r.inactive_requests) + " (provided by the base)"))
        if r.kernel_args:
            rows.append(("Kargs", " ".join(r.kernel_args)))
        lines += [f"      {k + ':':<11}{v}" for k, v in rows]
    return "\n".join(lines)

"""The Plan: a frozen, serializable value (DESIGN §4). Field names here are the JSON wire names."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reconcile.rpm.nevra import Nevra

PLAN_FORMAT_VERSION = "1.5"
# Bump when assembly changes what a layered commit holds for the same inputs: it changes the state digest.
ASSEMBLY_FORMAT_VERSION = 2  # 2: an empty /boot in every layered commit


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Action(StrEnum):
    """The closed set of request-level actions."""

    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class ChangeKind(StrEnum):
    BASE = "base"
    PACKAGE = "package"
    LOCAL = "local"
    OVERRIDE_REMOVE = "override-remove"
    OVERRIDE_REPLACE = "override-replace"
    OVERRIDE_REPLACE_LOCAL = "override-replace-local"
    KARGS = "kargs"


class RequestChange(_Frozen):
    """One change to what is requested, e.g. `package/htop` created because it is now requested."""

    address: str = Field(
        description="`base`, `package/<name>`, `local/<name>`, `override-remove/<name>`, `override-replace/<spec>`, "
        "`override-replace-local/<name>` or `kargs`."
    )
    kind: ChangeKind
    name: str
    actions: list[Action]
    reason: str
    before: str | None = None
    after: str | None = None
    source: str | None = Field(
        default=None, description="`FILE:LINE` of the origin file or origin.d fragment that asks for it (plans 1.5)."
    )

    @property
    def symbol(self) -> str:
        action = self.actions[0]
        return {Action.CREATE: "+", Action.DELETE: "-", Action.UPDATE: "~", Action.NOOP: " "}[action]


class PackageEntry(_Frozen):
    """A resolved RPM; `why` is the dependency path from a requested package."""

    nevra: str
    name: str
    evr: str
    arch: str
    repo: str
    checksum: str
    reason: Literal["requested", "dependency"]
    why: list[str] = Field(default_factory=list)
    weak: bool = Field(
        default=False, description="Pulled in only through weak links (Recommends, Supplements, Enhances)."
    )
    via: Literal["requires", "recommends", "supplements", "enhances"] | None = Field(
        default=None, description="The kind of the last link of `why`: how its last package came in."
    )
    before: str | None = None
    after: str | None = None
    before_checksum: str | None = Field(default=None, description="On replaced entries: the build it replaces.")
    source: str | None = Field(
        default=None,
        description="On requested entries: `FILE:LINE` of the origin file or origin.d fragment asking for it (1.5).",
    )


class InactiveRequest(_Frozen):
    spec: str
    provided_by: str = Field(description="The base package that already provides the request.")


class BaseReplacementChange(_Frozen):
    """A base package whose replacement changes: replaced now, replaced by another build, or the base's own again."""

    name: str
    arch: str
    action: Literal["replace", "update", "restore"] = Field(
        description="`replace`: the base's package gives way; `update`: another replacement; `restore`: the base's "
        "own package comes back."
    )
    before: str = Field(description="NEVRA the deployment has now.")
    after: str = Field(description="NEVRA the target has.")
    base: str = Field(description="NEVRA of the base's own package of that name.")
    repo: str = Field(description="Where `after` comes from: a repo id, `@local`, or `@base` when restored.")
    checksum: str = Field(default="", description="Of `after`, from the repodata or the local file (empty for @base).")


class Resolution(_Frozen):
    added: list[PackageEntry] = Field(default_factory=list)
    removed: list[PackageEntry] = Field(default_factory=list)
    upgraded: list[PackageEntry] = Field(default_factory=list)
    downgraded: list[PackageEntry] = Field(default_factory=list)
    replaced: list[PackageEntry] = Field(
        default_factory=list, description="Same NEVRA, another build (e.g. a local RPM file that changed)."
    )
    inactive: list[InactiveRequest] = Field(default_factory=list)
    base_replacements: list[BaseReplacementChange] = Field(
        default_factory=list, description="Base packages replaced (overrides.replace, replace-local) or restored."
    )


class CheckKind(StrEnum):
    """What a pre-flight finding is about (docs/plan-format.md describes each)."""

    SCRIPTLET = "scriptlet"
    FORBIDDEN_PATH = "forbidden-path"
    SPECIAL_FILE = "special-file"
    UNKNOWN_OWNER = "unknown-owner"
    ACCOUNT = "account"
    VAR_CONTENT = "var-content"
    FILE_CONFLICT = "file-conflict"
    SIGNATURE = "signature"
    REPO = "repo"
    BASE_CONFLICTS = "base-conflicts"
    BASE_OBSOLETES = "base-obsoletes"
    BASE = "base"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Check(_Frozen):
    kind: CheckKind
    severity: Severity
    package: str | None = None
    message: str


class PinnedPackage(_Frozen):
    """A package of the target layering set, pinned so apply fetches exactly it."""

    nevra: str
    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo: str
    checksum: str = Field(description="`<algorithm>:<hex>` from the repodata.")
    location: str = Field(description="Path of the RPM relative to the repo's baseurl.")
    baseurl: str
    requested: bool
    size: int = Field(default=0, description="Download size in bytes, from the repodata (0 when unknown).")

    def parsed(self) -> Nevra:
        return Nevra(self.name, self.epoch, self.version, self.release, self.arch)


class SigningKey(_Frozen):
    """A key that signs packages this plan adds; `new` when no apply has used it yet (dnf would ask)."""

    fingerprint: str
    user_ids: list[str]
    repos: list[str] = Field(description="Repo ids whose gpgkey lists it (or `@local`).")
    packages: list[str] = Field(description="NEVRAs of the added packages it signs.")
    new: bool


class RepoUsed(_Frozen):
    """A repo whose metadata the plan was resolved against."""

    id: str
    file: str = Field(description="The `.repo` file that defines it.")
    url: str = Field(description="The URL its repomd.xml came from.")
    revision: str
    timestamp: int = Field(default=0, description="The newest timestamp of its repomd.xml data files (as dnf's).")
    repomd_sha256: str
    gpgcheck: bool
    repo_gpgcheck: bool


class OriginFragment(_Frozen):
    """An `origin.d/*.toml` fragment merged into the origin."""

    path: str
    sha256: str


class OriginRef(_Frozen):
    path: str
    sha256: str = Field(description="Of the origin file; with fragments, of the file and every fragment together.")
    desired: dict[str, object]
    fragments: list[OriginFragment] = Field(
        default_factory=list, description="The origin.d fragments merged, in name order (plans 1.5)."
    )


class Prior(_Frozen):
    """The deployment the plan was computed against."""

    stateroot: str
    deployment: str = Field(description="`<checksum>.<serial>` of the current deployment.")
    checksum: str
    base_checksum: str
    refspec: str | None
    requested: list[str]
    layered: list[str]
    state_digest: str | None
    fingerprint: str
    kernel_args: list[str] | None = Field(
        default=None,
        description="The deployment's kernel arguments (without ostree=); apply refuses the plan when they moved.",
    )


class BaseReplacement(_Frozen):
    """A base package the target replaces, and the pinned package that takes its place."""

    before: str = Field(description="NEVRA of the base's package.")
    after: str = Field(description="NEVRA of the package replacing it.")
    source: Literal["repo", "local"] = Field(description="`overrides.replace` (a repo) or `replace-local` (a file).")
    package: PinnedPackage


class Target(_Frozen):
    base_refspec: str
    base_checksum: str
    base_pinned: bool = Field(default=False, description="The base is pinned (`[origin] commit` or `version`).")
    packages: list[PinnedPackage]
    remove_base: list[str] = Field(default_factory=list, description="Base packages dropped (NEVRAs).")
    local: list[str] = Field(default_factory=list, description="Local packages as `<sha256>:<nevra>`.")
    replace_base: list[BaseReplacement] = Field(default_factory=list, description="Base packages replaced.")
    replace_local: list[str] = Field(default_factory=list, description="replace-local pins, `<sha256>:<nevra>`.")
    active_requests: list[str]
    releasever: str | None = Field(default=None, description="The `$releasever` the repo files were read with.")
    state_digest: str | None = Field(description="None when nothing is layered: the base is deployed as is.")
    needs_deployment: bool
    needs_origin_update: bool
    kernel_args: list[str] | None = Field(
        default=None,
        description="The whole kernel argv the new deployment gets (without ostree=); None: the deployment's stay.",
    )

    @property
    def to_install(self) -> list[PinnedPackage]:
        """Every package apply fetches, imports and merges: the layered ones and the base replacements."""
        return [*self.packages, *(r.package for r in self.replace_base)]

    @property
    def erased_base(self) -> list[str]:
        """Base NEVRAs whose files and rpmdb entries go: removed, or replaced by another package."""
        return [*self.remove_base, *(r.before for r in self.replace_base)]


class BasePackageChange(_Frozen):
    """A base package that differs between the deployed base and the target base."""

    name: str
    arch: str
    before: str | None = Field(description="NEVRA in the deployed base (None when added).")
    after: str | None = Field(description="NEVRA in the target base (None when removed).")


class BasePackages(_Frozen):
    """The base package diff of a base move (the base's own rpmdb, before and after)."""

    upgraded: list[BasePackageChange] = Field(default_factory=list)
    downgraded: list[BasePackageChange] = Field(default_factory=list)
    added: list[BasePackageChange] = Field(default_factory=list)
    removed: list[BasePackageChange] = Field(default_factory=list)


class BaseMove(_Frozen):
    """The base commit the plan builds on, against the deployed one."""

    refspec: str = Field(description="The desired base: REF, REMOTE:REF, or a container image reference.")
    before: str = Field(description="The deployed base commit.")
    after: str = Field(description="The target base commit.")
    before_version: str | None = None
    after_version: str | None = None
    direction: Literal["same", "upgrade", "downgrade"] = Field(
        description="By commit timestamp: `downgrade` when the target base is older than the deployed one."
    )
    rebase: bool = Field(default=False, description="The desired base is another ref or image than the deployed one.")
    chosen: str = Field(description="Why this commit: the deployed base kept, the ref's newest, a pin.")
    newest: str | None = Field(default=None, description="The remote ref's newest commit, when the plan fetched it.")
    fetched_bytes: int = Field(default=0, description="Bytes the plan pulled from the remote to plan.")
    packages: BasePackages = Field(default_factory=BasePackages)


class Summary(_Frozen):
    added: int
    removed: int
    upgraded: int
    downgraded: int
    replaced: int = 0
    base_replacements: int = Field(default=0, description="Base packages replaced, re-replaced or restored.")
    text: str


class Plan(_Frozen):
    format_version: str = PLAN_FORMAT_VERSION
    tool_version: str
    created: str
    origin: OriginRef
    prior: Prior
    changes: list[RequestChange]
    resolution: Resolution
    base: BaseMove | None = Field(default=None, description="The base move and its package diff (plans since 1.3).")
    target: Target
    checks: list[Check] = Field(default_factory=list)
    repos: list[RepoUsed] = Field(default_factory=list)
    keys: list[SigningKey] = Field(default_factory=list)
    summary: Summary
    has_changes: bool
    applyable: bool
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def plan_document(plan: Plan) -> str:
    """The plan as `plan -o` writes it."""
    return plan.model_dump_json(indent=2) + "\n"


def plan_digest(plan: Plan) -> str:
    """sha256 of plan_document: the journal's PLAN_DIGEST is a saved plan's sha256sum."""
    return hashlib.sha256(plan_document(plan).encode()).hexdigest()


def fingerprint(deployment: str, base_checksum: str, requested: list[str], origin_sha256: str) -> str:
    """What apply recomputes under the lock to know the plan is still about the same system."""
    material = json.dumps([deployment, base_checksum, sorted(requested), origin_sha256])
    return hashlib.sha256(material.encode()).hexdigest()


def state_digest(
    base_checksum: str,
    active_requests: list[str],
    recommends: bool,
    packages: list[tuple[str, str]],
    removed: list[str],
    policy: str,
    ignored_scripts: list[str],
    replaced: list[tuple[str, str]] | None = None,
) -> str:
    """Equal digest, equal layered commit: the idempotency key (DESIGN §3)."""
    material = {
        "base": base_checksum,
        "requests": sorted(active_requests),
        "recommends": recommends,
        "packages": sorted(packages),
        "removed": sorted(removed),
        "policy": policy,
        "ignored_scripts": sorted(ignored_scripts),
        "format": ASSEMBLY_FORMAT_VERSION,
    }
    if replaced:  # (base NEVRA, new NEVRA): only then, so digests of deployments without replacements stay
        material["replaced"] = sorted(replaced)
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

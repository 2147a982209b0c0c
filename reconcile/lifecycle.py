"""`reconcile rollback` and `reconcile cleanup`: reorder or remove deployments as rpm-ostree does, under the
sysroot lock, then prune the repo to what the remaining deployments need (apply's garbage collection).

Roles (deployed.roles): on a booted host, pending deployments come before the booted one and rollback ones
after it. In a sysroot that is not booted (an image being prepared, every test sysroot) the default is the
pending one and the deployments after it are the rollback ones. Pinned deployments are never removed."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from reconcile.apply.deploy import keep_needed_refs, unneeded_package_refs
from reconcile.context import Context
from reconcile.deployed import DeploymentState, current_deployment, read_deployment, roles
from reconcile.errors import InvalidInputError, ReconcileError
from reconcile.files import locked, write_atomically
from reconcile.origin import decode_origin, is_keyfile, load_origin, read_origin
from reconcile.ostree import Deployment
from reconcile.planner.local import is_pin

LIFECYCLE_FORMAT_VERSION = "1.0"


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RollbackReport(_Doc):
    """`rollback --json` (docs/rollback.schema.json)."""

    format_version: str = LIFECYCLE_FORMAT_VERSION
    sysroot: str
    default: str = Field(description="The deployment that is now the default, `<stateroot>-<checksum>.<serial>`.")
    previous_default: str = Field(description="The deployment that was the default before.")
    boot_order: list[str] = Field(description="Every deployment, in the new boot order.")
    origin_file: str | None = Field(description="The origin file compared with the new default (null: none found).")
    origin_matches: bool | None = Field(
        description="The origin file asks for what the new default is (null without an origin file); when false, "
        "`apply` would build the other state again."
    )
    origin_updated: bool = Field(description="`--update-origin` rewrote the origin file to describe the new default.")
    message: str


class CleanupTarget(StrEnum):
    ROLLBACK = "rollback"
    PENDING = "pending"
    CACHE = "cache"


class Removable(_Doc):
    """What each cleanup flag would remove now (printed when no flag is given)."""

    rollback: list[str] = Field(description="Deployments `--rollback` would remove.")
    pending: list[str] = Field(description="Deployments `--pending` would remove.")
    cache_bytes: int = Field(description="Bytes of cached metadata, headers and downloads `--cache` would remove.")
    package_refs: list[str] = Field(description="Package-cache refs no deployment layers (any cleanup drops them).")


class CleanupReport(_Doc):
    """`cleanup --json` (docs/cleanup.schema.json)."""

    format_version: str = LIFECYCLE_FORMAT_VERSION
    sysroot: str
    asked: list[CleanupTarget] = Field(description="The flags given; empty: nothing was changed, see `removable`.")
    removed_deployments: list[str] = Field(description="Deployments removed, `<stateroot>-<checksum>.<serial>`.")
    pinned_kept: list[str] = Field(description="Deployments a flag named that stayed because they are pinned.")
    removed_cache: list[str] = Field(description="Paths under the cache directory that `--cache` removed.")
    removed_package_refs: list[str] = Field(description="Package-cache refs dropped: no deployment layers them.")
    objects_pruned: int = Field(description="Repo objects the prune removed.")
    bytes_freed: int = Field(description="Bytes freed: pruned objects plus removed cache files.")
    removable: Removable | None = Field(default=None, description="Without a flag: what each flag would remove.")
    changed: bool
    message: str


@dataclass(frozen=True)
class CleanupRequest:
    rollback: bool = False
    pending: bool = False
    cache: bool = False
    stateroot: str | None = None
    lock_timeout: float = 60.0

    @property
    def asked(self) -> list[CleanupTarget]:
        flags = ((CleanupTarget.ROLLBACK, self.rollback), (CleanupTarget.PENDING, self.pending))
        return [t for t, on in (*flags, (CleanupTarget.CACHE, self.cache)) if on]


def _name(dep: Deployment) -> str:
    return f"{dep.get_osname()}-{dep.get_csum()}.{dep.get_deployserial()}"


def _locked(ctx: Context, timeout: float) -> None:
    ctx.sysroot.lock(timeout, lambda: ctx.reporter.info(f"Waiting for the lock of {ctx.sysroot.path}…"))
    ctx.reload()  # another process may have deployed while we waited


# -- rollback ---------------------------------------------------------------------------------------
def rollback_target(deps: list[Deployment], booted: Deployment | None, stateroot: str) -> Deployment | None:
    """rpm-ostree's choice: the first rollback deployment; on a booted host with only a pending one, the booted
    one goes back on top (so a rollback can be undone)."""
    r = roles(deps, booted, stateroot)
    if r.rollback:
        return deps[r.rollback[0]]
    if r.pending and booted is not None and booted.get_osname() == stateroot:
        return booted
    return None


def rollback(
    ctx: Context, origin: Path | None, *, update_origin: bool, stateroot: str | None, lock_timeout: float
) -> RollbackReport:
    if update_origin and origin is not None and is_keyfile(origin):
        raise InvalidInputError(
            f"{origin} is an rpm-ostree .origin file; --update-origin rewrites only TOML origin files.",
            hint="Nothing was changed.",
        )
    _locked(ctx, lock_timeout)
    try:
        name = current_deployment(ctx.sysroot, ctx.repo, stateroot)[0].stateroot
        deps, booted = ctx.sysroot.deployments(), ctx.sysroot.booted()
        if deps and deps[0].is_staged():
            raise ReconcileError(
                f"The default deployment {_name(deps[0])} is staged (it is finalized at shutdown); rolling back "
                "behind it would drop it.",
                hint="Remove it with `reconcile cleanup --pending` (that is the rollback then). Nothing was changed.",
            )
        target = rollback_target(deps, booted, name)
        if target is None:
            raise ReconcileError(
                f"The stateroot {name!r} of {ctx.sysroot.path} has no rollback deployment (deployed: "
                f"{', '.join(_name(d) for d in deps if d.get_osname() == name)}).",
                hint="Nothing was changed.",
            )
        state = read_deployment(ctx.sysroot, ctx.repo, target, 0)
        new_text = _origin_describing(origin, state) if update_origin and origin is not None else None
        matches, note = _origin_matches(origin, state)  # before anything changes: a bad file changes nothing
        previous = _name(deps[0])
        order = [target] + [d for d in deps if not d.equal(target)]
        with ctx.reporter.step("Writing the boot order"):
            ctx.sysroot.write_deployments(order)
        ctx.reload()
        if new_text is not None and origin is not None:
            with locked(origin.parent / f".{origin.name}.lock", f"the origin file {origin}", ctx.reporter.info):
                write_atomically(origin, new_text)
    finally:
        ctx.sysroot.unlock()
    if new_text is not None:
        matches = True
    message = f"Rolled back: {_name(target)} is now the default (it boots next); {previous} follows it."
    if new_text is not None:
        message += f" {origin} now describes it, so `reconcile plan` has nothing to do."
    elif matches is False:
        message += (
            f" The origin file {origin} still asks for the other state: `reconcile apply` would build it again. "
            "Run `reconcile rollback --update-origin` next time, or edit the file."
        )
    elif note:
        message += f" {note}"
    return RollbackReport(
        sysroot=str(ctx.sysroot.path),
        default=_name(target),
        previous_default=previous,
        boot_order=[_name(d) for d in ctx.sysroot.deployments()],
        origin_file=str(origin) if origin is not None and origin.exists() else None,
        origin_matches=matches,
        origin_updated=new_text is not None,
        message=message,
    )


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _local_files(origin: Path, entries: list[str]) -> dict[str, str]:
    """sha256 -> the packages.local entry naming a file with that content, or pinning it (`<sha256>:<nevra>`)."""
    out: dict[str, str] = {}
    for entry in entries:
        if is_pin(entry):
            out.setdefault(entry.partition(":")[0], entry)
            continue
        file = Path(entry) if Path(entry).is_absolute() else origin.parent / entry
        digest = _file_sha256(file)
        if digest is not None:
            out.setdefault(digest, entry)
    return out


def _origin_matches(origin: Path | None, state: DeploymentState) -> tuple[bool | None, str | None]:
    """Whether the origin file asks for what `state` is (None: no file); an invalid file does not stop a
    rollback (it may be what is being recovered from), it is named instead."""
    if origin is None or not origin.exists():
        return None, None
    try:
        desired = load_origin(origin).desired.normalized()
    except InvalidInputError as e:
        return None, f"The origin file cannot be compared with it: {e.message}"
    deployed = state.normalized_origin()
    if not is_keyfile(origin):  # TOML names files, the deployment pins their sha256: compare the contents
        entries = desired["local"]
        files = _local_files(origin, entries)
        if len(files) != len(entries) or set(files) != {pin.split(":")[0] for pin in state.local}:
            return False, None
        desired["local"] = deployed["local"]
    return desired == deployed, None


def _origin_describing(origin: Path, state: DeploymentState) -> str:
    """The origin file's new text, made before anything changes: a deployment it cannot describe (a local
    package whose file is gone) stops the rollback."""
    from reconcile.origin_edit import describe_deployment

    text = decode_origin(origin, read_origin(origin))
    current = load_origin(origin).desired
    files = _local_files(origin, list(current.packages.local))
    local = []
    for pin in state.local:
        sha, _, nevra = pin.partition(":")
        if sha not in files:
            raise ReconcileError(
                f"The deployment to roll back to layers the local package {nevra} (sha256 {sha[:12]}…), and no file "
                f"in packages.local of {origin} has that content, so --update-origin cannot name it.",
                hint="Put the RPM file back and list it in packages.local, or roll back without --update-origin. "
                "Nothing was changed.",
            )
        local.append(files[sha])
    return describe_deployment(origin, text, state, local)


# -- cleanup ----------------------------------------------------------------------------------------
# What `--cache` removes from the stateroot's cache directory: everything a plan can fetch or compute again.
# Kept: keys/ (which keys an apply has accepted) and base-newest.json (what status says of remote refs).
_CACHE_DIRS = ("repos", "headers", "packages")
_CACHE_GLOBS = ("base-*.solv",)


def cleanup(ctx: Context, request: CleanupRequest) -> CleanupReport:
    if not request.asked:
        return _removable_only(ctx, request)
    _locked(ctx, request.lock_timeout)
    try:
        name = current_deployment(ctx.sysroot, ctx.repo, request.stateroot)[0].stateroot
        deps = ctx.sysroot.deployments()
        named, pinned = _named(ctx, request, name)
        keep = [d for i, d in enumerate(deps) if i not in named]
        if not any(d.get_osname() == name for d in keep):
            raise ReconcileError(
                f"Removing the pending and the rollback deployments would leave the stateroot {name!r} with no "
                "deployment at all (the sysroot is not booted, so the default is the pending one).",
                hint="Ask for one of --pending and --rollback. Nothing was changed.",
            )
        removed = [_name(deps[i]) for i in sorted(named)]
        if named:
            with ctx.reporter.step("Removing deployments"):
                ctx.sysroot.write_deployments(keep)
            ctx.reload()
        cache_paths, cache_bytes = _clear_cache(ctx.cachedir(name)) if request.cache else ([], 0)
        refs = unneeded_package_refs(ctx)
        with ctx.reporter.step("Pruning the repo"):
            keep_needed_refs(ctx)
            objects, pruned_bytes = ctx.sysroot.prune()
        ctx.reload()
    finally:
        ctx.sysroot.unlock()
    freed = pruned_bytes + cache_bytes
    changed = bool(removed or cache_paths or refs or objects)
    what = f"Removed {len(removed)} deployment(s)" + (f" ({', '.join(removed)})" if removed else "")
    message = f"{what}; freed {freed / 1048576:.1f} MiB ({objects} repo objects"
    message += f", {len(cache_paths)} cache entries)." if request.cache else ")."
    if pinned:
        message += f" Kept, pinned: {', '.join(pinned)}."
    return CleanupReport(
        sysroot=str(ctx.sysroot.path),
        asked=request.asked,
        removed_deployments=removed,
        pinned_kept=pinned,
        removed_cache=cache_paths,
        removed_package_refs=refs,
        objects_pruned=objects,
        bytes_freed=freed,
        changed=changed,
        message=message,
    )


def _named(ctx: Context, request: CleanupRequest, stateroot: str) -> tuple[set[int], list[str]]:
    """Positions the flags name, pinned ones left out; and the names of those pinned ones."""
    deps = ctx.sysroot.deployments()
    r = roles(deps, ctx.sysroot.booted(), stateroot)
    named = set(r.pending if request.pending else []) | set(r.rollback if request.rollback else [])
    pinned = {i for i in named if deps[i].is_pinned()}
    return named - pinned, [_name(deps[i]) for i in sorted(pinned)]


def _removable_only(ctx: Context, request: CleanupRequest) -> CleanupReport:
    """No flag: say what each would remove, change nothing (no lock: nothing is written)."""
    name = current_deployment(ctx.sysroot, ctx.repo, request.stateroot)[0].stateroot
    deps = ctx.sysroot.deployments()
    r = roles(deps, ctx.sysroot.booted(), name)
    pinned = [_name(deps[i]) for i in sorted(set(r.pending) | set(r.rollback)) if deps[i].is_pinned()]
    removable = Removable(
        rollback=[_name(deps[i]) for i in r.rollback if not deps[i].is_pinned()],
        pending=[_name(deps[i]) for i in r.pending if not deps[i].is_pinned()],
        cache_bytes=sum(_size(p) for p in _cache_entries(ctx.cachedir(name))),
        package_refs=unneeded_package_refs(ctx),
    )
    lines = [
        f"--rollback would remove: {', '.join(removable.rollback) or 'nothing'}",
        f"--pending would remove: {', '.join(removable.pending) or 'nothing'}",
        f"--cache would remove {removable.cache_bytes / 1048576:.1f} MiB of cached metadata and downloads",
    ]
    if pinned:
        lines.append(f"pinned, never removed: {', '.join(pinned)}")
    return CleanupReport(
        sysroot=str(ctx.sysroot.path),
        asked=[],
        removed_deployments=[],
        pinned_kept=pinned,
        removed_cache=[],
        removed_package_refs=[],
        objects_pruned=0,
        bytes_freed=0,
        removable=removable,
        changed=False,
        message="Nothing was changed; give --rollback, --pending or --cache.\n" + "\n".join(lines),
    )


def _cache_entries(cachedir: Path) -> list[Path]:
    """What `--cache` removes: each repo's metadata (not its lock), headers, downloads, base .solv files."""
    found: list[Path] = []
    for sub in _CACHE_DIRS:
        top = cachedir / sub
        if not top.is_dir():
            continue
        children = [c for c in sorted(top.iterdir()) if c.name != ".lock"]
        if sub == "repos":
            children = [g for c in children if c.is_dir() for g in sorted(c.iterdir()) if g.name != ".lock"]
        found += children
    for pattern in _CACHE_GLOBS:
        found += sorted(cachedir.glob(pattern))
    return found


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def _clear_cache(cachedir: Path) -> tuple[list[str], int]:
    """Remove the cache entries, each repo's under that repo's metadata lock and downloads under theirs, so
    a plan refreshing meanwhile never sees a half-removed repo."""
    removed, freed = [], 0
    for entry in _cache_entries(cachedir):
        lock = entry.parent / ".lock" if entry.parent.parent.name == "repos" else None
        if entry.parent.name == "packages":
            lock = cachedir / ".packages.lock"
        size = _size(entry)
        if lock is not None:
            with locked(lock, f"the cache {entry.parent}", lambda _msg: None):
                _remove(entry)
        else:
            _remove(entry)
        removed.append(str(entry.relative_to(cachedir)))
        freed += size
    return removed, freed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

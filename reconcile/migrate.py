"""`reconcile init`: the TOML origin file that asks for exactly what the default deployment is, whoever built
it (rpm-ostree or reconcile), so that the first `reconcile plan` on a migrated host has nothing to do."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from reconcile.context import Context
from reconcile.deployed import DeploymentState, current_deployment
from reconcile.errors import InvalidInputError, ReconcileError, UsageError
from reconcile.files import write_atomically
from reconcile.origin import is_keyfile, parse_origin
from reconcile.origin_keyfile import OriginFields, desired_base, read_origin_keyfile, refusal
from reconcile.planner.local import cached_local
from reconcile.planner.ostree_system import HostPackages

# What each key is, said once: the comment written beside it.
_BASE_COMMENTS = {
    "baserefspec": "the base: from the deployment's origin",
    "container-image": "the base is this container image, as the deployment's origin names it",
    "commit": "the base is pinned to this commit (the deployment's override-commit)",
    "version": "the base is pinned to the commit of the ref with this version",
}
_LIST_COMMENTS = {
    ("packages", "requested"): "packages layered from the repos (the deployment's requests)",
    ("packages", "local"): "local RPMs layered, as <sha256>:<nevra> pins of the package cache",
    ("overrides", "remove"): "base packages the deployment drops",
    ("overrides", "replace"): "base packages the deployment takes from the repos instead",
    ("overrides", "replace-local"): "base packages replaced by local RPMs (<sha256>:<nevra> pins)",
    ("options", "ignore_scripts"): "scriptlets not run when layering",
}
_OPTION_COMMENTS = {
    "recommends": "weak dependencies (Recommends) are not installed",
    "releasever": "the $releasever of the repo files",
    "localpkg_gpgcheck": "whether packages.local signatures are checked",
}


@dataclass(frozen=True)
class InitResult:
    path: Path
    deployment: str
    keys: int  # how many keys the file declares
    warnings: list[str] = field(default_factory=list)


def init_origin(ctx: Context, path: Path, stateroot: str | None, *, force: bool) -> InitResult:
    """Write `path` from the default deployment of the stateroot; nothing is written when anything is wrong."""
    if is_keyfile(path):
        raise UsageError(
            f"{path} ends in .origin, which reconcile reads as an rpm-ostree keyfile, not TOML.",
            hint="Name the file *.toml (default: /etc/reconcile/origin.toml).",
        )
    if (path.exists() or path.is_symlink()) and not force:
        raise ReconcileError(
            f"The origin file {path} exists already; reconcile init does not overwrite it. Nothing was written.",
            hint="Pass --force to replace it with the deployment's origin, or --origin to write another file.",
        )
    state, dep = current_deployment(ctx.sysroot, ctx.repo, stateroot)
    fields = read_origin_keyfile(dep.get_origin())
    if fields.unsupported:
        raise refusal(f"The origin of deployment {state.id}", fields.unsupported)
    if fields.refspec is None and fields.container_image is None:
        raise ReconcileError(
            f"The origin of deployment {state.id} names no base (no refspec, baserefspec or "
            "container-image-reference), so there is nothing to declare. Nothing was written."
        )
    now = datetime.datetime.now(datetime.UTC)
    text = origin_text(state, fields, now)
    try:
        parse_origin(path, text.encode())  # what init writes, plan must read
    except InvalidInputError as e:
        raise ReconcileError(
            f"The origin of deployment {state.id} cannot be declared in TOML: " + "; ".join(e.problems or [e.message]),
            hint="Nothing was written.",
        ) from None
    write_atomically(path, text)
    keys = sum(1 for line in text.splitlines() if line and not line.startswith(("#", "[")))
    return InitResult(path, state.id, keys, _uncached_pins(ctx, path, [*fields.local, *fields.replace_local]))


def _uncached_pins(ctx: Context, path: Path, pins: list[str]) -> list[str]:
    """Pins the package cache cannot resolve (rpm-ostree keeps its local RPMs apart): plan would stop on them."""
    cache = HostPackages(ctx.repo).cache
    out = []
    for pin in pins:
        try:
            cached_local(pin, path, cache)
        except ReconcileError:
            sha, _, nevra = pin.partition(":")
            out.append(
                f"the local package {nevra} (sha256 {sha[:12]}…) is not in reconcile's package cache: "
                f"`reconcile plan` stops on it until {path} names its RPM file instead of the pin."
            )
    return out


def origin_text(state: DeploymentState, fields: OriginFields, now: datetime.datetime) -> str:
    """The TOML origin for one deployment: every key it has, each with a comment saying what it is."""
    doc = tomlkit.document()
    built = {"reconcile": "layered by reconcile", "rpm-ostree": "layered by rpm-ostree"}.get(
        state.built_by or "", "a plain base" if not state.is_layered else "layered"
    )
    doc.add(tomlkit.comment(f"Written by `reconcile init` on {now.isoformat(timespec='seconds')}"))
    doc.add(tomlkit.comment(f"from the default deployment of stateroot {state.stateroot}: {state.id} ({built})."))
    doc.add(tomlkit.comment("No [kargs]: the deployment's kernel arguments stay as they are."))
    doc.add(tomlkit.nl())
    origin = tomlkit.table()
    for key, text in desired_base(fields).items():
        origin.add(key, _commented(tomlkit.item(text), _BASE_COMMENTS[key]))
    doc.add("origin", origin)
    lists = {
        ("packages", "requested"): fields.requested,
        ("packages", "local"): fields.local,
        ("overrides", "remove"): fields.removals,
        ("overrides", "replace"): fields.replace,
        ("overrides", "replace-local"): fields.replace_local,
        ("options", "ignore_scripts"): fields.ignore_scripts,
    }
    for (group, name), values in lists.items():
        if values:
            array = tomlkit.array()
            array.extend(sorted(values))
            _table(doc, group).add(name, _commented(array, _LIST_COMMENTS[group, name]))
    options: dict[str, str | bool | None] = {
        "recommends": None if fields.recommends else False,
        "releasever": fields.releasever,
        "localpkg_gpgcheck": fields.localpkg_gpgcheck,
    }
    for option, value in options.items():
        if value is not None:
            _table(doc, "options").add(option, _commented(tomlkit.item(value), _OPTION_COMMENTS[option]))
    return tomlkit.dumps(doc)


def _table(doc: tomlkit.TOMLDocument, name: str) -> Table:
    if name not in doc:
        doc.add(tomlkit.nl())
        doc.add(name, tomlkit.table())
    table = doc[name]
    assert isinstance(table, Table)
    return table


def _commented(item: Any, comment: str) -> Any:
    item.comment(comment)
    return item

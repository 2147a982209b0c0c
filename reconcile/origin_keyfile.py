"""The deployment origin keyfile, rpm-ostree's format: the one codec that reads and writes it (a deployment's
origin, and `.origin` files given as input for migration), and the check for keys that change the tree.

reconcile implements refspec/baserefspec, `[packages] requested` and `requested-local` (`<sha256>:<nevra>`, resolved
against the package cache), and `[overrides] remove`, `replace` (`repo=REPO,NAME,...`) and `replace-local`
(`<sha256>:<nevra>`). Any other key that makes rpm-ostree build a different
tree is refused by name: dropping it silently would deploy something else than the host has now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconcile import ostree
from reconcile.errors import InvalidInputError
from reconcile.ostree import KeyFile

if TYPE_CHECKING:
    from reconcile.origin import DesiredOrigin

_IMPLEMENTED = {
    ("origin", "refspec"),
    ("origin", "baserefspec"),
    ("origin", "override-commit"),
    ("origin", "container-image-reference"),
    ("packages", "requested"),
    ("packages", "requested-local"),
    ("overrides", "remove"),
    ("overrides", "replace"),
    ("overrides", "replace-local"),
}
_NO_TREE_EFFECT = {("origin", "custom-url"), ("origin", "custom-description")}
_OWN_GROUPS = {"reconcile", "libostree-transient"}  # reconcile's options; libostree's pinning
# Booleans that change nothing while false (rpm-ostree may write them as `false`).
_OFF_IS_HARMLESS = {("rpmostree", "regenerate-initramfs"), ("rpmostree", "ex-cliwrap")}


# Groups and keys reconcile owns in a deployment's origin; everything else is carried over untouched.
_OWNED_KEYS = (
    *sorted(_IMPLEMENTED),
    ("reconcile", "recommends"),
    ("reconcile", "ignore-scripts"),
    ("reconcile", "releasever"),
    ("reconcile", "localpkg-gpgcheck"),
    ("reconcile", "base-version"),
    ("reconcile", "replace"),
)


@dataclass(frozen=True)
class OriginFields:
    """What a deployment origin says: the base, the packages, reconcile's options, and what it cannot honour."""

    refspec: str | None = None
    container_image: str | None = None  # `container-image-reference`: the base is an imported container image
    override_commit: str | None = None  # the base pinned to one commit (rpm-ostree's `deploy REV`)
    base_version: str | None = None  # reconcile's: the pin was asked for by version
    requested: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)  # `<sha256>:<nevra>` pins
    removals: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)  # the declaration's specs (names only from rpm-ostree's)
    replace_local: list[str] = field(default_factory=list)  # `<sha256>:<nevra>` pins
    recommends: bool = True
    ignore_scripts: list[str] = field(default_factory=list)
    releasever: str | None = None
    localpkg_gpgcheck: bool | None = None
    unsupported: list[str] = field(default_factory=list)


def read_origin_keyfile(kf: KeyFile | None) -> OriginFields:
    if kf is None:
        return OriginFields()
    get, get_list = ostree.keyfile_get, ostree.keyfile_get_list
    localpkg = get(kf, "reconcile", "localpkg-gpgcheck")
    return OriginFields(
        refspec=get(kf, "origin", "refspec") or get(kf, "origin", "baserefspec"),
        container_image=get(kf, "origin", "container-image-reference"),
        override_commit=get(kf, "origin", "override-commit"),
        base_version=get(kf, "reconcile", "base-version"),
        requested=get_list(kf, "packages", "requested"),
        local=get_list(kf, "packages", "requested-local"),
        removals=get_list(kf, "overrides", "remove"),
        replace=_replace_specs(kf),
        replace_local=get_list(kf, "overrides", "replace-local"),
        recommends=get(kf, "reconcile", "recommends") != "false",
        ignore_scripts=get_list(kf, "reconcile", "ignore-scripts"),
        releasever=get(kf, "reconcile", "releasever"),
        localpkg_gpgcheck=None if localpkg is None else localpkg == "true",
        unsupported=unsupported_keys(kf),
    )


def _replace_specs(kf: KeyFile) -> list[str]:
    """reconcile's own record of the `overrides.replace` specs (versions included), else the package names of
    rpm-ostree's `repo=REPO,NAME,...` entries."""
    own = ostree.keyfile_get_list(kf, "reconcile", "replace")
    if own:
        return own
    entries = ostree.keyfile_get_list(kf, "overrides", "replace")
    return [name for entry in entries for name in entry.split(",")[1:] if name]


@dataclass(frozen=True)
class Replacements:
    """What a deployment's base replacements record: rpm-ostree's `repo=REPO,NAME` sources and local pins."""

    from_repos: dict[str, list[str]] = field(default_factory=dict)  # repo id -> names taken from it
    local_pins: list[str] = field(default_factory=list)  # `<sha256>:<nevra>`


def write_origin_keyfile(
    desired: DesiredOrigin,
    local_pins: list[str],
    previous: KeyFile | None,
    *,
    new_deployment: bool,
    pinned_commit: str | None = None,
    replacements: Replacements | None = None,
) -> KeyFile:
    """The deployment origin: `baserefspec` when anything is requested (plain `refspec` keeps
    `ostree admin upgrade` working otherwise), lists written with GLib's trailing `;`."""
    replacements = replacements or Replacements()
    kf = ostree.keyfile_copy(previous) if previous is not None else ostree.KeyFile.new()
    if new_deployment:
        ostree.keyfile_remove(kf, "libostree-transient")  # pinning belongs to the old deployment
    for group, key in _OWNED_KEYS:
        ostree.keyfile_remove(kf, group, key)
    requested = sorted(desired.packages.requested)
    removals = sorted(desired.overrides.remove)
    base = desired.origin
    if base.container_image is not None:  # the image reference stays as rpm-ostree and bootc wrote it
        kf.set_string("origin", "container-image-reference", base.container_image)
        for custom in _NO_TREE_EFFECT:  # rpm-ostree drops a custom origin URL on a rebase to an image
            ostree.keyfile_remove(kf, *custom)
    else:
        assembled = requested or local_pins or removals or desired.overrides.replace or replacements.local_pins
        key = "baserefspec" if assembled else "refspec"
        kf.set_string("origin", key, base.baserefspec or "")
    if pinned_commit is not None:
        kf.set_string("origin", "override-commit", pinned_commit)
    if base.version is not None:
        kf.set_string("reconcile", "base-version", base.version)
    if requested:
        kf.set_string_list("packages", "requested", requested)
    if local_pins:
        kf.set_string_list("packages", "requested-local", sorted(local_pins))
    if removals:
        kf.set_string_list("overrides", "remove", removals)
    if replacements.local_pins:
        kf.set_string_list("overrides", "replace-local", sorted(replacements.local_pins))
    if desired.overrides.replace:
        # rpm-ostree's form names each package's repo; the specs themselves (versions too) are reconcile's.
        sources = [",".join([f"repo={r}", *sorted(n)]) for r, n in sorted(replacements.from_repos.items()) if n]
        if sources:
            kf.set_string_list("overrides", "replace", sources)
        kf.set_string_list("reconcile", "replace", sorted(desired.overrides.replace))
    options = desired.options
    if not options.recommends:
        kf.set_string("reconcile", "recommends", "false")
    if options.ignore_scripts:
        kf.set_string_list("reconcile", "ignore-scripts", sorted(options.ignore_scripts))
    if options.releasever is not None:
        kf.set_string("reconcile", "releasever", options.releasever)
    if options.localpkg_gpgcheck is not None:
        kf.set_string("reconcile", "localpkg-gpgcheck", "true" if options.localpkg_gpgcheck else "false")
    for group in ("packages", "overrides", "reconcile"):
        if kf.has_group(group) and not kf.get_keys(group)[0]:
            ostree.keyfile_remove(kf, group)
    return kf


def unsupported_keys(kf: KeyFile) -> list[str]:
    """`[group] key` for every key reconcile cannot honour, in file order."""
    out = []
    for group in kf.get_groups()[0]:
        for key in kf.get_keys(group)[0]:
            if (group, key) in _IMPLEMENTED | _NO_TREE_EFFECT or group in _OWN_GROUPS:
                continue
            if (group, key) in _OFF_IS_HARMLESS and (ostree.keyfile_get(kf, group, key) or "").lower() == "false":
                continue
            out.append(f"[{group}] {key}")
    return out


def refusal(where: str, keys: list[str]) -> InvalidInputError:
    return InvalidInputError(
        f"{where} has rpm-ostree settings that change the tree and that reconcile does not implement: "
        + ", ".join(keys)
        + ".",
        keys,
        hint="Remove them (rpm-ostree reset / override reset), or keep managing this host with rpm-ostree. "
        "Nothing was changed.",
    )


def parse_keyfile(path: Path, text: str) -> dict[str, Any]:
    """The desired origin from an rpm-ostree deployment origin, so existing hosts can migrate."""
    try:
        kf = ostree.keyfile_from_text(text)
    except Exception as e:
        raise InvalidInputError(f"{path} is not a valid keyfile: {e}") from None
    fields = read_origin_keyfile(kf)
    if fields.unsupported:
        raise refusal(str(path), fields.unsupported)
    if fields.refspec is None and fields.container_image is None:
        raise InvalidInputError(f"{path} has no [origin] refspec, baserefspec or container-image-reference.")
    if fields.refspec is not None and fields.container_image is not None:  # rpm-ostree refuses it too
        raise InvalidInputError(
            f"{path} names its base twice: [origin] {fields.refspec!r} as refspec/baserefspec and "
            f"[origin] container-image-reference {fields.container_image!r}. Keep one of them."
        )
    return {
        "origin": desired_base(fields),
        "packages": {"requested": fields.requested, "local": fields.local},
        "overrides": {"remove": fields.removals, "replace": fields.replace, "replace-local": fields.replace_local},
    }


def desired_base(fields: OriginFields) -> dict[str, str]:
    """The `[origin]` table of the desired origin that a deployment origin describes."""
    if fields.container_image is not None:
        return {"container-image": fields.container_image}
    base = {"baserefspec": fields.refspec or ""}
    if fields.base_version is not None:
        base["version"] = fields.base_version
    elif fields.override_commit is not None:
        base["commit"] = fields.override_commit
    return base

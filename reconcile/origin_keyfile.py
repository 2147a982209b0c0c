"""rpm-ostree's `.origin` keyfile: read as input for migration, and checked for keys that change the tree.

reconcile implements refspec/baserefspec, `[packages] requested` and `requested-local` (`<sha256>:<nevra>`, resolved
against the package cache), and `[overrides] remove`. Any other key that makes rpm-ostree build a different
tree is refused by name: dropping it silently would deploy something else than the host has now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconcile import ostree
from reconcile.errors import InvalidInputError
from reconcile.ostree import KeyFile

_IMPLEMENTED = {
    ("origin", "refspec"),
    ("origin", "baserefspec"),
    ("packages", "requested"),
    ("packages", "requested-local"),
    ("overrides", "remove"),
}
_NO_TREE_EFFECT = {("origin", "custom-url"), ("origin", "custom-description")}
_OWN_GROUPS = {"reconcile", "libostree-transient"}  # reconcile's options; libostree's pinning
# Booleans that change nothing while false (rpm-ostree may write them as `false`).
_OFF_IS_HARMLESS = {("rpmostree", "regenerate-initramfs"), ("rpmostree", "ex-cliwrap")}


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
    unsupported = unsupported_keys(kf)
    if unsupported:
        raise refusal(str(path), unsupported)
    fields = ostree.keyfile_fields(kf)
    if fields.refspec is None:
        raise InvalidInputError(f"{path} has no [origin] refspec or baserefspec.")
    return {
        "origin": {"baserefspec": fields.refspec},
        "packages": {"requested": fields.requested, "local": fields.local},
        "overrides": {"remove": fields.removals},
    }

"""`reconcile add` / `remove`: edit the requested list with tomlkit, keeping comments and layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Array, Table

from reconcile.errors import InvalidInputError
from reconcile.origin import is_keyfile, parse_origin, parse_toml_document


def edit_requested(path: Path, text: str, add: list[str], remove: list[str]) -> tuple[str, list[str]]:
    """The new file text, and what changed in words (nothing when every edit was already true)."""
    if is_keyfile(path):
        raise InvalidInputError(
            f"{path} is an rpm-ostree .origin file; `add` and `remove` edit only TOML origin files.",
            hint=f"Make one with the same content, then edit that: {_as_toml(path, text)}",
        )
    doc = parse_toml_document(path, text)
    packages = _get_or_add(doc, "packages", tomlkit.table, Table, f"{path}: [packages] is not a table.")
    requested = _get_or_add(packages, "requested", tomlkit.array, Array, f"{path}: packages.requested is not a list.")
    done = []
    present = [str(x) for x in requested]
    for spec in add:
        if spec not in present:
            requested.append(spec)
            present.append(spec)
            done.append(f"+ {spec}")
    for spec in remove:
        if spec in present:
            del requested[present.index(spec)]
            present.remove(spec)
            done.append(f"- {spec}")
    return tomlkit.dumps(doc), done


def _get_or_add(parent: Any, key: str, make: Callable[[], Any], kind: type, wrong: str) -> Any:
    """`parent[key]`, created empty when missing; anything of another type is an error."""
    value = parent.get(key)
    if value is None:
        value = make()
        parent[key] = value
    if not isinstance(value, kind):
        raise InvalidInputError(wrong)
    return value


def _as_toml(path: Path, text: str) -> str:
    """The TOML origin equivalent to a `.origin` file, in one line of shell."""
    desired = parse_origin(path, text.encode()).desired
    doc = tomlkit.document()
    doc["origin"] = desired.origin.model_dump(by_alias=True, exclude_none=True)
    doc["packages"] = {"requested": sorted(desired.packages.requested)}
    overrides = {"remove": sorted(desired.overrides.remove), "replace": sorted(desired.overrides.replace)}
    if any(overrides.values()):
        doc["overrides"] = {key: value for key, value in overrides.items() if value}
    body = tomlkit.dumps(doc).strip().replace("'", "'\\''")
    note = (
        " (requested-local and replace-local pins have no file to name: add the RPM files to packages.local or "
        "overrides.replace-local)"
        if desired.packages.local or desired.overrides.replace_local
        else ""
    )
    return f"printf '%s\\n' '{body}' > {path.with_suffix('.toml')}{note}"

"""`reconcile add` / `remove`: edit the requested list with tomlkit, keeping comments and layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from tomlkit.items import Array, Table

from reconcile.errors import InvalidInputError
from reconcile.origin import is_keyfile, parse_origin, parse_toml_document

if TYPE_CHECKING:
    from reconcile.deployed import DeploymentState


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
    if desired.packages.local:  # `<sha256>:<nevra>` pins: a TOML origin takes them as they are
        doc["packages"]["local"] = sorted(desired.packages.local)
    overrides = {
        "remove": sorted(desired.overrides.remove),
        "replace": sorted(desired.overrides.replace),
        "replace-local": sorted(desired.overrides.replace_local),
    }
    if any(overrides.values()):
        doc["overrides"] = {key: value for key, value in overrides.items() if value}
    body = tomlkit.dumps(doc).strip().replace("'", "'\\''")
    return f"printf '%s\\n' '{body}' > {path.with_suffix('.toml')}"


def describe_deployment(path: Path, text: str, state: DeploymentState, local_files: list[str]) -> str:
    """The origin file rewritten to ask for what `state` is (its base, requests, local files, removals and
    options); comments and the order of kept list items stay (`rollback --update-origin`)."""
    doc = parse_toml_document(path, text)
    origin = _get_or_add(doc, "origin", tomlkit.table, Table, f"{path}: [origin] is not a table.")
    base = {"container-image": state.container_image} if state.container_image else {"baserefspec": state.refspec}
    for key in ("baserefspec", "container-image"):
        _set_scalar(origin, key, base.get(key))
    _set_scalar(origin, "commit", state.pinned_commit)
    _set_scalar(origin, "version", state.pinned_version)
    lists = (
        ("packages", "requested", sorted(state.requested)),
        ("packages", "local", local_files),
        ("overrides", "remove", sorted(state.override_remove)),
        ("options", "ignore_scripts", sorted(state.ignore_scripts)),
    )
    for group, key, values in lists:
        table = doc.get(group)
        if table is None and not values:
            continue
        table = _get_or_add(doc, group, tomlkit.table, Table, f"{path}: [{group}] is not a table.")
        _set_list(table, key, values, f"{path}: {group}.{key} is not a list.")
    options = (
        ("recommends", None if state.recommends else False),
        ("releasever", state.releasever),
        ("localpkg_gpgcheck", state.localpkg_gpgcheck),
    )
    for key, value in options:
        table = doc.get("options")
        if table is None and value is None:
            continue
        _set_scalar(_get_or_add(doc, "options", tomlkit.table, Table, f"{path}: [options] is not a table."), key, value)
    return tomlkit.dumps(doc)


def _set_scalar(table: Any, key: str, value: Any) -> None:
    """`key = value`, or no key at all for None (the default)."""
    if value is None:
        if key in table:
            del table[key]
    elif table.get(key) != value:
        table[key] = value


def _set_list(table: Any, key: str, values: list[str], wrong: str) -> None:
    """Make the list hold exactly `values`: kept items stay where they are (with their comments), missing
    ones are appended."""
    array = table.get(key)
    if array is None:
        if values:
            array = tomlkit.array()
            array.extend(values)
            table[key] = array
        return
    if not isinstance(array, Array):
        raise InvalidInputError(wrong)
    for i in reversed(range(len(array))):
        if str(array[i]) not in values:
            del array[i]
    present = [str(x) for x in array]
    for value in values:
        if value not in present:
            array.append(value)

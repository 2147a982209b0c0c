"""`reconcile add` / `remove` / `edit`: edit the origin file with tomlkit, keeping comments and layout."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit
from tomlkit.items import Array, Table

from reconcile.errors import InvalidInputError, StalePlanError, UsageError
from reconcile.files import locked, write_atomically
from reconcile.origin import OptionsSection, decode_origin, is_keyfile, parse_origin, parse_toml_document, read_origin

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


# The lists `reconcile edit` ensures entries in or out of: (table, key), and whether an entry is known by its
# package name (a new spec for the name replaces the old one) or only as written.
EDITABLE_LISTS = {
    "requested": ("packages", "requested", True),
    "local": ("packages", "local", False),
    "remove-base": ("overrides", "remove", False),
    "replace-base": ("overrides", "replace", True),
}
_SPEC_NAME = re.compile(r"^\s*([^\s<>=!]+)")


@dataclass(frozen=True)
class OriginEdits:
    """What `reconcile edit` makes true of an origin file; anything it does not name stays as it is."""

    base: str | None = None
    present: dict[str, list[str]] = field(default_factory=dict)  # EDITABLE_LISTS key -> entries to have
    absent: dict[str, list[str]] = field(default_factory=dict)  # EDITABLE_LISTS key -> entries not to have
    restore_base: list[str] = field(default_factory=list)  # base package names out of removals and replacements
    options: dict[str, Any] = field(default_factory=dict)  # [options] key -> value; None drops the key


def parse_option(assignment: str) -> tuple[str, Any]:
    """`NAME=VALUE` with VALUE a TOML value (`false`, `"41"`, `["a.%post"]`); a bare word or number is a string."""
    name, sep, value = assignment.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in OptionsSection.model_fields:
        known = ", ".join(sorted(OptionsSection.model_fields))
        raise UsageError(f"--option {assignment!r}: expected NAME=VALUE with NAME one of {known}.")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return name, value.strip()
    return name, value.strip() if type(parsed) in (int, float) else parsed  # no option is a number: 41 is "41"


@dataclass(frozen=True)
class EditedOrigin:
    path: Path
    output: Path | None
    before: str
    after: str
    changes: list[str]

    def document(self) -> dict[str, Any]:
        """`reconcile edit --json`."""
        return {
            "origin": str(self.path),
            "output": None if self.output is None else str(self.output),
            "changed": bool(self.changes),
            "changes": self.changes,
            "sha256": {"before": _sha256(self.before), "after": _sha256(self.after)},
            "before": self.before,
            "after": self.after,
        }


def edit_origin_file(
    path: Path,
    edits: OriginEdits,
    output: Path | None,
    expect_sha256: str | None,
    lock_timeout: float,
    waiting: Callable[[str], None],
) -> EditedOrigin:
    """`reconcile edit`: the whole result is validated before it is written, in place (under the file's lock)
    or to `output` for a caller that plans it before the origin file changes (the Ansible module)."""
    lock = path.parent / f".{path.name}.lock"
    in_place = output is None  # only a write needs the lock: the file is replaced atomically, never torn
    with locked(lock, f"the origin file {path}", waiting, lock_timeout) if in_place else nullcontext():
        creating = edits.base is not None and not path.exists()  # a base is enough to start a file
        raw = b"" if creating else read_origin(path)
        if expect_sha256 and expect_sha256 != hashlib.sha256(raw).hexdigest():
            raise StalePlanError(
                f"{path} changed since it was read (sha256 {hashlib.sha256(raw).hexdigest()[:12]}…); not edited."
            )
        text = decode_origin(path, raw)
        new_text, done = edit_origin(path, text, edits)
        parse_origin(path, new_text.encode())  # every problem of the result, with its line
        if output is not None:
            write_atomically(output, new_text)
        elif done:
            write_atomically(path, new_text)
    return EditedOrigin(path, output, text, new_text, done)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def edit_origin(path: Path, text: str, edits: OriginEdits) -> tuple[str, list[str]]:
    """The new file text, and what changed in words (nothing when every edit was already true). The result is
    not validated here: the caller parses it as an origin, so every problem is reported with its line."""
    if is_keyfile(path):
        raise InvalidInputError(
            f"{path} is an rpm-ostree .origin file; `edit` edits only TOML origin files.",
            hint=f"Make one with the same content, then edit that: {_as_toml(path, text)}",
        )
    both = sorted(set(_flat(edits.present)) & set(_flat(edits.absent)))
    if both:
        raise UsageError(f"Asked for both present and absent: {', '.join(both)}.")
    doc = parse_toml_document(path, text)
    done: list[str] = []
    if edits.base is not None:
        origin = _get_or_add(doc, "origin", tomlkit.table, Table, f"{path}: [origin] is not a table.")
        if origin.get("baserefspec") != edits.base or "container-image" in origin:
            _set_scalar(origin, "container-image", None)  # one base: the refspec replaces an image
            _set_scalar(origin, "baserefspec", edits.base)
            done.append(f"base {edits.base}")
    for key, (group, name, by_name) in EDITABLE_LISTS.items():
        wanted, unwanted = edits.present.get(key, []), edits.absent.get(key, [])
        if key in ("remove-base", "replace-base"):
            unwanted = [*unwanted, *edits.restore_base]
        present = isinstance(doc.get(group), Table) and name in doc[group]
        if wanted or (unwanted and present):  # nothing to drop from a list that is not there: do not add one
            table = _get_or_add(doc, group, tomlkit.table, Table, f"{path}: [{group}] is not a table.")
            array = _get_or_add(table, name, tomlkit.array, Array, f"{path}: {group}.{name} is not a list.")
            done += _ensure_entries(array, f"{group}.{name}", wanted, unwanted, by_name)
    if edits.options:
        table = _get_or_add(doc, "options", tomlkit.table, Table, f"{path}: [options] is not a table.")
        for key, value in edits.options.items():
            if table.get(key) != value:
                _set_scalar(table, key, value)
                done.append(f"options.{key} " + ("unset" if value is None else f"= {tomlkit.item(value).as_string()}"))
    return tomlkit.dumps(doc), done


def _ensure_entries(array: Array, where: str, wanted: list[str], unwanted: list[str], by_name: bool) -> list[str]:
    """Append each wanted entry that is missing, drop each unwanted one; `by_name`: an entry for the same
    package name is the same entry (replaced in place, so its comment stays)."""

    def key(entry: str) -> str:
        match = _SPEC_NAME.match(entry) if by_name else None
        return match[1] if match else entry.strip()

    done = []
    for entry in wanted:
        keys = [key(str(x)) for x in array]
        if key(entry) not in keys:
            array.append(entry)
            done.append(f"+ {where} {entry}")
        elif str(array[keys.index(key(entry))]) != entry:
            done.append(f"~ {where} {array[keys.index(key(entry))]} -> {entry}")
            array[keys.index(key(entry))] = entry
    for entry in unwanted:
        for i in reversed(range(len(array))):
            if str(array[i]) == entry or key(str(array[i])) == key(entry):
                done.append(f"- {where} {array[i]}")
                del array[i]
    return done


def _flat(lists: dict[str, list[str]]) -> list[str]:
    return [f"{key} {entry}" for key, entries in lists.items() for entry in entries]

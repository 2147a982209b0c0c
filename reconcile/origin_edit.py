"""`reconcile add` / `remove`: edit the requested list with tomlkit, keeping comments and layout."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Array, Table

from reconcile.errors import InvalidInputError


def edit_requested(path: Path, text: str, add: list[str], remove: list[str]) -> tuple[str, list[str]]:
    """The new file text, and what changed in words (nothing when every edit was already true)."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise InvalidInputError(f"{path} is not valid TOML.", [f"{path}:{e.line} (column {e.col}): {e}"]) from None
    packages = doc.get("packages")
    if packages is None:
        packages = tomlkit.table()
        doc["packages"] = packages
    if not isinstance(packages, Table):
        raise InvalidInputError(f"{path}: [packages] is not a table.")
    requested = packages.get("requested")
    if requested is None:
        requested = tomlkit.array()
        packages["requested"] = requested
    if not isinstance(requested, Array):
        raise InvalidInputError(f"{path}: packages.requested is not a list.")
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


def write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)

"""`origin.d/*.toml`: fragments beside the origin file, merged with it in name order, so several roles or teams
each own a part of one host's declaration. Lists are unions; a setting given in several files must have one
value there; what one file asks for and another undoes is an error naming both files and lines."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconcile.errors import InvalidInputError
from reconcile.kargs import contradictions
from reconcile.origin import (
    DesiredOrigin,
    FragmentDocument,
    LoadedOrigin,
    Locator,
    check_document,
    is_keyfile,
    read_origin,
)

FRAGMENT_DIR = "origin.d"

# (table, key as written, attribute): the list-valued settings, merged as unions in file order.
_LISTS = (
    ("packages", "requested", "requested"),
    ("packages", "local", "local"),
    ("overrides", "remove", "remove"),
    ("overrides", "replace", "replace"),
    ("overrides", "replace-local", "replace_local"),
    ("kargs", "append", "append"),
    ("kargs", "delete", "delete"),
    ("options", "ignore_scripts", "ignore_scripts"),
)
# (table, keys as written): settings of one value; the keys of a group are alternatives (one base, one pin).
_SCALARS = (
    ("origin", ("baserefspec", "container-image")),
    ("origin", ("commit", "version")),
    ("options", ("recommends",)),
    ("options", ("releasever",)),
    ("options", ("localpkg_gpgcheck",)),
)
_NAME = re.compile(r"^[^\s<>=!,;\"']+")
_PIN = re.compile(r"^[0-9a-f]{64}:\S+$")


def fragment_dir(origin: Path) -> Path:
    """Where the fragments of `origin` live: `<origin's directory>/origin.d/`."""
    return origin.parent / FRAGMENT_DIR


def fragment_paths(origin: Path) -> list[Path]:
    """The fragments, in name order; names starting with a dot (editors' and tools' temporary files) are not."""
    where = fragment_dir(origin)
    try:
        names = sorted(p.name for p in where.iterdir() if p.suffix == ".toml" and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise InvalidInputError(
            f"{where} is not a directory; origin fragments go in a directory of that name."
        ) from None
    except OSError as e:
        raise InvalidInputError(f"Cannot read the origin fragment directory {where}: {e.strerror}.") from None
    return [where / name for name in names]


def spec_name(spec: str) -> str:
    """The package name of a request spec (`vim >= 9` is about `vim`)."""
    m = _NAME.match(spec.strip())
    return m.group(0) if m else spec.strip()


@dataclass(frozen=True)
class _File:
    path: Path
    doc: DesiredOrigin
    where: Locator
    keyfile: bool = False

    def at(self, loc: tuple[Any, ...]) -> str:
        """`FILE:LINE` of a location, as messages name it (the path as given)."""
        line = None if self.keyfile else self.where.line(loc)
        return f"{self.path}:{line}" if line else str(self.path)

    def source(self, loc: tuple[Any, ...]) -> str:
        """`FILE:LINE` with the absolute path, as plans record it."""
        line = None if self.keyfile else self.where.line(loc)
        path = self.path.absolute()
        return f"{path}:{line}" if line else str(path)

    def set_value(self, table: str, key: str) -> Any:
        """The value this file sets for `table.key`, or None when it does not set it."""
        section = getattr(self.doc, table)
        attr = key.replace("-", "_")
        if section is None or attr not in section.model_fields_set:
            return None
        return getattr(section, attr)


@dataclass(frozen=True)
class _Item:
    value: str
    file: _File
    index: int
    loc: tuple[Any, ...]

    @property
    def at(self) -> str:
        return f"{self.file.at(self.loc)} {self.loc[0]}.{self.loc[1]}[{self.index}]"


def load(path: Path) -> LoadedOrigin:
    """The origin file at `path` merged with its fragments; fragments alone are not an origin (no base)."""
    try:
        raw = read_origin(path)
    except InvalidInputError as e:
        if not path.exists() and fragment_paths(path):
            e.hint = f"{fragment_dir(path)} has fragments, but the origin file, which names the base, is required."
        raise
    return with_fragments(path, raw)


def with_fragments(path: Path, raw: bytes) -> LoadedOrigin:
    """The origin file's content `raw` (read from `path`, or about to be written there) merged with the fragments
    in `origin.d/` beside it. Every problem of every file is reported at once, each with its file and line."""
    fragments = fragment_paths(path)
    files: list[_File] = []
    shas: list[str] = []
    problems: list[str] = []
    for file, data, model in [(path, raw, DesiredOrigin), *((p, None, FragmentDocument) for p in fragments)]:
        try:
            content = data if data is not None else read_origin(file)
            doc, where = check_document(file, content, model)
            files.append(_File(file, doc, where, is_keyfile(file)))
            shas.append(hashlib.sha256(content).hexdigest())
        except InvalidInputError as e:
            if not fragments:
                raise
            problems += e.problems or [e.message]
    if problems:
        raise InvalidInputError(f"{_named(path, fragments)} is not a valid origin ({_count(problems)}).", problems)
    main = files[0]
    lists = {(table, key): _union(files, table, key, attr) for table, key, attr in _LISTS}
    sources = {f"{t}.{k}={i.value}": i.file.source(i.loc) for (t, k), items in lists.items() for i in items}
    if not fragments:
        return LoadedOrigin(path=path, sha256=shas[0], desired=main.doc, sources=sources)
    scalars, problems = _scalars(files)
    problems += _contradictions(lists) + _image_pins(scalars)
    if problems:
        raise InvalidInputError(
            f"{_named(path, fragments)} conflict ({_count(problems)}).",
            problems,
            hint="A list is the union of every file's; a setting given in several files must have the same value in "
            "each; a package one file requests, another may not remove.",
        )
    return LoadedOrigin(
        path=path,
        sha256=_digest(shas, fragments),
        desired=_merged(path, fragments, lists, scalars),
        fragments=tuple((p, sha) for p, sha in zip(fragments, shas[1:], strict=True)),
        sources=sources,
    )


def _named(path: Path, fragments: list[Path]) -> str:
    if not fragments:
        return str(path)
    return f"The origin file {path} with its fragments {', '.join(p.name for p in fragments)} in {fragment_dir(path)}"


def _count(problems: list[str]) -> str:
    return f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"


def _digest(shas: list[str], fragments: list[Path]) -> str:
    """Over every file, so a saved plan goes stale when any fragment changes, appears or goes away."""
    material = [shas[0], [[p.name, sha] for p, sha in zip(fragments, shas[1:], strict=True)]]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


def _union(files: list[_File], table: str, key: str, attr: str) -> list[_Item]:
    """Each value once, where it was first declared; a fragment's relative local path is relative to it."""
    seen: dict[str, _Item] = {}
    for n, file in enumerate(files):
        for i, value in enumerate(getattr(getattr(file.doc, table), attr)):
            if n and key in ("local", "replace-local") and not _PIN.match(value) and not Path(value).is_absolute():
                value = str((file.path.parent / value).absolute())
            seen.setdefault(value, _Item(value, file, i, (table, key, i)))
    return list(seen.values())


def _scalars(files: list[_File]) -> tuple[dict[str, tuple[Any, _File]], list[str]]:
    """Each setting's value and the file that sets it first; a file that sets it otherwise is a problem."""
    chosen: dict[str, tuple[Any, _File]] = {}
    problems = []
    for table, keys in _SCALARS:
        first: tuple[str, Any, _File] | None = None
        for file in files:
            for key in keys:
                value = file.set_value(table, key)
                if value is None:
                    continue
                if first is None:
                    first = (key, value, file)
                    chosen[f"{table}.{key}"] = (value, file)
                elif (key, value) != first[:2]:
                    k0, v0, f0 = first
                    problems.append(
                        f"{file.at((table, key))} {table}.{key}: {_shown(value)} here, but {f0.at((table, k0))} sets "
                        f"{table}.{k0} = {_shown(v0)}"
                    )
    return chosen, problems


def _shown(value: Any) -> str:
    return json.dumps(value)  # as TOML writes a string or a boolean


def _contradictions(lists: dict[tuple[str, str], list[_Item]]) -> list[str]:
    """What one file asks for and another undoes (within one file, the file's own checks judge)."""
    problems = []
    removed = lists[("overrides", "remove")]
    for what, items in (
        ("requested by", lists[("packages", "requested")]),
        ("replaced from the repos by", lists[("overrides", "replace")]),
    ):
        by_name: dict[str, list[_Item]] = {}
        for item in items:
            by_name.setdefault(spec_name(item.value), []).append(item)
        for gone in removed:
            for other in by_name.get(gone.value, []):
                if other.file is not gone.file:
                    problems.append(f"{gone.at}: {gone.value!r} is removed from the base here, and {what} {other.at}")
    append, delete = lists[("kargs", "append")], lists[("kargs", "delete")]
    for i, entry, arg in contradictions([a.value for a in append], [d.value for d in delete]):
        asked = next(a for a in append if a.value == arg)
        if asked.file is not delete[i].file:
            problems.append(f"{delete[i].at}: {entry!r} would delete {arg!r}, which {asked.at} appends")
    return problems


def _image_pins(scalars: dict[str, tuple[Any, _File]]) -> list[str]:
    """An image base set in one file and a commit or version pin in another (one file: its own check)."""
    image = scalars.get("origin.container-image")
    if image is None:
        return []
    where = image[1].at(("origin", "container-image"))
    problems = []
    for key in ("commit", "version"):
        pin = scalars.get(f"origin.{key}")
        if pin is not None and pin[1] is not image[1]:
            problems.append(
                f"{pin[1].at(('origin', key))} origin.{key}: a container-image base ({where}) cannot be pinned by "
                f"{key}; an image is pinned by its reference (IMAGE@sha256:DIGEST)"
            )
    return problems


def _merged(
    path: Path,
    fragments: list[Path],
    lists: dict[tuple[str, str], list[_Item]],
    scalars: dict[str, tuple[Any, _File]],
) -> DesiredOrigin:
    data: dict[str, dict[str, Any]] = {"origin": {}, "packages": {}, "overrides": {}, "kargs": {}, "options": {}}
    for (table, key), items in lists.items():
        data[table][key] = [i.value for i in items]
    for name, (value, _file) in scalars.items():
        table, key = name.split(".", 1)
        data[table][key] = value
    try:
        return DesiredOrigin.model_validate(data)
    except ValidationError as e:  # each file passed its checks and the merge its own: a merge this module misses
        problems = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        raise InvalidInputError(f"{_named(path, fragments)} do not merge into a valid origin.", problems) from None

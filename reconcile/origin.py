"""The desired origin: pydantic models, the TOML file (every error at once, with its line), and the
rpm-ostree `.origin` keyfile accepted as input for migration."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

import tomlkit
import tomlkit.exceptions
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconcile.container import parse_image_reference
from reconcile.errors import InvalidInputError
from reconcile.kargs import check_karg, contradictions
from reconcile.origin_keyfile import parse_keyfile

_SPEC = re.compile(r"^(?P<name>[^\s<>=!,;\"']+)(?:\s*(?P<op><=|>=|=|<|>)\s*(?P<evr>[A-Za-z0-9._+~^:-]+))?$")
_REFSPEC = re.compile(r"^(?:[A-Za-z0-9._-]+:)?[A-Za-z0-9._/-]+$")


def _check_spec(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("empty package name")
    if not _SPEC.match(value):
        raise ValueError(
            f"{value!r} is not a package spec (expected NAME, or NAME OP VERSION with OP one of < <= = >= >)"
        )
    return value


def _check_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("empty package name")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", value):
        raise ValueError(f"{value!r} is not a package name")
    return value


def _check_script(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._+-]+\.%?(pre|post|posttrans|transfiletriggerin)", value):
        raise ValueError(f"{value!r} is not NAME.%KIND with KIND one of pre, post, posttrans, transfiletriggerin")
    return value


def _check_releasever(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._+~-]+", value):
        raise ValueError(f"{value!r} is not a release version (letters, digits and . _ + ~ - only)")
    return value


def _check_refspec(value: str) -> str:
    if not value:
        raise ValueError("empty refspec")
    if not _REFSPEC.match(value) or "//" in value or value.endswith("/"):
        raise ValueError(f"{value!r} is not an OSTree refspec (expected REF or REMOTE:REF)")
    return value


_LOCAL_PIN = re.compile(r"^[0-9a-f]{64}:")
_NEVRA = re.compile(r"^\S+-[^\s-]+-[^\s-]+\.[^\s.]+$")


def _check_local(value: str) -> str:
    """A path, or rpm-ostree's `<sha256>:<nevra>` pin of a package in the package cache."""
    if _LOCAL_PIN.match(value) and not _NEVRA.match(value[65:]):
        raise ValueError(f"{value!r} is not a local package pin (expected <sha256>:NAME-VERSION-RELEASE.ARCH)")
    return value


PackageSpec = Annotated[str, AfterValidator(_check_spec)]
LocalEntry = Annotated[str, AfterValidator(_check_local)]
PackageName = Annotated[str, AfterValidator(_check_name)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_commit(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"{value!r} is not an OSTree commit checksum (64 lowercase hex digits)")
    return value


def _check_version(value: str) -> str:
    if not value.strip() or value != value.strip() or "\n" in value:
        raise ValueError(f"{value!r} is not a version (empty, or with spaces around it)")
    return value


def _check_image(value: str) -> str:
    parse_image_reference(value)  # its ValueError names what is wrong
    return value


class OriginSection(_Model):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    baserefspec: Annotated[str, AfterValidator(_check_refspec)] | None = Field(
        default=None, description="The base: a ref in the sysroot's repo, or REMOTE:REF."
    )
    container_image: Annotated[str, AfterValidator(_check_image)] | None = Field(
        default=None,
        alias="container-image",
        description="The base is this container image, as imported on the host (ostree-image-signed:docker://...).",
    )
    commit: Annotated[str, AfterValidator(_check_commit)] | None = Field(
        default=None, description="Pin the base to this commit of the ref's history."
    )
    version: Annotated[str, AfterValidator(_check_version)] | None = Field(
        default=None, description="Pin the base to the commit of the ref with this `version`."
    )

    @field_validator("commit", "version")
    @classmethod
    def _no_pin_with_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field error, so the message points at the pin's own line.
        if value is not None and info.data.get("container_image"):
            raise ValueError(
                f"a container-image base cannot be pinned by {info.field_name}: an image is pinned by its "
                "reference (IMAGE@sha256:DIGEST), and updated by `bootc upgrade` / `rpm-ostree upgrade`"
            )
        return value

    @model_validator(mode="after")
    def _one_base(self) -> OriginSection:
        if (self.baserefspec is None) == (self.container_image is None):
            raise ValueError("give exactly one of baserefspec and container-image")
        if self.commit and self.version:
            raise ValueError("pin the base by commit or by version, not both")
        return self

    @property
    def base(self) -> str:
        """The base as one string: the refspec, or the image reference."""
        return self.baserefspec or self.container_image or ""


class PackagesSection(_Model):
    requested: list[PackageSpec] = Field(default_factory=list, description="Packages to layer, from the rpm-md repos.")
    local: list[LocalEntry] = Field(
        default_factory=list,
        description="Local RPMs to layer: files (pinned by sha256), or <sha256>:<nevra> pins of the package cache.",
    )


class OverridesSection(_Model):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    remove: list[PackageName] = Field(default_factory=list, description="Base packages to drop.")
    replace: list[PackageSpec] = Field(
        default_factory=list, description="Base packages to take from the repos instead (NAME or NAME OP VERSION)."
    )
    replace_local: list[LocalEntry] = Field(
        default_factory=list,
        alias="replace-local",
        description="Local RPMs that replace the base packages of their names: files or <sha256>:<nevra> pins.",
    )


KernelArg = Annotated[str, AfterValidator(check_karg)]


class KargsSection(_Model):
    append: list[KernelArg] = Field(
        default_factory=list, description="Kernel arguments to add when missing: KEY or KEY=VALUE, as written."
    )
    delete: list[KernelArg] = Field(
        default_factory=list,
        description="Kernel arguments to remove when present: KEY=VALUE that one, KEY every instance of the key.",
    )


class OptionsSection(_Model):
    recommends: bool = Field(default=True, description="Install weak dependencies (Recommends).")
    ignore_scripts: list[Annotated[str, AfterValidator(_check_script)]] = Field(
        default_factory=list, description="Scriptlets not to run, as NAME.%KIND (e.g. foo.%post)."
    )
    releasever: Annotated[str, AfterValidator(_check_releasever)] | None = Field(
        default=None, description="The $releasever of the repo files (default: from the base, as dnf detects it)."
    )
    localpkg_gpgcheck: bool | None = Field(
        default=None,
        description="Check packages.local signatures against the enabled repos' keys (default: dnf.conf, else false).",
    )


class DesiredOrigin(_Model):
    """What the user wants: a base and the packages on top."""

    origin: OriginSection
    packages: PackagesSection = Field(default_factory=PackagesSection)
    overrides: OverridesSection = Field(default_factory=OverridesSection)
    kargs: KargsSection = Field(default_factory=KargsSection)
    options: OptionsSection = Field(default_factory=OptionsSection)

    def normalized(self) -> dict[str, Any]:
        """Order-free form: the request lists are sets, as rpm-ostree compares them."""
        return {
            "baserefspec": self.origin.baserefspec,
            "container_image": self.origin.container_image,
            "base_commit": self.origin.commit,
            "base_version": self.origin.version,
            "requested": sorted(self.packages.requested),
            "local": sorted(self.packages.local),
            "override_remove": sorted(self.overrides.remove),
            "override_replace": sorted(self.overrides.replace),
            "override_replace_local": sorted(self.overrides.replace_local),
            "recommends": self.options.recommends,
            "ignore_scripts": sorted(self.options.ignore_scripts),
            "releasever": self.options.releasever,
            "localpkg_gpgcheck": self.options.localpkg_gpgcheck,
        }


class FragmentDocument(DesiredOrigin):
    """An `origin.d/*.toml` fragment: the origin file's schema, every table optional (the base may be left out)."""

    origin: OriginSection | None = None  # type: ignore[assignment]


_M = TypeVar("_M", bound=DesiredOrigin)


class LoadedOrigin(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: Path
    sha256: str = Field(description="Of the file's bytes; with fragments, of every file (origin_fragments).")
    desired: DesiredOrigin
    fragments: tuple[tuple[Path, str], ...] = Field(default=(), description="(path, sha256) of each fragment merged.")
    sources: dict[str, str] = Field(default_factory=dict, description="`TABLE.KEY=VALUE` -> `FILE:LINE` declaring it.")

    def source_of(self, key: str, value: str) -> str | None:
        """Where a list item such as ("packages.requested", "vim") was declared: `FILE:LINE`."""
        return self.sources.get(f"{key}={value}")


def is_keyfile(path: Path) -> bool:
    """An rpm-ostree `.origin` file (anything else is TOML)."""
    return path.suffix == ".origin"


def load_origin(path: Path) -> LoadedOrigin:
    """Read and validate an origin file merged with its `origin.d/*.toml` fragments; raise InvalidInputError
    listing every problem with its file and line."""
    from reconcile.origin_fragments import load  # it builds on this module

    return load(path)


def read_origin(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"The origin file {path} does not exist.") from None
    except OSError as e:
        raise InvalidInputError(f"Cannot read the origin file {path}: {e.strerror}.") from None


def decode_origin(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{path} is not UTF-8 text (byte {e.start}).") from None


def parse_toml_document(path: Path, text: str) -> tomlkit.TOMLDocument:
    """The origin as a tomlkit document (comments and layout kept), or an error naming the line."""
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        reason = str(e).split(" at line ")[0]
        raise InvalidInputError(f"{path} is not valid TOML.", [f"{path}:{e.line} (column {e.col}): {reason}"]) from None
    except tomlkit.exceptions.TOMLKitError as e:  # a key given twice: tomlkit says which, but not where
        raise InvalidInputError(f"{path} is not valid TOML.", [_located(path, text, str(e))]) from None


def _located(path: Path, text: str, reason: str) -> str:
    """`reason` at the line Python's own TOML parser finds the same error on."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        if where:
            return f"{path}:{where[1]} (column {where[2]}): {reason}"
    return f"{path}: {reason}"


def parse_origin(path: Path, raw: bytes) -> LoadedOrigin:
    """Validate one origin file's content (read from `path`, or about to be written there), without fragments."""
    desired, _where = check_document(path, raw, DesiredOrigin)
    return LoadedOrigin(path=path, sha256=hashlib.sha256(raw).hexdigest(), desired=desired)


def check_document(path: Path, raw: bytes, model: type[_M]) -> tuple[_M, Locator]:
    """Validate an origin file or fragment as `model`: every problem at once, each with its line."""
    text = decode_origin(path, raw)
    data = parse_keyfile(path, text) if is_keyfile(path) else _parse_toml(path, text)
    where = Locator(text)
    problems = _duplicates(path, where, data) + _kargs_contradictions(path, where, data)
    desired = None
    try:
        desired = model.model_validate(data)
    except ValidationError as e:
        problems = [_describe(path, where, err) for err in e.errors()] + problems
    if problems or desired is None:
        problems.sort(key=_line_of)
        raise InvalidInputError(
            f"{path} is not a valid origin file ({len(problems)} problem{'s' if len(problems) != 1 else ''}).",
            problems,
        )
    return desired, where


def _line_of(problem: str) -> int:
    m = re.match(r"^[^:]*:(\d+)", problem)
    return int(m.group(1)) if m else 0


_LIST_KEYS = (
    ("packages", "requested"),
    ("packages", "local"),
    ("overrides", "remove"),
    ("overrides", "replace"),
    ("overrides", "replace-local"),
    ("kargs", "append"),
    ("kargs", "delete"),
)


def _duplicates(path: Path, where: Locator, data: dict[str, Any]) -> list[str]:
    """A name listed twice is a mistake worth a line number (the lists are sets)."""
    problems = []
    for table, key in _LIST_KEYS:
        values = data.get(table, {}).get(key) if isinstance(data.get(table), dict) else None
        if not isinstance(values, list):
            continue
        seen: set[str] = set()
        for i, v in enumerate(values):
            if isinstance(v, str) and v.strip() in seen:
                line = where.line((table, key, i))
                problems.append(f"{path}:{line} {table}.{key}[{i}]: {v.strip()!r} is listed twice")
            elif isinstance(v, str):
                seen.add(v.strip())
    return problems


def _kargs_contradictions(path: Path, where: Locator, data: dict[str, Any]) -> list[str]:
    """A kernel argument both appended and deleted: which one wins would be a guess."""
    table = data.get("kargs")
    append, delete = (table.get(key, []) if isinstance(table, dict) else [] for key in ("append", "delete"))
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in (append, delete)):
        return []  # the model reports what is wrong with them
    return [
        f"{path}:{where.line(('kargs', 'delete', i))} kargs.delete[{i}]: {entry!r} would delete {arg!r}, "
        "which kargs.append asks for"
        for i, entry, arg in contradictions(append, delete)
    ]


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    return parse_toml_document(path, text).unwrap()


def _describe(path: Path, locator: Locator, err: Any) -> str:
    loc = tuple(err["loc"])
    line = locator.line(loc)
    where = _dotted(loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key" if len(loc) > 1 else "unknown table"
    elif err["type"] == "missing":
        msg = "required key is missing"
    prefix = f"{path}:{line}" if line else f"{path}"
    return f"{prefix} {where}: {msg}" if where else f"{prefix}: {msg}"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")


class Locator:
    """Lines of locations such as ("packages", "requested", 2) in TOML text: keys and tables are indexed in one
    pass, and each array asked about is walked once, so locating every problem of a file costs its size."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.keys: dict[str, int] = {}
        self.tables: dict[str, int] = {}
        self.items: dict[int, list[int]] = {}
        table = ""
        for n, line in enumerate(self.lines, 1):
            m = _TABLE.match(line)
            if m:
                table = m.group(1)
                self.tables.setdefault(table, n)
                continue
            m = _KEY.match(line)
            if m:
                self.keys.setdefault(".".join(filter(None, [table, m.group(1).strip("\"'")])), n)

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """The 1-based line of a location, if found."""
        keys = [p for p in loc if isinstance(p, str)]
        index = next((p for p in loc if isinstance(p, int)), None)
        key_line = self.keys.get(".".join(keys[:2]))
        if key_line is None:
            return self.tables.get(keys[0]) if keys else None
        if index is None:
            return key_line
        if key_line not in self.items:
            self.items[key_line] = _item_lines(self.lines, key_line)
        items = self.items[key_line]
        return items[index] if index < len(items) else key_line


def locate(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of one location in TOML text, if found."""
    return Locator(text).line(loc)


def _item_lines(lines: list[str], key_line: int) -> list[int]:
    """Walk an array value starting on `key_line`: the line where each item starts."""
    text = "\n".join(lines[key_line - 1 :])
    pos = text.index("=") + 1
    depth = 0
    found: list[int] = []
    expecting = False
    quote = ""
    line = key_line
    i = pos
    line += text.count("\n", 0, pos)
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line += 1
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            if end < 0:
                return found
            i = end
            continue
        if ch == "[":
            depth += 1
            if depth == 1:
                expecting = True
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return found
        elif ch == "," and depth == 1:
            expecting = True
        elif not ch.isspace() and depth >= 1 and expecting:
            expecting = False
            found.append(line)
        if ch in "\"'" and depth >= 1:
            quote = ch
        i += 1
    return found

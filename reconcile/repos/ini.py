"""The INI dialect of dnf's `.repo` files and `dnf.conf`, read with the line of every section and key, so an
error can name `file:line`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reconcile.errors import ReconcileError

_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]\s*$")
_OPTION = re.compile(r"^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$")


@dataclass(frozen=True)
class Value:
    text: str
    line: int


@dataclass
class Section:
    name: str
    path: Path
    line: int
    options: dict[str, Value] = field(default_factory=dict)

    def where(self, key: str | None = None) -> str:
        """`file:line` of the key (or of the section header)."""
        line = self.options[key].line if key in self.options else self.line
        return f"{self.path}:{line}"


def read_ini(path: Path) -> list[Section]:
    """Sections in file order; indented lines continue the previous value (dnf's multi-line lists)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReconcileError(f"Cannot read {path}: {getattr(e, 'strerror', None) or e}.") from None
    sections: list[Section] = []
    current: Section | None = None
    last: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[0] in " \t" and current is not None and last is not None:
            previous = current.options[last]
            current.options[last] = Value(f"{previous.text}\n{stripped}", previous.line)
            continue
        if m := _SECTION.match(stripped):
            name = m.group(1)
            if any(s.name == name for s in sections):
                raise ReconcileError(f"{path}:{number}: the section [{name}] appears twice.")
            current, last = Section(name, path, number), None
            sections.append(current)
            continue
        m = _OPTION.match(stripped)
        if m is None or current is None:
            why = "a line outside any [section]" if m else "not a `key=value` line"
            raise ReconcileError(f"{path}:{number}: {why}: {stripped[:80]!r}.")
        key = m.group(1).lower()
        if key in current.options:
            raise ReconcileError(
                f"{path}:{number}: [{current.name}] sets {key} twice (first on line {current.options[key].line}).",
                hint="A repeated option is ambiguous; keep one.",
            )
        current.options[key], last = Value(m.group(2).strip(), number), key
    return sections

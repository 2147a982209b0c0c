"""dnf's repo variables: `$basearch`, `$arch`, `$releasever` (+ `_major`/`_minor`) and the files of
`/etc/dnf/vars` and `/etc/yum/vars`, substituted as dnf does (`$name`, `${name}`, `${name:-word}`,
`${name:+word}`; an unknown name is left as written)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# rpm's arch -> dnf's basearch (libdnf's arch map, the architectures a distribution ships).
_BASEARCH = {
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "athlon": "i386",
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "armv7l": "armhfp",
    "armv7hl": "armhfp",
    "armv7hnl": "armhfp",
    "armv6l": "armhfp",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
_NAME = re.compile(r"[A-Za-z0-9_]+")
VAR_DIRS = ("dnf/vars", "yum/vars")


def basearch(arch: str) -> str:
    return _BASEARCH.get(arch, arch)


@dataclass(frozen=True)
class Variables:
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_host(cls, arch: str, releasever: str | None, etc: Path | None, override: str | None = None) -> Variables:
        """Built-in variables, then the vars files of `etc` (which override them, as in dnf), then an explicit
        `override` of $releasever (the origin's, or a saved plan's)."""
        values = {"arch": arch, "basearch": basearch(arch)}
        if releasever:
            values["releasever"] = releasever
        if etc is not None:
            for sub in VAR_DIRS:
                values.update(read_vars_dir(etc / sub))
        if override:
            values["releasever"] = override
            values.pop("releasever_major", None)
            values.pop("releasever_minor", None)
        if values.get("releasever"):
            major, _, minor = values["releasever"].partition(".")
            values.setdefault("releasever_major", major)
            values.setdefault("releasever_minor", minor)
        return cls(values)

    def substitute(self, text: str) -> tuple[str, list[str]]:
        """The text with every known variable replaced, and the names it uses that are unknown."""
        out: list[str] = []
        unknown: list[str] = []
        i = 0
        while i < len(text):
            if text[i] != "$":
                out.append(text[i])
                i += 1
                continue
            if text.startswith("${", i):
                end = text.find("}", i)
                expression = text[i + 2 : end] if end > 0 else ""
                replaced = self._braced(expression, unknown) if end > 0 else None
                if replaced is None:
                    out.append(text[i : end + 1] if end > 0 else text[i:])
                    i = end + 1 if end > 0 else len(text)
                    continue
                out.append(replaced)
                i = end + 1
                continue
            m = _NAME.match(text, i + 1)
            if m is None:
                out.append("$")
                i += 1
                continue
            name = m.group(0)
            if name in self.values:
                out.append(self.values[name])
            else:
                unknown.append(name)
                out.append(text[i : m.end()])
            i = m.end()
        return "".join(out), unknown

    def _braced(self, expression: str, unknown: list[str]) -> str | None:
        name, op, word = expression, "", ""
        for candidate in (":-", ":+"):
            if candidate in expression:
                name, _, word = expression.partition(candidate)
                op = candidate
                break
        if not _NAME.fullmatch(name):
            return None
        value = self.values.get(name)
        if op == ":-":
            return value if value else word
        if op == ":+":
            return word if value else ""
        if value is None:
            unknown.append(name)
            return None
        return value


def read_vars_dir(directory: Path) -> dict[str, str]:
    """One variable per file: the file name is the name, its first line the value."""
    if not directory.is_dir():
        return {}
    values = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and _NAME.fullmatch(path.name):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            values[path.name] = lines[0].strip() if lines else ""
    return values

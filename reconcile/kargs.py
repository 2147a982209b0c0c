"""Kernel arguments: the origin's `[kargs] append` / `delete`, converged against the merge deployment's bootconfig
`options`, as rpm-ostree's `kargs --append-if-missing` / `--delete-if-present` (docs/decisions.md says how ours
differ). Pure functions: the origin checks its lists with them, the planner computes the new argv."""

from __future__ import annotations

# libostree writes `ostree=/ostree/boot.N/...` into every deployment's options itself, so it is nobody's to set.
LIBOSTREE_KEY = "ostree"


def check_karg(value: str) -> str:
    """One kernel argument as the origin may list it: `KEY` or `KEY=VALUE`, nothing to split or quote."""
    if not value:
        raise ValueError("empty kernel argument")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains whitespace (one kernel argument per list item, unquoted)")
    key = key_of(value)
    if not key:
        raise ValueError(f"{value!r} has no key before '='")
    if key == LIBOSTREE_KEY:
        raise ValueError(f"{value!r}: libostree sets ostree= for each deployment itself")
    return value


def key_of(arg: str) -> str:
    return arg.split("=", 1)[0]


def split_options(options: str | None) -> list[str]:
    """A bootconfig `options` line as argv, split on whitespace outside double quotes (as libostree splits
    it), without libostree's own `ostree=` argument."""
    args: list[str] = []
    current, quoted, started = "", False, False
    for ch in options or "":
        if ch.isspace() and not quoted:
            if started:
                args.append(current)
            current, started = "", False
            continue
        if ch == '"':
            quoted = not quoted
        current += ch
        started = True
    if started:
        args.append(current)
    return [a for a in args if key_of(a) != LIBOSTREE_KEY]


def deletes(entry: str, arg: str) -> bool:
    """A `delete` entry `KEY=VALUE` removes exactly that argument; `KEY` removes every instance of the key."""
    return arg == entry if "=" in entry else key_of(arg) == entry


def converge(current: list[str], append: list[str], delete: list[str]) -> list[str]:
    """The argv the deployment must have: `current` without what `delete` names (order kept), then each
    `append` entry that is not there as written, in the order written."""
    kept = [arg for arg in current if not any(deletes(entry, arg) for entry in delete)]
    return kept + [arg for arg in dict.fromkeys(append) if arg not in kept]


def contradictions(append: list[str], delete: list[str]) -> list[tuple[int, str, str]]:
    """(index in `delete`, that entry, the `append` entry it would remove): the origin asks for both."""
    out = []
    for i, entry in enumerate(delete):
        hit = next((arg for arg in append if deletes(entry, arg)), None)
        if hit is not None:
            out.append((i, entry, hit))
    return out

"""Fuzz the origin file: property-based (hypothesis) TOML and rpm-ostree keyfile origins, built from the real
vocabulary and from noise, and mutated bytes of a valid file. Each case must end, within 2 s, in a valid origin
or an InvalidInputError naming the file (exit 65), never in another exception (an internal error). `make test`
runs a smoke of each; `make reliability` (RECONCILE_RELIABILITY=full) runs over 2,000 cases."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.errors import InvalidInputError
from reconcile.origin import parse_origin

FULL = os.environ.get("RECONCILE_RELIABILITY") == "full"
CASES = {"toml": 600, "lines": 600, "keyfile": 500, "bytes": 500}
CASES = CASES if FULL else {kind: 40 for kind in CASES}
CHECK = settings(deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow], derandomize=not FULL)
VALID = b"""# the example origin
[origin]
baserefspec = "example:example/x86_64/stable"

[packages]
requested = ["hello", "tree >= 1.0", "foo.x86_64"]
local = []

[options]
recommends = false
ignore_scripts = ["foo.%post"]
"""

names = st.sampled_from(["origin", "packages", "options", "baserefspec", "requested", "local", "recommends"])
names |= st.sampled_from(["ignore_scripts", "releasever", "localpkg_gpgcheck", "refspec", "override", "x"])
names |= st.text(min_size=1, max_size=12)
scalars = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["hello", "tree >= 1.0", "a.%post", "example:example/x86_64/stable", "", " ", "../x", "-e"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.datetimes(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(names, inner, max_size=4))
documents = st.dictionaries(names, st.dictionaries(names, values, max_size=6) | values, max_size=5)


def _value(value: Any) -> str:
    try:
        return tomlkit.item(value).as_string()
    except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError):
        return '"x"'


# Line by line, so that a key or a table may come twice (a dict cannot say that).
toml_lines = st.one_of(
    st.sampled_from(["[origin]", "[packages]", "[options]", "[[packages]]", "[origin.x]", "", "# c", "="]),
    st.builds(lambda k, v: f"{k} = {_value(v)}", names.filter(str.isidentifier), values),
    st.builds(lambda k, v: f'"{k}" = {_value(v)}', names, scalars),
    st.text(max_size=40),
)
keyfile_lines = st.one_of(
    st.sampled_from(["[origin]", "[packages]", "[rpmostree]", "[libostree]", "", "# c", "=", "[", "]"]),
    st.builds(lambda k, v: f"{k}={v}", names, st.text(max_size=30)),
    st.builds(lambda v: f"refspec={v}", st.text(max_size=30)),
    st.builds(lambda v: f"requested={v}", st.lists(st.text(max_size=10), max_size=5).map(";".join)),
    st.text(max_size=40),
)


def _check(tmp: Path, name: str, raw: bytes) -> None:
    path = tmp / name
    start = time.monotonic()
    try:
        parse_origin(path, raw)
    except InvalidInputError as e:
        assert str(path) in e.message or any(str(path) in p for p in e.problems), (e.message, e.problems)
    took = time.monotonic() - start
    assert took < 2, f"{took:.1f} s"


def _toml(document: dict[str, Any]) -> bytes | None:
    try:
        return tomlkit.dumps(document).encode()
    except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError):
        return None  # not expressible in TOML (e.g. a bare NaN key): nothing for reconcile to read


@settings(CHECK, max_examples=CASES["toml"])
@given(document=documents)
def test_toml_origins_from_the_vocabulary_and_noise(tmp_path_factory: Any, document: dict[str, Any]) -> None:
    raw = _toml(document)
    if raw is not None:
        _check(tmp_path_factory.getbasetemp(), "origin.toml", raw)


@settings(CHECK, max_examples=CASES["lines"])
@given(lines=st.lists(toml_lines, max_size=14))
def test_toml_origins_line_by_line(tmp_path_factory: Any, lines: list[str]) -> None:
    _check(tmp_path_factory.getbasetemp(), "origin.toml", "\n".join(lines).encode("utf-8", "surrogatepass"))


@settings(CHECK, max_examples=CASES["keyfile"])
@given(lines=st.lists(keyfile_lines, max_size=12))
def test_rpm_ostree_keyfile_origins(tmp_path_factory: Any, lines: list[str]) -> None:
    _check(tmp_path_factory.getbasetemp(), "x.origin", "\n".join(lines).encode("utf-8", "surrogatepass"))


@settings(CHECK, max_examples=CASES["bytes"])
@given(data=st.data())
def test_mutated_bytes_of_a_valid_origin(tmp_path_factory: Any, data: st.DataObject) -> None:
    raw = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.integers(0, 255))
        if action == "insert":
            raw.insert(at, byte)
        elif at < len(raw):
            if action == "delete":
                del raw[at]
            else:
                raw[at] = byte
    _check(tmp_path_factory.getbasetemp(), "origin.toml", bytes(raw))

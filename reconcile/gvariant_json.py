"""GVariant to JSON the way json-glib's `json_gvariant_serialize` does it, which is how `rpm-ostree status --json`
prints commit metadata: tuples and arrays become arrays, `a{..}` objects (keys as strings), a variant its value, a
maybe its value or null, and every integer a signed 64-bit number (so a `t` above 2^63 comes out negative)."""

from __future__ import annotations

from typing import Any

_INTEGER = set("ynqiuxth")
_INT64_WRAP = 1 << 64


def variant_to_json(v: Any) -> Any:
    t = v.get_type_string()
    kind = t[0]
    if kind == "b":
        return bool(v.get_boolean())
    if kind in _INTEGER:
        return _signed64(int(v.unpack()))
    if kind == "d":
        return float(v.get_double())
    if kind in "sog":
        return str(v.get_string())
    if kind == "v":
        return variant_to_json(v.get_variant())
    if kind == "m":
        inner = v.get_maybe()
        return None if inner is None else variant_to_json(inner)
    if t == "ay":  # one piece: byte arrays (composefs digests, checksums) can be long
        return list(bytes(v.get_data_as_bytes().get_data()))
    if t == "as":
        return [str(s) for s in v.unpack()]
    children = [v.get_child_value(i) for i in range(v.n_children())]
    if t.startswith("a{"):
        return dict(_entry(e) for e in children)
    if kind == "{":
        return dict([_entry(v)])
    return [variant_to_json(c) for c in children]


def _entry(entry: Any) -> tuple[str, Any]:
    key = entry.get_child_value(0)
    return _key_string(key), variant_to_json(entry.get_child_value(1))


def _key_string(key: Any) -> str:
    """json-glib's `gvariant_simple_to_string`: a dictionary key of any basic type as text."""
    kind = key.get_type_string()
    if kind == "b":
        return "true" if key.get_boolean() else "false"
    if kind == "d":
        return f"{key.get_double():f}"
    if kind in _INTEGER:
        return str(int(key.unpack()))
    return str(key.get_string())


def _signed64(n: int) -> int:
    return n - _INT64_WRAP if n >= 1 << 63 else n

"""docs/plan.schema.json is generated from the models; this fails when they drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.schema import SCHEMAS

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "plan.schema.json"


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_file_matches_the_models(name: str) -> None:
    path = SCHEMA.parent / f"{name}.schema.json"
    assert json.loads(path.read_text()) == SCHEMAS[name](), "run `make docs/plan.schema.json` and commit it"


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_field_is_documented(name: str) -> None:
    doc = (SCHEMA.parent / "plan-format.md").read_text()
    schema = SCHEMAS[name]()
    fields = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        fields.update(definition.get("properties", {}))
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert not missing, f"docs/plan-format.md does not document {missing} of the {name} document"


def _enums(node: object) -> list[tuple[str, list[str]]]:
    """Every closed vocabulary in the schema: (where, values)."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(node, dict):
        if "enum" in node:
            found.append((str(node.get("title", "?")), [str(v) for v in node["enum"] if v is not None]))
        for value in node.values():
            found += _enums(value)
    elif isinstance(node, list):
        for value in node:
            found += _enums(value)
    return found


def test_every_value_of_every_vocabulary_is_documented() -> None:
    doc = (SCHEMA.parent / "plan-format.md").read_text()
    enums = [e for make in SCHEMAS.values() for e in _enums(make())]
    assert any(title == "CheckKind" for title, _ in enums), "check kinds are a closed vocabulary in the schema"
    missing = sorted({f"{title}: {v}" for title, values in enums for v in values if f"`{v}`" not in doc})
    assert not missing, f"docs/plan-format.md does not document {missing}"


def test_every_inner_vocabulary_is_documented() -> None:
    """Closed vocabularies that are not document fields (tree rules, placements, script and account kinds)."""
    from reconcile.accounts import AccountKind
    from reconcile.rpm.scriptlets import ScriptKind
    from reconcile.rpm.treerules import Placement, Rule

    doc = (SCHEMA.parent / "plan-format.md").read_text()
    missing = [f"{e.__name__}: {v.value}" for e in (Rule, Placement, ScriptKind, AccountKind) for v in e]
    missing = [m for m in missing if f"`{m.split(': ')[1]}`" not in doc]
    assert not missing, f"docs/plan-format.md does not document {missing}"

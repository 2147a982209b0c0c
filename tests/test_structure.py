"""The module structure the README's layout section describes: layers point down, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconcile"
# layer -> the reconcile layers it must not import (anything not listed is shared ground)
FORBIDDEN = {
    "planner": ("reconcile.apply", "reconcile.cli", "reconcile.api"),
    "apply": ("reconcile.cli", "reconcile.api"),
    "rpm": ("reconcile.planner", "reconcile.apply", "reconcile.repos", "reconcile.cli", "reconcile.api"),
    "repos": ("reconcile.planner", "reconcile.apply", "reconcile.cli", "reconcile.api"),
    "ostree": ("reconcile.planner", "reconcile.apply", "reconcile.rpm", "reconcile.repos", "reconcile.cli"),
}
# apply uses the Plan model, and plans again under its lock (apply.apply, the checklist)
ALLOWED_FROM_PLANNER = ("reconcile.planner.model", "reconcile.planner.plan.make_plan")
MAX_LINES = 500


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


@pytest.mark.parametrize("layer", FORBIDDEN)
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).glob("*.py"))
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    ]
    assert not wrong, wrong


def test_apply_uses_the_plan_model_and_make_plan_only() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "apply").glob("*.py"))
        for name in _imports(path)
        if name.startswith("reconcile.planner.") and not name.startswith(ALLOWED_FROM_PLANNER)
    ]
    assert not wrong, wrong


def test_no_module_is_over_the_size_limit() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not big, big

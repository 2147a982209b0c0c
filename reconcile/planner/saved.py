"""Saved plans (`plan -o FILE`): written atomically, read back strictly (an unknown major format is refused)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from reconcile.errors import InvalidInputError
from reconcile.files import write_atomically
from reconcile.planner.model import PLAN_FORMAT_VERSION, Plan, plan_document


def write_plan(plan: Plan, path: Path) -> None:
    write_atomically(path, plan_document(plan))


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"The plan file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"{path} is not a readable plan file ({e}).") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} is not a plan file (expected a JSON object).")
    version = str(data.get("format_version", ""))
    major = PLAN_FORMAT_VERSION.split(".")[0]
    if version.split(".")[0] != major:
        raise InvalidInputError(
            f"{path} has plan format {version or 'none'}; this reconcile reads format {major}.x.",
            hint="Plan again with this version of reconcile.",
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        problems = [f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise InvalidInputError(f"{path} is not a valid plan ({len(problems)} problems).", problems) from None

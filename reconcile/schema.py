"""The JSON Schemas of reconcile's documents, generated from the pydantic models:
`python -m reconcile.schema [plan|status|apply|rollback|cleanup]` (docs/*.schema.json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from reconcile.planner.model import PLAN_FORMAT_VERSION, Plan


def _schema(model: type[BaseModel], name: str, version: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://reconcile.invalid/{name}-{version}.schema.json"
    return schema


def plan_schema() -> dict[str, Any]:
    return _schema(Plan, "plan", PLAN_FORMAT_VERSION)


def status_schema() -> dict[str, Any]:
    from reconcile.status import STATUS_FORMAT_VERSION, Status

    return _schema(Status, "status", STATUS_FORMAT_VERSION)


def apply_schema() -> dict[str, Any]:
    from reconcile.api import APPLY_FORMAT_VERSION, ApplyReport

    return _schema(ApplyReport, "apply", APPLY_FORMAT_VERSION)


def rollback_schema() -> dict[str, Any]:
    from reconcile.lifecycle import LIFECYCLE_FORMAT_VERSION, RollbackReport

    return _schema(RollbackReport, "rollback", LIFECYCLE_FORMAT_VERSION)


def cleanup_schema() -> dict[str, Any]:
    from reconcile.lifecycle import LIFECYCLE_FORMAT_VERSION, CleanupReport

    return _schema(CleanupReport, "cleanup", LIFECYCLE_FORMAT_VERSION)


SCHEMAS = {
    "plan": plan_schema,
    "status": status_schema,
    "apply": apply_schema,
    "rollback": rollback_schema,
    "cleanup": cleanup_schema,
}

if __name__ == "__main__":
    print(json.dumps(SCHEMAS[sys.argv[1] if len(sys.argv) > 1 else "plan"](), indent=2, sort_keys=True))

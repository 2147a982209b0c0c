"""The plan's JSON Schema, generated from the pydantic models (`python -m reconcile.planner.schema`)."""

from __future__ import annotations

import json
from typing import Any

from reconcile.planner.model import PLAN_FORMAT_VERSION, Plan


def plan_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://reconcile.invalid/plan-{PLAN_FORMAT_VERSION}.schema.json"
    return schema


if __name__ == "__main__":
    print(json.dumps(plan_schema(), indent=2, sort_keys=True))

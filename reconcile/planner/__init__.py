"""The planner: reads state through small interfaces and returns a frozen Plan (see plan.make_plan)."""

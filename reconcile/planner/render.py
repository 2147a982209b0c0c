"""Plans for people: request changes as +/-/~ lines, then the RPM diff, then one summary line."""

from __future__ import annotations

from reconcile.planner import model as m


def render_text(plan: m.Plan) -> str:
    if not plan.has_changes:
        return plan.summary.text
    p = plan.prior
    checksum, _, serial = p.deployment.rpartition(".")
    lines = [f"Plan for stateroot {p.stateroot}, against deployment {checksum[:12]}.{serial} (base {p.refspec}):"]
    width = max((len(c.address) for c in plan.changes), default=0)
    for c in plan.changes:
        detail = c.reason
        if c.before or c.after:
            detail += f": {c.before} → {c.after}"
        lines.append(f"{c.symbol} {c.address.ljust(width)}  {detail}")
    r = plan.resolution
    sections = (
        ("Packages to add", "+", r.added),
        ("Packages to remove", "-", r.removed),
        ("Packages to upgrade", "↑", r.upgraded),
        ("Packages to downgrade", "↓", r.downgraded),
    )
    for title, mark, entries in sections:
        if not entries:
            continue
        lines += ["", f"{title}:"]
        for e in entries:
            lines.append(f"  {mark} {_describe(e)}")
    lines += ["", plan.summary.text]
    return "\n".join(lines)


def _describe(e: m.PackageEntry) -> str:
    name = f"{e.name} {e.before.removeprefix(e.name + '-')} → {e.evr}.{e.arch}" if e.before else e.nevra
    where = f" [{e.repo}]" if e.repo else ""
    if e.reason == "requested":
        return f"{name}{where} (requested)"
    if e.why and len(e.why) > 1:
        return f"{name}{where} (dependency: {' → '.join(e.why)})"
    return f"{name}{where}"


def render_json(plan: m.Plan) -> str:
    return plan.model_dump_json(indent=2)

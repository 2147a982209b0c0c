"""`reconcile status`: the deployments in boot order, requested vs layered packages."""

from __future__ import annotations

import datetime
import json
from typing import Any

from reconcile.context import Context
from reconcile.deployed import DeploymentState, all_deployments


def status_document(ctx: Context) -> dict[str, Any]:
    states = all_deployments(ctx.sysroot, ctx.repo)
    return {
        "sysroot": str(ctx.sysroot.path),
        "deployments": [_deployment(s, i) for i, s in enumerate(states)],
    }


def _deployment(s: DeploymentState, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": f"{s.stateroot}-{s.id}",
        "stateroot": s.stateroot,
        "checksum": s.checksum,
        "serial": s.serial,
        "booted": s.booted,
        "default": index == 0,
        "origin": s.refspec,
        "version": s.version,
        "timestamp": s.timestamp,
        "base_checksum": s.base_checksum,
        "requested_packages": sorted(s.requested),
        "layered_packages": [str(p.nevra) for p in s.layered],
        "inactive_requests": sorted(s.inactive_requests),
        "requested_local_packages": sorted(s.local),
        "requested_base_removals": sorted(s.override_remove),
        "removed_base_packages": s.removed_base,
        "state_digest": s.state_digest,
    }


def render_status_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


def render_status_text(doc: dict[str, Any]) -> str:
    deployments = doc["deployments"]
    if not deployments:
        return f"No deployments in {doc['sysroot']}."
    lines = [f"Deployments in {doc['sysroot']}, in boot order:"]
    for d in deployments:
        marks = [m for m, on in (("booted", d["booted"]), ("default", d["default"])) if on]
        if not d["default"] and d["index"] == 1:
            marks.append("rollback")
        bullet = "●" if d["booted"] else "*" if d["default"] else " "
        lines.append(f"{bullet} {d['stateroot']}:{d['origin']}" + (f"  ({', '.join(marks)})" if marks else ""))
        when = datetime.datetime.fromtimestamp(d["timestamp"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        rows = [
            ("Commit", f"{d['checksum']}.{d['serial']}"),
            ("Version", f"{d['version']} ({when})" if d["version"] else when),
        ]
        if d["base_checksum"] != d["checksum"]:
            rows.append(("Base", d["base_checksum"]))
        if d["requested_packages"]:
            rows.append(("Requested", ", ".join(d["requested_packages"])))
        if d["layered_packages"]:
            rows.append(("Layered", ", ".join(d["layered_packages"])))
        if d["requested_local_packages"]:
            rows.append(("Local", ", ".join(p.split(":", 1)[-1] for p in d["requested_local_packages"])))
        if d["removed_base_packages"]:
            rows.append(("Removed", ", ".join(d["removed_base_packages"]) + " (from the base)"))
        if d["inactive_requests"]:
            rows.append(("Inactive", ", ".join(d["inactive_requests"]) + " (provided by the base)"))
        lines += [f"      {k + ':':<11}{v}" for k, v in rows]
    return "\n".join(lines)

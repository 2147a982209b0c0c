"""Two engines on one host: reconcile records in the stateroot's cache that it manages the stateroot's origin, and
`status` warns when rpm-ostree (rpm-ostreed-automatic, Zincati, a manual `rpm-ostree upgrade`) has since built
the default deployment from it with its own engine. rpm-ostree rewrites origins through its treefile and drops
groups it does not know, so the record lives beside the deployments, not in their origins (docs/rpm-ostree.md)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from reconcile.deployed import DeploymentState
from reconcile.files import write_atomically

MANAGED_FILE = "managed.json"


def record_managed(cachedir: Path, origin: Path, deployment: str) -> None:
    """After reconcile deployed `deployment` from `origin`."""
    cachedir.mkdir(parents=True, exist_ok=True)
    record = {"origin": str(origin.absolute()), "deployment": deployment}
    write_atomically(cachedir / MANAGED_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_managed(cachedir: Path) -> dict[str, str] | None:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((cachedir / MANAGED_FILE).read_text())
        if isinstance(data, dict) and isinstance(data.get("origin"), str):
            return {k: str(v) for k, v in data.items()}
    return None


def rebuilt_by_rpm_ostree(states: list[DeploymentState], cachedir_of: dict[str, Path]) -> list[str]:
    """A warning per stateroot whose default deployment rpm-ostree built while reconcile manages the stateroot
    (it deployed there, or built one of the stateroot's other deployments)."""
    out = []
    for stateroot, cachedir in sorted(cachedir_of.items()):
        mine = [s for s in states if s.stateroot == stateroot]
        if not mine or mine[0].built_by != "rpm-ostree":
            continue
        managed = read_managed(cachedir)
        if managed is None and not any(s.built_by == "reconcile" for s in mine[1:]):
            continue
        where = f"from the origin reconcile manages ({managed['origin']})" if managed else "over reconcile's layering"
        out.append(
            f"The default deployment of {stateroot} ({mine[0].id}) was built by rpm-ostree {where}: "
            "rpm-ostree and reconcile both update this host and rebuild each other's deployments. Let one of them "
            'own updates (docs/rpm-ostree.md, "Two engines on one host"); `reconcile plan` shows what reconcile '
            "would change."
        )
    return out

"""A solver's choice as the plan pins it: the one conversion plan and compose share."""

from __future__ import annotations

from reconcile.planner import model as m
from reconcile.planner.solver import Candidate


def pin_candidate(c: Candidate, requested: bool) -> m.PinnedPackage:
    n = c.nevra
    return m.PinnedPackage(
        nevra=str(n),
        name=n.name,
        epoch=n.epoch,
        version=n.version,
        release=n.release,
        arch=n.arch,
        repo=c.repo,
        checksum=c.checksum,
        location=c.location,
        baseurl=c.baseurl,
        requested=requested,
        size=c.size,
    )

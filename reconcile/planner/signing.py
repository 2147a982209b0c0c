"""Plan-time signature checks: the header of every package a plan adds, from a repo with `gpgcheck` (or a
local package with `localpkg_gpgcheck`), is checked by rpm against that repo's keys before anything is
downloaded in full. The keys that sign them are listed in the plan, new ones marked."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconcile.openpgp import PublicKey
from reconcile.planner import model as m
from reconcile.repos.source import RepoSet, signature_failure
from reconcile.rpm import signatures


@dataclass
class _KeyUse:
    key: PublicKey
    repos: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)


def signature_checks(
    raws: dict[str, tuple[str, bytes]], repos: RepoSet | None, new: set[str]
) -> tuple[list[m.Check], list[m.SigningKey]]:
    """`raws` maps a NEVRA to (repo id, lead+signature+header bytes); the keys listed are those of `new`."""
    if repos is None:
        return [], []
    checks: list[m.Check] = []
    used: dict[str, _KeyUse] = {}
    for nevra, (repo_id, raw) in sorted(raws.items()):
        keys = repos.keys_for(repo_id)
        if keys is None:
            continue
        verdict = signatures.check_header(raw, keys)
        if not verdict.ok or verdict.signer is None:
            message = signature_failure(nevra, repo_id, repos.by_id.get(repo_id), verdict, keys)
            checks.append(
                m.Check(kind=m.CheckKind.SIGNATURE, severity=m.Severity.ERROR, package=nevra, message=message)
            )
            continue
        if nevra not in new:
            continue
        use = used.setdefault(verdict.signer.fingerprint, _KeyUse(verdict.signer))
        use.repos.add(repo_id)
        use.packages.add(nevra)
    keys_out = [
        m.SigningKey(
            fingerprint=u.key.fingerprint,
            user_ids=list(u.key.user_ids),
            repos=sorted(u.repos),
            packages=sorted(u.packages),
            new=repos.keys.is_new(u.key),
        )
        for u in sorted(used.values(), key=lambda u: u.key.fingerprint)
    ]
    return checks, keys_out

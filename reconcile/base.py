"""Which base commit a plan builds on: the deployed one while nothing asks for another (converge), the ref's
newest with --update or a rebase, or a pin by commit or version. A remote base is fetched as far as a plan reads
it (the commit and a few paths: the rpmdb, os-release, the account files, the SELinux config); apply pulls the
rest (`pull_whole`)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from reconcile.container import ImportedImage, find_import, import_ref
from reconcile.errors import OstreeError, ReconcileError
from reconcile.files import write_atomically
from reconcile.ostree import Repo
from reconcile.ostree.remote import Pulled, pull, require_remote
from reconcile.rpm.rpmdb import RPMDB_DIRS

# What a plan reads of a base tree it has not deployed (ostree_system, pkgcache.owners_in_commit, selinux).
PLAN_PATHS = [
    *(f"/{d}" for d in RPMDB_DIRS),
    "/usr/lib/os-release",
    "/usr/etc/os-release",
    "/usr/etc/passwd",
    "/usr/etc/group",
    "/usr/lib/passwd",
    "/usr/lib/group",
    "/usr/etc/selinux/config",
    "/usr/etc/dnf/dnf.conf",
    "/usr/etc/yum.repos.d",
]
HISTORY_SHOWN = 8  # versions named when a pinned version is not in the ref's history


@dataclass(frozen=True)
class BaseWanted:
    """The desired base (refspec and pins) beside what the deployment was built from."""

    refspec: str
    commit: str | None = None
    version: str | None = None
    update: bool = False
    container: bool = False  # `refspec` is a container image reference
    deployed_refspec: str | None = None
    deployed_commit: str | None = None  # the deployment's pin (`override-commit`)
    deployed_version: str | None = None
    deployed_base: str | None = None

    @property
    def remote(self) -> str | None:
        return self.refspec.split(":", 1)[0] if ":" in self.refspec else None

    @property
    def ref(self) -> str:
        return self.refspec.split(":", 1)[1] if ":" in self.refspec else self.refspec

    @property
    def unchanged(self) -> bool:
        """The same base is asked for as the deployment was built from."""
        return (self.refspec, self.commit, self.version) == (
            self.deployed_refspec,
            self.deployed_commit,
            self.deployed_version,
        )


@dataclass(frozen=True)
class BaseChoice:
    checksum: str
    how: str  # why this commit, in words
    fetched: Pulled | None = None
    newest: str | None = None  # the ref's newest commit, when this plan fetched it
    note: str | None = None  # said in the plan (an info check of kind `base`)


def choose_base(repo: Repo, wanted: BaseWanted, origin: Path, deadline: float) -> BaseChoice:
    if wanted.container:
        return _image_base(repo, wanted, origin)
    remote = wanted.remote
    if remote is not None:
        require_remote(repo, remote, f"The baserefspec {wanted.refspec!r} in {origin}")
    deployed = wanted.deployed_base
    # A local ref is moved only by a deliberate local act (compose, pull-local): following it is not churn.
    follows_remote = remote is not None or wanted.commit or wanted.version
    if follows_remote and wanted.unchanged and not wanted.update and deployed and repo.has_commit(deployed):
        return BaseChoice(deployed, "the deployed base is kept (--update fetches the remote's newest)")
    if wanted.commit or wanted.version:
        return _pinned(repo, wanted, origin, deadline)
    if remote is None:
        return BaseChoice(_local_ref(repo, wanted, origin), "the ref's commit")
    fetched = pull(repo, remote, wanted.ref, deadline=deadline, subdirs=PLAN_PATHS)
    assert fetched.tip is not None
    return BaseChoice(fetched.tip, "the remote's newest", fetched, newest=fetched.tip)


def _image_base(repo: Repo, wanted: BaseWanted, origin: Path) -> BaseChoice:
    """A container image: the deployed base while the reference is unchanged (an image moves only by bootc or
    rpm-ostree pulling it), else the merge commit of its local import. Nothing here pulls an image."""
    image, deployed = wanted.refspec, wanted.deployed_base
    imported = find_import(repo, image)
    keep = wanted.unchanged and deployed is not None and repo.has_commit(deployed)
    note = _image_update_note(image, imported) if wanted.update else None
    if keep and deployed is not None and (not wanted.update or imported is None):
        if note is None and imported is not None and imported.commit != deployed:
            version = f", version {imported.version}" if imported.version else ""
            note = (
                f"The local import of {image} ({imported.ref}) has moved to {imported.commit[:12]}{version}, which "
                "bootc or rpm-ostree pulled; the deployed image is kept, and --update builds on the import."
            )
        return BaseChoice(deployed, "the deployed image is kept (--update builds on its local import)", note=note)
    if imported is None:
        raise ReconcileError(
            f"The container image {image!r} in {origin} is not imported in the sysroot's repo ({repo.path}): "
            f"it has no ref {import_ref(image)}. reconcile builds on a local import and does not pull images.",
            hint=f"Import it first with `rpm-ostree rebase {image}` (it keeps the layered requests) or "
            f"`bootc switch {image}` (only while nothing is layered), then plan again. Nothing was changed.",
        )
    how = f"the local import of the image ({imported.ref}, manifest {imported.manifest_digest})"
    return BaseChoice(imported.commit, how, note=note)


def _image_update_note(image: str, imported: ImportedImage | None) -> str:
    have = (
        f"the local import ({imported.commit[:12]}" + (f", version {imported.version})" if imported.version else ")")
        if imported is not None
        else "the deployed image"
    )
    return (
        f"--update does not pull the container image {image}: reconcile builds on {have}. A newer image comes from "
        "`rpm-ostree upgrade`, which pulls it and layers the same requests from the deployment's origin, or from "
        "`bootc upgrade` while nothing is layered (bootc refuses an origin with [packages]); plan again afterwards."
    )


def _local_ref(repo: Repo, wanted: BaseWanted, origin: Path) -> str:
    found = repo.resolve(wanted.refspec)
    if found is None:
        raise ReconcileError(
            f"The baserefspec {wanted.refspec!r} in {origin} is not a ref in the sysroot's repo ({repo.path}).",
            hint="Pull or create the base ref first (ostree pull / pull-local), or fix baserefspec "
            "(REMOTE:REF pulls it from the remote).",
        )
    return found


def _pinned(repo: Repo, wanted: BaseWanted, origin: Path, deadline: float) -> BaseChoice:
    """`[origin] commit` or `version`: a commit of the ref's history, as `rpm-ostree deploy` finds it."""
    remote = wanted.remote
    fetched = None
    if remote is not None:
        fetched = pull(repo, remote, wanted.ref, deadline=deadline, history=True)
    tip = fetched.tip if fetched and fetched.tip else _local_ref(repo, wanted, origin)
    history = _history(repo, tip)
    if wanted.commit:
        found = next((c for c, _v in history if c == wanted.commit), None)
        how, asked = "the pinned commit", f"the commit {wanted.commit}"
    else:
        found = next((c for c, v in history if v == wanted.version), None)
        how, asked = f"the pinned version {wanted.version}", f"a commit with version {wanted.version!r}"
    if found is None:
        versions = ", ".join(v or c[:12] for c, v in history[:HISTORY_SHOWN])
        more = f" and {len(history) - HISTORY_SHOWN} older" if len(history) > HISTORY_SHOWN else ""
        raise ReconcileError(
            f"{origin} pins {asked}, which the history of {wanted.refspec} does not have "
            f"(newest first: {versions}{more}).",
            hint="Pick a commit or version of that ref (ostree log), or remove the pin. Nothing was changed.",
        )
    if remote is not None and (not repo.has_commit(found) or not _has_rpmdb(repo, found)):
        part = pull(repo, remote, wanted.ref, deadline=deadline, commit=found, subdirs=PLAN_PATHS)
        fetched = part if fetched is None else _sum(fetched, part)
    return BaseChoice(found, how, fetched, newest=tip if remote is not None else None)


def _sum(a: Pulled, b: Pulled) -> Pulled:
    return Pulled(a.bytes + b.bytes, a.objects + b.objects, a.seconds + b.seconds, a.tip or b.tip)


def _has_rpmdb(repo: Repo, commit: str) -> bool:
    if not repo.is_partial(commit):
        return True
    try:  # a commit of a history pull has no root tree yet
        return any(repo.lookup_path(commit, d) for d in RPMDB_DIRS)
    except OstreeError:
        return False


def _history(repo: Repo, tip: str) -> list[tuple[str, str | None]]:
    """(commit, version) from the tip back, as far as the repo has the commits."""
    out: list[tuple[str, str | None]] = []
    commit: str | None = tip
    while commit and repo.has_commit(commit):
        version = repo.commit_metadata(commit).get("version")
        out.append((commit, version if isinstance(version, str) else None))
        commit = repo.commit_parent(commit)
    return out


def base_is_partial(repo: Repo, refspec: str, commit: str) -> bool:
    """A remote base that a plan fetched only as far as it reads it."""
    return ":" in refspec and not wanted_is_image(refspec) and (not repo.has_commit(commit) or repo.is_partial(commit))


def wanted_is_image(refspec: str) -> bool:
    return refspec.startswith("ostree-")


def pull_whole(repo: Repo, refspec: str, commit: str, deadline: float) -> Pulled | None:
    """Before building on a base the plan fetched in part: the rest of it (nothing when it is whole)."""
    if not base_is_partial(repo, refspec, commit):
        return None
    remote, ref = refspec.split(":", 1)
    return pull(repo, remote, ref, deadline=deadline, commit=commit)


NEWEST_FILE = "base-newest.json"  # in the stateroot's cache: what plans saw of remote refs, for `status`


def record_newest(cachedir: Path, refspec: str, checksum: str, version: str | None, timestamp: int) -> None:
    seen = read_newest(cachedir)
    seen[refspec] = {"checksum": checksum, "version": version, "timestamp": timestamp}
    cachedir.mkdir(parents=True, exist_ok=True)
    write_atomically(cachedir / NEWEST_FILE, json.dumps(seen, indent=1, sort_keys=True) + "\n")


def read_newest(cachedir: Path) -> dict[str, dict]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((cachedir / NEWEST_FILE).read_text())
        if isinstance(data, dict):
            return data
    return {}

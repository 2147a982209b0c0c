"""Offline bundles (`plan --bundle DIR`, `apply PLAN --bundle DIR`): every package a saved plan pins, as one
rpm-md repo per repo id (createrepo_c's repodata), the armored keys those repos trust, and a manifest,
`bundle.json`, that says which key belongs to which repo. Apply reads the packages from the bundle instead of
the host's repos, and still checks each against the plan's checksum and, where the plan's repo had gpgcheck,
rpm's signature check against the bundled keys (docs/bundles.md)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import shutil
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconcile import __version__
from reconcile.apply.packages import PackageFetcher
from reconcile.context import Context
from reconcile.deployed import current_deployment
from reconcile.errors import InvalidInputError, PackageError, ReconcileError, UsageError
from reconcile.files import private_tempdir, write_atomically
from reconcile.openpgp import KeyFormatError, PublicKey, read_keys
from reconcile.origin import LoadedOrigin
from reconcile.planner import model as m
from reconcile.process import run
from reconcile.repos.config import MainConfig, RepoConfig, RepoConfigs
from reconcile.repos.source import LOCAL_REPO, RepoSet

BUNDLE_FORMAT_VERSION = "1.0"
MANIFEST = "bundle.json"
_REFUSED = "Nothing was changed."


class BundleError(PackageError):
    """A bundle that cannot be used as it is: a missing or altered file, a missing key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BundledPlan(_Frozen):
    created: str = Field(description="`created` of the plan the bundle was made for.")
    fingerprint: str = Field(description="`prior.fingerprint` of that plan.")
    state_digest: str | None = Field(description="`target.state_digest` of that plan.")


class BundledRepo(_Frozen):
    id: str = Field(description="The repo id, as in the plan's `repos[]` and `target.packages[].repo`.")
    path: str = Field(description="Its rpm-md repo in the bundle, relative to the bundle directory.")
    gpgcheck: bool = Field(description="The repo had gpgcheck when the bundle was made.")
    keys: list[str] = Field(description="Fingerprints of the keys its gpgkey lists (files under `keys/`).")


class BundledKey(_Frozen):
    fingerprint: str
    file: str = Field(description="The armored key, relative to the bundle directory.")
    user_ids: list[str]


class BundledPackage(_Frozen):
    nevra: str
    repo: str
    checksum: str = Field(description="`<algorithm>:<hex>`, the plan's pin.")
    path: str = Field(description="The RPM, relative to the bundle directory.")


class Manifest(_Frozen):
    format_version: str = BUNDLE_FORMAT_VERSION
    tool_version: str
    created: str
    plan: BundledPlan
    repos: list[BundledRepo]
    keys: list[BundledKey]
    packages: list[BundledPackage]


# -- writing (plan --bundle) -----------------------------------------------------------------------------


def require_createrepo() -> str:
    """createrepo_c is checked before anything is downloaded."""
    found = shutil.which("createrepo_c")
    if found is None:
        raise ReconcileError(
            "createrepo_c is not installed; `plan --bundle` needs it to write the bundle's repodata.",
            hint="Install createrepo_c (dnf install createrepo_c, apt install createrepo-c). No bundle was written.",
        )
    return found


def write_bundle(ctx: Context, plan: m.Plan, loaded: LoadedOrigin, reposdir: Path | None, directory: Path) -> Manifest:
    """Fetch and verify every package the plan pins as apply would, then write them, their repos' keys and
    the manifest into `directory` (the manifest last: a bundle cut short has none)."""
    createrepo = require_createrepo()
    if not plan.applyable:
        raise ReconcileError("The plan has errors, so no bundle was written: " + " ".join(plan.errors))
    _current, dep = current_deployment(ctx.sysroot, ctx.repo, plan.prior.stateroot)
    fetcher = PackageFetcher(ctx, plan, dep, reposdir, loaded.desired.options.localpkg_gpgcheck, saved=False)
    pinned = [p for p in plan.target.to_install if p.repo != LOCAL_REPO]
    files = fetcher.fetch(pinned)  # every pin, even those the package cache holds: the device has no such cache
    repo_ids = sorted({r.id for r in plan.repos} | {p.repo for p in pinned})
    stage = private_tempdir(directory, ".bundle-")
    try:
        packages = [_copy_package(stage, p, files[p.nevra]) for p in pinned]
        repos, keys = _write_keys(stage, fetcher.repos, plan, repo_ids)
        for repo in repos:
            (stage / repo.path).mkdir(parents=True, exist_ok=True)
            run([createrepo, "--quiet", str(stage / repo.path)], f"createrepo_c for the bundle's repo [{repo.id}]")
        manifest = Manifest(
            tool_version=__version__,
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            plan=BundledPlan(
                created=plan.created, fingerprint=plan.prior.fingerprint, state_digest=plan.target.state_digest
            ),
            repos=repos,
            keys=keys,
            packages=packages,
        )
        (directory / MANIFEST).unlink(missing_ok=True)
        for part in ("repos", "keys"):
            if (directory / part).exists():
                (directory / part).rename(stage / f"old-{part}")
            (stage / part).rename(directory / part)
        write_atomically(directory / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _repo_dir(repo_id: str) -> str:
    return "repos/" + "".join(c if c.isalnum() or c in "-_." else "_" for c in repo_id)


def _relative(location: str, what: str) -> PurePosixPath:
    path = PurePosixPath(location)
    if not location or path.is_absolute() or ".." in path.parts:
        raise BundleError(f"{what} has the location {location!r}, which does not stay inside its repo.")
    return path


def _copy_package(stage: Path, p: m.PinnedPackage, source: Path) -> BundledPackage:
    path = f"{_repo_dir(p.repo)}/{_relative(p.location, f'{p.nevra} [{p.repo}]')}"
    (stage / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, stage / path)
    return BundledPackage(nevra=p.nevra, repo=p.repo, checksum=p.checksum, path=path)


def _write_keys(
    stage: Path, repos: RepoSet, plan: m.Plan, repo_ids: list[str]
) -> tuple[list[BundledRepo], list[BundledKey]]:
    gpgcheck = {r.id: r.gpgcheck for r in plan.repos}
    bundled: list[BundledRepo] = []
    keys: dict[str, PublicKey] = {}
    for repo_id in repo_ids:
        cfg = repos.by_id.get(repo_id)
        trusted = repos.keys.for_repo(cfg) if cfg is not None and cfg.gpgkeys else []
        keys.update((k.fingerprint, k) for k in trusted)
        checked = gpgcheck.get(repo_id, cfg.gpgcheck if cfg is not None else False)
        bundled.append(
            BundledRepo(id=repo_id, path=_repo_dir(repo_id), gpgcheck=checked, keys=[k.fingerprint for k in trusted])
        )
    (stage / "keys").mkdir()
    for key in keys.values():
        (stage / "keys" / f"{key.fingerprint}.asc").write_bytes(key.armored)
    listed = [
        BundledKey(fingerprint=k.fingerprint, file=f"keys/{k.fingerprint}.asc", user_ids=list(k.user_ids))
        for k in sorted(keys.values(), key=lambda k: k.fingerprint)
    ]
    return bundled, listed


# -- reading (apply --bundle) ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A bundle checked against the plan it is applied with: every pinned file there with its checksum, and
    every key a gpgcheck repo needs."""

    directory: Path
    manifest: Manifest
    configs: list[RepoConfig]

    def repo_set(self, ctx: Context, cache_root: Path, localpkg_gpgcheck: bool | None) -> RepoSet:
        """The bundle's repos in place of the host's: packages are copied into the download cache through
        librepo and verified there (checksum, and rpm's signature check with the bundled keys)."""
        mode = dataclasses.replace(ctx.fetch, cache_only=False)  # file:// only: no network either way
        configs = RepoConfigs(self.configs, MainConfig(), [])
        return RepoSet(configs, cache_root, ctx.reporter, mode, None, localpkg_gpgcheck=bool(localpkg_gpgcheck))


def open_bundle(directory: Path, plan: m.Plan) -> Bundle:
    manifest = read_manifest(directory)
    if (manifest.plan.created, manifest.plan.fingerprint) != (plan.created, plan.prior.fingerprint):
        raise BundleError(
            f"The bundle {directory} was made for another plan (made {manifest.plan.created}), not this one "
            f"(made {plan.created}).",
            hint="Apply the plan saved with the bundle (`plan -o DIR/plan.json --bundle DIR` writes both), or make "
            f"both again. {_REFUSED}",
        )
    by_pin = {(p.nevra, p.repo): p for p in manifest.packages}
    for p in plan.target.to_install:
        if p.repo != LOCAL_REPO:
            _check_package(directory, p, by_pin.get((p.nevra, p.repo)))
    repos = {r.id: r for r in manifest.repos}
    gpgcheck = {r.id: r.gpgcheck for r in plan.repos}  # the plan, not the manifest, says what must be signed
    needed = sorted({p.repo for p in plan.target.to_install if p.repo != LOCAL_REPO})
    configs = []
    for repo_id in needed:
        repo = repos.get(repo_id)
        if repo is None:
            raise BundleError(f"The bundle {directory} has no repo [{repo_id}], which the plan's packages come from.")
        checked = gpgcheck.get(repo_id, repo.gpgcheck)
        key_files = _check_keys(directory, manifest, repo, checked)
        configs.append(
            RepoConfig(
                id=repo_id,
                name=f"{repo_id} (bundle)",
                source=directory / MANIFEST,
                line=1,
                baseurls=((directory / repo.path).resolve().as_uri() + "/",),
                gpgcheck=checked,
                gpgkeys=tuple(f.as_uri() for f in key_files),
                retries=0,
            )
        )
    return Bundle(directory, manifest, configs)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{directory} is not a bundle: it has no {MANIFEST}.",
            hint="Make one with `reconcile plan -o DIR/plan.json --bundle DIR`. " + _REFUSED,
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInputError(f"{path} is not a readable bundle manifest ({e}). {_REFUSED}") from None
    version = str(data.get("format_version", "")) if isinstance(data, dict) else ""
    if version.split(".")[0] != BUNDLE_FORMAT_VERSION.split(".")[0]:
        raise InvalidInputError(f"{path} has bundle format {version or 'none'}; this reconcile reads 1.x. {_REFUSED}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        problems = [f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise InvalidInputError(
            f"{path} is not a valid bundle manifest ({len(problems)} problems).", problems
        ) from None


def _inside(directory: Path, relative: str, what: str) -> Path:
    return directory / _relative(relative, what)


def _check_package(directory: Path, p: m.PinnedPackage, entry: BundledPackage | None) -> None:
    if entry is None:
        raise BundleError(
            f"The bundle {directory} does not hold {p.nevra} [{p.repo}], which the plan pins. {_REFUSED}",
            hint="Make the bundle again with `reconcile plan --bundle` while the repos are reachable.",
        )
    path = _inside(directory, entry.path, f"{p.nevra} in {directory / MANIFEST}")
    algorithm, _, digest = p.checksum.partition(":")
    try:
        with open(path, "rb") as f:
            actual = hashlib.file_digest(f, algorithm).hexdigest()
    except FileNotFoundError:
        raise BundleError(
            f"The bundle {directory} lacks {path}, the file of {p.nevra} [{p.repo}]. {_REFUSED}"
        ) from None
    except (OSError, ValueError) as e:
        raise BundleError(f"The bundle file {path} of {p.nevra} cannot be read ({e}). {_REFUSED}") from None
    if actual != digest.lower():
        raise BundleError(
            f"The bundle file {path} is not the {p.nevra} [{p.repo}] the plan pins: its {algorithm} is {actual}, the "
            f"plan's {digest}. The bundle was damaged or tampered with; it was not used. {_REFUSED}"
        )


def _check_keys(directory: Path, manifest: Manifest, repo: BundledRepo, gpgcheck: bool) -> list[Path]:
    """The key files of a repo, each holding exactly the key its name says; a gpgcheck repo needs one at least."""
    if gpgcheck and not repo.keys:
        raise BundleError(
            f"The bundle {directory} has no key for the repo [{repo.id}], whose packages the plan requires to be "
            f"signed (gpgcheck). {_REFUSED}"
        )
    files = {k.fingerprint: k.file for k in manifest.keys}
    paths = []
    for fingerprint in repo.keys:
        path = _inside(directory, files.get(fingerprint, f"keys/{fingerprint}.asc"), f"the key {fingerprint}")
        try:
            found = [k.fingerprint for k in read_keys(path.read_bytes())]
        except FileNotFoundError:
            raise BundleError(
                f"The bundle {directory} lacks {path}, the key {fingerprint} of the repo [{repo.id}]. {_REFUSED}"
            ) from None
        except (OSError, KeyFormatError) as e:
            raise BundleError(
                f"The bundle's key file {path} of [{repo.id}] is not a usable key ({e}). {_REFUSED}"
            ) from None
        if found != [fingerprint]:
            raise BundleError(
                f"The bundle's key file {path} of [{repo.id}] holds {', '.join(found)}, not the key {fingerprint} "
                f"its manifest names. {_REFUSED}"
            )
        paths.append(path.resolve())
    return paths

"""Offline bundles: `plan --bundle DIR` while a signed HTTP repo is up; then, with the server stopped and no repo
file left, `apply DIR/plan.json --bundle DIR` layers exactly that plan, still checking every package against the
plan's checksum and its signature against the bundled keys. A damaged bundle (an altered, missing or re-signed
RPM, a missing or swapped key, another plan) is refused naming the file and changes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ComposedBase, Host, hosted
from servers import serve
from signing import SigningKey, damage_payload, sign_rpms
from support import RECONCILE, Result, RpmFactory, exampleos, reconcile, rpm_query
from test_bad_input import assert_failed_cleanly
from test_signatures import HELPER, NEEDS_HELPER

APP, HELPER_NEVRA = "signed-app-1.0-1.noarch", "signed-helper-1.0-1.noarch"


def make_bundle(host: Host, key: SigningKey, bundle: Path) -> Result:
    """A [signed] repo served over HTTP (its key too), planned with --bundle; then the server goes and so do the
    repo files."""
    served = host.root / "served"
    served.mkdir()
    for pkg in (NEEDS_HELPER, HELPER):
        shutil.copy2(host.rpms.build(pkg), served / host.rpms.build(pkg).name)
    sign_rpms(key, served.glob("*.rpm"))
    exampleos.make_repo([], served)
    shutil.copy2(key.public, served / "RPM-GPG-KEY-signed")
    host.write_origin(["signed-app"])
    with serve(served) as server:
        key_url = f"{server.url}/RPM-GPG-KEY-signed"
        exampleos.write_repo_file(host.reposdir, "signed", server.url, gpgcheck=1, gpgkey=key_url)
        result = host.run("plan", "-o", bundle / "plan.json", "--bundle", bundle, "--json")
    shutil.rmtree(host.reposdir)
    host.reposdir.mkdir()
    return result


def apply_bundle(host: Host, bundle: Path, plan: Path | None = None) -> Result:
    """As on the device: no repo files, nothing listening, a download cache that has never seen these packages."""
    fresh = host.root / "device-cache"
    shutil.rmtree(fresh, ignore_errors=True)
    plan_args = [plan] if plan is not None else []
    return reconcile(
        "apply", *plan_args, "--bundle", bundle, "--sysroot", host.sysroot, "--reposdir", host.reposdir,
        "--cachedir", fresh, "--yes",
    )  # fmt: skip


@dataclass(frozen=True)
class Offline:
    host: Host
    bundle: Path
    made: Result
    keys: dict[str, SigningKey]


@pytest.fixture(scope="module")
def offline(
    tmp_path_factory: pytest.TempPathFactory,
    base: ComposedBase,
    rpms: RpmFactory,
    example_rpms: list[Path],
    keys: dict[str, SigningKey],
) -> Iterator[Offline]:
    """One host and its bundle for the module: every refusal leaves the host as it was (each test checks), and
    the successful apply comes last."""
    with hosted(tmp_path_factory.mktemp("offline"), base, rpms, example_rpms) as host:
        bundle = host.root / "bundle"
        yield Offline(host, bundle, make_bundle(host, keys["trusted"], bundle), keys)


def test_plan_bundle_writes_the_packages_keys_and_manifest(offline: Offline) -> None:
    made, bundle = offline.made, offline.bundle
    assert made.code == 0, made.stderr
    assert f"reconcile apply {bundle / 'plan.json'} --bundle {bundle}" in made.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    fpr = offline.keys["trusted"].fingerprint
    assert manifest["repos"] == [{"id": "signed", "path": "repos/signed", "gpgcheck": True, "keys": [fpr]}]
    assert [k["fingerprint"] for k in manifest["keys"]] == [fpr]
    assert (bundle / f"keys/{fpr}.asc").read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert sorted(p["nevra"] for p in manifest["packages"]) == [APP, HELPER_NEVRA]
    assert (bundle / "repos/signed/repodata/repomd.xml").is_file(), "each repo of the bundle is an rpm-md repo"
    assert json.loads((bundle / "plan.json").read_text()) == made.json(), "the plan saved is the plan printed"


RPM = f"repos/signed/{APP}.rpm"


def _tampered(o: Offline, b: Path) -> None:
    damage_payload(b / RPM)


def _missing_rpm(o: Offline, b: Path) -> None:
    (b / RPM).unlink()


def _missing_key(o: Offline, b: Path) -> None:
    (b / f"keys/{o.keys['trusted'].fingerprint}.asc").unlink()


def _no_key_listed(o: Offline, b: Path) -> None:
    _edit(b / "bundle.json", lambda m: m["repos"][0].update(keys=[]))


def _resigned(o: Offline, b: Path) -> None:
    """Signed by another key, and the plan edited to pin exactly that file: only rpm's check can refuse it."""
    (b / RPM).unlink()
    shutil.copy2(o.host.rpms.build(NEEDS_HELPER), b / RPM)
    sign_rpms(o.keys["other"], [b / RPM])
    digest = hashlib.sha256((b / RPM).read_bytes()).hexdigest()
    pins = lambda p: [x for x in p["target"]["packages"] if x["nevra"] == APP]  # noqa: E731
    _edit(b / "plan.json", lambda p: pins(p)[0].update(checksum=f"sha256:{digest}"))


def _swapped_key(o: Offline, b: Path) -> None:
    """The other key in place of the repo's, the manifest saying so: the packages' signatures do not verify."""
    other = o.keys["other"]
    (b / f"keys/{o.keys['trusted'].fingerprint}.asc").unlink()
    shutil.copy2(other.public, b / f"keys/{other.fingerprint}.asc")
    _edit(b / "bundle.json", lambda m: m["repos"][0].update(keys=[other.fingerprint]))
    _edit(b / "bundle.json", lambda m: m.update(keys=[_key_entry(other)]))


def _unchecked_in_manifest(o: Offline, b: Path) -> None:
    """As `_resigned`, with the manifest claiming the repo had no gpgcheck: the plan says it had."""
    _resigned(o, b)
    _edit(b / "bundle.json", lambda m: m["repos"][0].update(gpgcheck=False))


def _escaping_path(o: Offline, b: Path) -> None:
    _edit(b / "bundle.json", lambda m: [x.update(path=f"../{x['path']}") for x in m["packages"]])


def _another_plan(o: Offline, b: Path) -> None:
    _edit(b / "plan.json", lambda p: p.update(created="2026-01-01T00:00:00+00:00"))


# How a bundle can be wrong, and what the refusal must name ({b}: the damaged bundle, {trusted}/{other}: key ids).
DAMAGES: dict[str, tuple[Callable[[Offline, Path], None], list[str]]] = {
    "tampered": (_tampered, [f"{{b}}/{RPM}", APP, "tampered with"]),
    "missing-rpm": (_missing_rpm, [f"{{b}}/{RPM}", APP, "lacks"]),
    "missing-key": (_missing_key, ["{b}/keys/{trusted_fpr}.asc", "[signed]", "lacks"]),
    "no-key-listed": (_no_key_listed, ["{b}", "no key for the repo [signed]"]),
    "resigned": (_resigned, [APP, "{b}/bundle.json", "not one of the repo's keys", "key id {other}"]),
    "swapped-key": (_swapped_key, [APP, "{b}/bundle.json", "not one of the repo's keys", "key id {trusted}"]),
    "unchecked-in-manifest": (_unchecked_in_manifest, [APP, "not one of the repo's keys", "key id {other}"]),
    "escaping-path": (_escaping_path, ["{b}/bundle.json", "does not stay inside"]),
    "another-plan": (_another_plan, ["{b}", "was made for another plan"]),
}


@pytest.mark.parametrize("case", DAMAGES)
def test_a_damaged_bundle_is_refused(offline: Offline, case: str) -> None:
    host, (damage, needles) = offline.host, DAMAGES[case]
    copy = host.root / f"bundle-{case}"
    shutil.copytree(offline.bundle, copy)
    damage(offline, copy)
    before = host.state()
    result = apply_bundle(host, copy)
    names = {
        "b": str(copy),
        "trusted": offline.keys["trusted"].key_id,
        "other": offline.keys["other"].key_id,
        "trusted_fpr": offline.keys["trusted"].fingerprint,
    }
    assert_failed_cleanly(host, before, result, 1, *[n.format(**names) for n in needles])


def test_the_bundle_applies_offline_once(offline: Offline) -> None:
    host, bundle = offline.host, offline.bundle
    applied = apply_bundle(host, bundle)
    assert applied.code == 0, applied.stderr
    dep = host.default()
    assert dep["requested-packages"] == ["signed-app"]
    assert sorted(dep["reconcile"]["layered_packages"]) == [APP, HELPER_NEVRA]
    tree = host.deployment_path(dep)
    assert rpm_query(tree, "-q", "signed-app", "signed-helper").split() == [APP, HELPER_NEVRA]
    after = host.state()
    again = apply_bundle(host, bundle)
    assert_failed_cleanly(host, after, again, 3, "The plan is stale", "the deployment moved")


def _key_entry(key: SigningKey) -> dict:
    return {"fingerprint": key.fingerprint, "file": f"keys/{key.fingerprint}.asc", "user_ids": []}


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_bundle_of_a_repo_without_gpgcheck_needs_no_key(host: Host, tmp_path: Path) -> None:
    host.publish([])
    host.write_origin(["hello"])
    bundle = tmp_path / "bundle"
    made = host.run("plan", "--bundle", bundle)
    assert made.code == 0, made.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["repos"] == [{"id": "test", "path": "repos/test", "gpgcheck": False, "keys": []}]
    shutil.rmtree(host.rpm_repo)
    (host.reposdir / "test.repo").unlink()
    (tmp_path / "empty").mkdir()
    missing_plan = apply_bundle(host, tmp_path / "empty")
    assert missing_plan.code == 65 and f"{tmp_path / 'empty' / 'plan.json'} does not exist" in missing_plan.stderr
    not_a_bundle = apply_bundle(host, tmp_path / "empty", bundle / "plan.json")
    assert not_a_bundle.code == 64, not_a_bundle.stderr
    assert f"{tmp_path / 'empty'} is not a bundle: it has no bundle.json" in not_a_bundle.stderr
    staged = reconcile("apply", "--bundle", bundle, "--sysroot", host.sysroot, "--download-only")
    assert staged.code == 0 and "Downloaded and verified 2 package(s)" in staged.stdout, staged.stderr
    applied = apply_bundle(host, bundle)
    assert applied.code == 0, applied.stderr
    assert sorted(host.default()["reconcile"]["layered_packages"]) == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]


def test_plan_bundle_without_createrepo_c_is_a_clear_error(host: Host, tmp_path: Path) -> None:
    host.write_origin(["hello"])
    argv = [RECONCILE, "plan", "--sysroot", host.sysroot, "--origin", host.origin, "--bundle", tmp_path / "b"]
    env = {**exampleos.sysroot_env(), "PATH": str(tmp_path)}  # nothing on PATH, createrepo_c included
    proc = subprocess.run(list(map(str, argv)), capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "createrepo_c is not installed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()


def test_the_manifest_format_is_documented() -> None:
    from reconcile.apply import bundle as b

    doc = (Path(__file__).resolve().parent.parent / "docs" / "bundles.md").read_text()
    models = [b.Manifest, b.BundledPlan, b.BundledRepo, b.BundledKey, b.BundledPackage]
    missing = [
        f"{m.__name__}.{name}"
        for m in models
        for name in m.model_fields
        if f"`{name}`" not in doc and f"`{name}[]`" not in doc
    ]
    assert not missing, f"docs/bundles.md does not document {missing}"
    assert f"(format {b.BUNDLE_FORMAT_VERSION})" in doc

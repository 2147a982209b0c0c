"""Offline bundles: `plan --bundle DIR` while a signed HTTP repo is up; then, with the server stopped and no repo
file left, `apply DIR/plan.json --bundle DIR` layers exactly that plan, still checking every package against the
plan's checksum and its signature against the bundled keys. A damaged bundle (an altered, missing or re-signed
RPM, a missing or swapped key, another plan) is refused naming the file and changes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import Host
from servers import serve
from signing import SigningKey, damage_payload, sign_rpms
from support import RECONCILE, Result, exampleos, reconcile, rpm_query
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


def test_a_bundle_applies_offline_and_checks_every_package(host: Host, keys: dict[str, SigningKey]) -> None:
    bundle = host.root / "bundle"
    made = make_bundle(host, keys["trusted"], bundle)
    assert made.code == 0, made.stderr
    assert f"reconcile apply {bundle / 'plan.json'} --bundle {bundle}" in made.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    fpr = keys["trusted"].fingerprint
    assert manifest["repos"] == [{"id": "signed", "path": "repos/signed", "gpgcheck": True, "keys": [fpr]}]
    assert [k["fingerprint"] for k in manifest["keys"]] == [fpr]
    assert (bundle / f"keys/{fpr}.asc").read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert sorted(p["nevra"] for p in manifest["packages"]) == [APP, HELPER_NEVRA]
    assert (bundle / "repos/signed/repodata/repomd.xml").is_file(), "each repo of the bundle is an rpm-md repo"
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan == made.json(), "the plan saved in the bundle is the plan printed"

    before = host.state()
    for damage, needles in _damages(host, keys, bundle).items():
        copy = host.root / f"bundle-{damage.__name__}"
        shutil.copytree(bundle, copy)
        damage(copy)
        result = apply_bundle(host, copy)
        assert_failed_cleanly(host, before, result, 1, *[n.replace("{b}", str(copy)) for n in needles])

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


def _damages(host: Host, keys: dict[str, SigningKey], bundle: Path) -> dict[Callable[[Path], None], list[str]]:
    """Each way a bundle can be wrong, and what the refusal must name ({b}: the damaged bundle)."""
    fpr, other = keys["trusted"].fingerprint, keys["other"]
    rpm = f"repos/signed/{NEEDS_HELPER.name}-1.0-1.noarch.rpm"

    def tampered(b: Path) -> None:
        damage_payload(b / rpm)

    def missing_rpm(b: Path) -> None:
        (b / rpm).unlink()

    def missing_key(b: Path) -> None:
        (b / f"keys/{fpr}.asc").unlink()

    def no_key_listed(b: Path) -> None:
        _edit(b / "bundle.json", lambda m: m["repos"][0].update(keys=[]))

    def resigned(b: Path) -> None:
        """Signed by another key, and the plan edited to pin exactly that file: only rpm's check can refuse it."""
        (b / rpm).unlink()
        shutil.copy2(host.rpms.build(NEEDS_HELPER), b / rpm)
        sign_rpms(other, [b / rpm])
        digest = hashlib.sha256((b / rpm).read_bytes()).hexdigest()
        pins = lambda p: [x for x in p["target"]["packages"] if x["nevra"] == APP]  # noqa: E731
        _edit(b / "plan.json", lambda p: pins(p)[0].update(checksum=f"sha256:{digest}"))

    def swapped_key(b: Path) -> None:
        """The other key in place of the repo's, the manifest saying so: the packages' signatures do not verify."""
        (b / f"keys/{fpr}.asc").unlink()
        shutil.copy2(other.public, b / f"keys/{other.fingerprint}.asc")
        _edit(b / "bundle.json", lambda m: m["repos"][0].update(keys=[other.fingerprint]))
        _edit(b / "bundle.json", lambda m: m.update(keys=[_key_entry(other)]))

    def another_plan(b: Path) -> None:
        _edit(b / "plan.json", lambda p: p.update(created="2026-01-01T00:00:00+00:00"))

    return {
        tampered: [f"{{b}}/{rpm}", APP, "tampered with"],
        missing_rpm: [f"{{b}}/{rpm}", APP, "lacks"],
        missing_key: [f"{{b}}/keys/{fpr}.asc", "[signed]", "lacks"],
        no_key_listed: ["{b}", "no key for the repo [signed]"],
        resigned: [APP, "{b}/bundle.json", "not one of the repo's keys", f"key id {other.key_id}"],
        swapped_key: [APP, "{b}/bundle.json", "not one of the repo's keys", keys["trusted"].key_id],
        another_plan: ["{b}", "was made for another plan"],
    }


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

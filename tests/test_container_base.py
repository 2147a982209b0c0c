"""Container-image bases (Fedora CoreOS, bootc, RHEL image mode): the test imports an image the way ostree-rs-ext
leaves one in the repo (the ostree layer under `ostree/container/blob/<digest>`, a derived layer beside it, and a
merge commit of both under `ostree/container/image/<escaped image>` carrying the manifest and config), deploys the
merge commit with bootc's origin (`container-image-reference=...`), and layers onto it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Host, base_checksum
from support import Result, exampleos, ostree, reconcile, rpm_query
from test_bad_input import assert_failed_cleanly

from reconcile.container import blob_ref, escape_for_ref, import_ref

UNVERIFIED = "ostree-unverified-registry:quay.io/x/y:41"
SIGNED = "ostree-image-signed:docker://quay.io/x/y:41"
IMAGE_REF = "ostree/container/image/docker_3A__2F__2F_quay_2E_io/x/y_3A_41"  # ostree-rs-ext's name for both
DERIVED_FILE = "usr/share/derived/motd"  # what the image's own Containerfile added on top of the ostree layer


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Imported:
    commit: str  # the merge commit the deployment is made from
    manifest_digest: str


def import_image(host: Host, reference: str, version: str, timestamp: int, derived: bytes = b"") -> Imported:
    """What `bootc switch` / `rpm-ostree rebase` leave in the sysroot's repo for an image built FROM the example
    base: the ostree layer's commit (the base itself) and, with `derived`, one derived layer, each under its blob
    ref, then the merge commit (no parent) with ostree-rs-ext's metadata keys under the image's ref."""
    repo = f"--repo={host.sysroot / 'ostree' / 'repo'}"
    base = host.base.commit
    ostree_layer = _digest(b"ostree layer " + base.encode())
    if blob_ref(ostree_layer) not in ostree(repo, "refs").split():  # a newer image may share the layer
        ostree(repo, "refs", f"--create={blob_ref(ostree_layer)}", base)
    layers = [ostree_layer]
    trees = [f"--tree=ref={base}"]
    if derived:
        layer_dir = host.root / f"layer-{version}"
        (layer_dir / DERIVED_FILE).parent.mkdir(parents=True)
        (layer_dir / DERIVED_FILE).write_bytes(derived)
        derived_layer = _digest(derived)
        owner = ["--owner-uid=0", "--owner-gid=0", "--no-xattrs"]
        ostree(repo, "commit", f"--branch={blob_ref(derived_layer)}", f"--tree=dir={layer_dir}", *owner)
        layers.append(derived_layer)
        trees.append(f"--tree=ref={blob_ref(derived_layer)}")
    diff_ids = [_digest(b"diff " + d.encode()) for d in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Labels": {
                "containers.bootc": "1",
                "ostree.bootable": "true",
                "ostree.commit": base,
                "ostree.final-diffid": diff_ids[0],
                "org.opencontainers.image.version": version,
            }
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "rpm-ostree compose"}] + ([{"created_by": "RUN echo"}] if derived else []),
    }
    config_text = json.dumps(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config_text.encode()),
            "size": len(config_text),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": 1000} for d in layers
        ],
    }
    manifest_text = json.dumps(manifest)
    digest = _digest(manifest_text.encode())
    merge = ostree(
        repo,
        "commit",
        f"--branch={import_ref(reference)}",
        "--parent=none",
        *trees,
        "--owner-uid=0",
        "--owner-gid=0",
        f"--timestamp=@{timestamp}",
        f"--add-metadata-string=ostree.manifest-digest={digest}",
        f"--add-metadata-string=ostree.manifest={manifest_text}",
        f"--add-metadata-string=ostree.container.image-config={config_text}",
        "--add-metadata-string=ostree.importer.version=0.15.3",
        "--add-metadata=ostree.tar-filtered=@a{sa{su}} {}",
    ).strip()
    return Imported(merge, digest)


def deploy_image(host: Host, reference: str, imported: Imported) -> None:
    """bootc's deployment of an image: the merge commit, with an origin naming only the image reference."""
    origin = host.root / "bootc.origin"
    origin.write_text(f"[origin]\ncontainer-image-reference={reference}\n")
    sysroot = f"--sysroot={host.sysroot}"
    ostree("admin", sysroot, "deploy", f"--os={exampleos.OSNAME}", f"--origin-file={origin}", imported.commit)


def image_host(host: Host, reference: str) -> Imported:
    imported = import_image(host, reference, "41.20260101.0", 1767225600, derived=b"built FROM exampleos\n")
    deploy_image(host, reference, imported)
    return imported


def write_image_origin(host: Host, reference: str, requested: list[str], extra: str = "") -> None:
    items = ", ".join(f'"{r}"' for r in requested)
    host.origin.write_text(f'[origin]\ncontainer-image = "{reference}"\n{extra}\n[packages]\nrequested = [{items}]\n')


def test_the_ref_escaping_is_ostree_rs_ext_s() -> None:
    # The examples of ostree-rs-ext's refescape.rs, and the refs bootc writes for both forms of one image.
    assert escape_for_ref("registry:quay.io/coreos/fedora:latest") == "registry_3A_quay_2E_io/coreos/fedora_3A_latest"
    assert escape_for_ref("localhost:5000/foo:latest") == "localhost_3A_5000/foo_3A_latest"
    assert escape_for_ref("/foo/bar/") == "_2F_foo/bar_2F_"
    assert escape_for_ref("a_b//c") == "a__b/_2F_c"
    assert import_ref(UNVERIFIED) == import_ref(SIGNED) == IMAGE_REF
    assert import_ref("ostree-remote-registry:fedora:quay.io/x/y:41") == IMAGE_REF
    assert import_ref("ostree-unverified-image:oci:/var/lib/img") == "ostree/container/image/oci_3A__2F_var/lib/img"
    assert blob_ref("sha256:ab12") == "ostree/container/blob/sha256_3A_ab12"


@pytest.mark.parametrize("reference", [UNVERIFIED, SIGNED])
def test_status_shows_an_image_deployment(host: Host, reference: str) -> None:
    imported = image_host(host, reference)
    dep = host.default()
    assert dep["container-image-reference"] == reference and "origin" not in dep
    assert dep["container-image-reference-digest"] == imported.manifest_digest
    assert dep["checksum"] == base_checksum(dep) == imported.commit and "base-checksum" not in dep
    assert dep["version"] == "41.20260101.0"  # the image config's version label: a merge commit has no `version`
    text = host.run("status")
    assert text.code == 0, text.stderr
    assert f"* {exampleos.OSNAME}:{reference}  (default)" in text.stdout


@pytest.mark.parametrize("reference", [UNVERIFIED, SIGNED])
def test_layering_onto_an_image_keeps_its_reference(host: Host, reference: str) -> None:
    imported = image_host(host, reference)
    host.publish([])
    write_image_origin(host, reference, ["hello"])
    plan = host.run("plan", "--json")
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert doc["base"]["after"] == doc["base"]["before"] == imported.commit
    assert doc["target"]["base_refspec"] == reference and doc["prior"]["refspec"] == reference
    assert [e["nevra"] for e in doc["resolution"]["added"]] == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]
    host.apply_ok()
    dep = host.default()
    assert dep["base-checksum"] == imported.commit and dep["container-image-reference"] == reference
    assert dep["reconcile"]["layered_packages"] == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]
    assert dep["version"] == "41.20260101.0"
    tree = host.deployment_path(dep)
    assert (tree / DERIVED_FILE).read_bytes() == b"built FROM exampleos\n"  # the derived layer is in the base
    assert "hello-1.2-1.noarch" in rpm_query(tree, "-qa")
    # As rpm-ostree writes a layered image deployment: the reference unchanged, no refspec, the requests.
    written = host.deployed_origin(dep).read_text()
    assert f"container-image-reference={reference}\n" in written
    assert "refspec" not in written
    assert "[packages]\nrequested=hello;\n" in written
    # Read back, the deployment is the same declaration: the TOML and the deployment's own origin plan nothing.
    again = host.run("plan", "--detailed-exitcode")
    assert again.code == 0 and "No changes" in again.stdout, again.stdout + again.stderr
    opts = ["--sysroot", host.sysroot, "--reposdir", host.reposdir, "--detailed-exitcode", "--json"]
    from_keyfile = plan_with_copy(host, host.deployed_origin(dep), *opts)
    assert from_keyfile.code == 0, from_keyfile.stdout + from_keyfile.stderr
    assert from_keyfile.json()["origin"]["desired"]["container_image"] == reference


def plan_with_copy(host: Host, origin: Path, *opts: str | Path) -> Result:
    copy = host.root / "deployed.origin"  # a copy: the deployment's own file is never handed out for writing
    copy.write_bytes(origin.read_bytes())
    return reconcile("plan", "--origin", copy, *opts)


def test_update_plans_against_the_local_import_and_says_where_updates_come_from(host: Host) -> None:
    imported = image_host(host, UNVERIFIED)
    host.publish([])
    write_image_origin(host, UNVERIFIED, ["hello"])
    host.apply_ok()
    layered = host.default()
    update = host.run("plan", "--update", "--json")
    assert update.code == 0, update.stderr
    doc = update.json()
    assert doc["base"]["after"] == imported.commit and not doc["has_changes"]
    notes = [c for c in doc["checks"] if c["kind"] == "base"]
    assert len(notes) == 1 and notes[0]["severity"] == "info", doc["checks"]
    for words in ("rpm-ostree upgrade", "bootc upgrade", "does not pull the container image"):
        assert words in notes[0]["message"]
    text = host.run("plan", "--update")
    assert text.code == 0 and "rpm-ostree upgrade" in text.stdout, text.stdout + text.stderr
    applied = host.run("apply", "--update")
    assert applied.code == 0 and "Nothing to do" in applied.stdout and "bootc upgrade" in applied.stdout, applied
    assert host.default()["checksum"] == layered["checksum"]
    # rpm-ostree or bootc imported a newer image (e.g. `upgrade --download-only`): the deployed base is kept until
    # --update, which builds on the new import.
    newer = import_image(host, UNVERIFIED, "41.20260201.0", 1769904000, derived=b"built FROM exampleos, again\n")
    kept = host.run("plan", "--json", "--detailed-exitcode")
    assert kept.code == 0 and kept.json()["base"]["after"] == imported.commit, kept.stdout + kept.stderr
    said = [c["message"] for c in kept.json()["checks"] if c["kind"] == "base"]
    assert len(said) == 1 and f"has moved to {newer.commit[:12]}, version 41.20260201.0" in said[0], said
    moved = host.run("plan", "--update", "--json")
    assert moved.code == 0, moved.stderr
    assert moved.json()["base"]["after"] == newer.commit and moved.json()["base"]["after_version"] == "41.20260201.0"
    host.apply_ok("--update")
    dep = host.default()
    assert (
        base_checksum(dep) == newer.commit
        and dep["reconcile"]["layered_packages"] == layered["reconcile"]["layered_packages"]
    )
    assert (host.deployment_path(dep) / DERIVED_FILE).read_bytes() == b"built FROM exampleos, again\n"
    assert f"container-image-reference={UNVERIFIED}\n" in host.deployed_origin(dep).read_text()


def test_rebase_from_an_ostree_ref_to_an_imported_image(host: Host) -> None:
    imported = import_image(host, SIGNED, "41.20260101.0", 1767225600)
    host.publish([])
    write_image_origin(host, SIGNED, ["hello"])
    plan = host.run("plan")
    assert plan.code == 0 and "rebase: the base changed" in plan.stdout, plan.stdout + plan.stderr
    host.apply_ok()
    dep = host.default()
    assert dep["base-checksum"] == imported.commit and dep["container-image-reference"] == SIGNED
    written = host.deployed_origin(dep).read_text()
    assert f"container-image-reference={SIGNED}\n" in written and "refspec" not in written


def test_an_image_that_is_not_imported_is_a_clear_error(host: Host) -> None:
    image_host(host, UNVERIFIED)
    host.publish([])
    other = "ostree-image-signed:docker://quay.io/x/other:41"
    write_image_origin(host, other, ["hello"])
    before = host.state()
    for command in ("plan", "apply"):
        result = host.run(command)
        assert_failed_cleanly(
            host,
            before,
            result,
            1,
            "ostree/container/image/docker_3A__2F__2F_quay_2E_io/x/other_3A_41",
            f"bootc switch {other}",
            f"rpm-ostree rebase {other}",
        )


@pytest.mark.parametrize(
    ("pin", "line"), [(f'commit = "{"a" * 64}"', "origin.commit"), ('version = "41.1"', "origin.version")]
)
def test_an_image_base_with_a_pin_is_refused_with_its_line(host: Host, pin: str, line: str) -> None:
    image_host(host, UNVERIFIED)
    host.publish([])
    write_image_origin(host, UNVERIFIED, ["hello"], extra=pin)
    before = host.state()
    for command in ("plan", "apply"):
        result = host.run(command)
        assert_failed_cleanly(host, before, result, 65, f"{host.origin}:3 {line}: a container-image base cannot")


def test_a_keyfile_naming_both_a_refspec_and_an_image_is_refused(host: Host) -> None:
    origin = host.root / "both.origin"
    origin.write_text(f"[origin]\nbaserefspec={exampleos.BASE_REF}\ncontainer-image-reference={UNVERIFIED}\n")
    before = host.state()
    result = reconcile("plan", "--sysroot", host.sysroot, "--origin", origin, "--reposdir", host.reposdir)
    assert_failed_cleanly(host, before, result, 65, "names its base twice", "container-image-reference")

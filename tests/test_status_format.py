"""`status --json` in the shape of `rpm-ostree status --json`: its schema, and the fields that Zincati and
rpm-ostree's own Rust client deserialize, checked on layered and plain deployments of a real sysroot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from conftest import ComposedBase, Host, hosted
from support import RpmFactory, exampleos, ostree

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "status.schema.json").read_text())
ARCH = os.uname().machine
VERSIONED = "example/versioned"

# (key, required, JSON type) as each consumer deserializes a deployment; a required key missing, or any key
# present with another type, fails its parse. Optional<T> fields accept absence, not null where T is String.
ZINCATI = (  # coreos/zincati src/rpm_ostree/cli_status.rs, `struct Deployment`
    ("booted", True, bool),
    ("checksum", True, str),
    ("version", True, str),
    ("base-commit-meta", True, dict),
    ("staged", False, bool),  # #[serde(default)]: false when absent
    ("base-checksum", False, str),
    ("container-image-reference", False, str),
    ("container-image-reference-digest", False, str),
)
ZINCATI_BASE_COMMIT_META = (  # the same file, `struct BaseCommitMeta`: both Option<String>
    ("ostree.manifest", False, str),
    ("ostree.container.image-config", False, str),
)
RPMOSTREE_CLIENT = (  # coreos/rpm-ostree rust/rpmostree-client/src/lib.rs, `struct Deployment`
    ("osname", True, str),
    ("pinned", True, bool),
    ("checksum", True, str),
    ("base-commit-meta", True, dict),
    ("booted", True, bool),
    ("serial", True, int),  # u32
    ("unlocked", False, str),
    ("base-checksum", False, str),
    ("staged", False, bool),
    ("origin", False, str),
    ("container-image-reference", False, str),
    ("version", False, str),
)


def _parse_errors(obj: dict, fields: tuple[tuple[str, bool, type], ...]) -> list[str]:
    errors = []
    for key, required, kind in fields:
        if key not in obj:
            errors += [f"{key} is missing"] if required else []
        elif type(obj[key]) is not kind:  # bool is an int in Python; serde tells them apart
            errors.append(f"{key} is {obj[key]!r}, not {kind.__name__}")
    return errors


def _check_consumers(dep: dict, zincati: bool = True) -> None:
    errors = _parse_errors(dep, RPMOSTREE_CLIENT)
    assert 0 <= dep["serial"] < 2**32
    if zincati:
        errors += _parse_errors(dep, ZINCATI) + _parse_errors(dep["base-commit-meta"], ZINCATI_BASE_COMMIT_META)
    assert not errors, errors


@dataclass
class Snapshots:
    host: Host
    layered: dict  # status right after layering on a base with a version: [layered, plain unversioned base]
    plain: dict  # after deploying the versioned base alone: [plain versioned base, layered]
    pending: dict  # after the base's ref moved on to a commit not deployed


@pytest.fixture(scope="module")
def snapshots(
    tmp_path_factory: pytest.TempPathFactory, base: ComposedBase, rpms: RpmFactory, example_rpms: list[Path]
) -> Iterator[Snapshots]:
    with hosted(tmp_path_factory.mktemp("status"), base, rpms, example_rpms) as host:
        repo = f"--repo={host.sysroot / 'ostree' / 'repo'}"
        ostree(
            repo,
            "commit",
            f"--branch={VERSIONED}",
            f"--tree=ref={exampleos.BASE_REF}",
            "--add-metadata-string=version=41.1",
        )
        host.publish([])
        # hello is layered; example-shell is in the base (an inactive request); example-libs is removed.
        removal = '[overrides]\nremove = ["example-libs"]\n'
        host.write_origin(["hello", "example-shell"], base=VERSIONED, extra=removal)
        host.apply_ok()
        layered = host.status()
        host.write_origin([], base=VERSIONED)
        host.apply_ok()
        plain = host.status()
        ostree(repo, "commit", f"--branch={VERSIONED}", f"--tree=ref={VERSIONED}", "--add-metadata-string=version=41.2")
        yield Snapshots(host, layered, plain, host.status())


def test_the_document_validates_against_its_schema(snapshots: Snapshots) -> None:
    for doc in (snapshots.layered, snapshots.plain, snapshots.pending):
        jsonschema.validate(doc, SCHEMA)
        assert doc["format_version"] == "2.0"
        assert doc["transaction"] is None and doc["cached-update"] is None and doc["update-driver"] is None
        assert doc["reconcile"] == {"sysroot": str(snapshots.host.sysroot), "warnings": []}
    wrong = json.loads(json.dumps(snapshots.layered))
    wrong["deployments"][0]["stateroot"] = "example"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, SCHEMA)


def test_zincati_and_the_rpm_ostree_client_can_parse_every_deployment(snapshots: Snapshots) -> None:
    layered, unversioned = snapshots.layered["deployments"]
    plain = snapshots.plain["deployments"][0]
    assert "base-checksum" in layered and "base-checksum" not in plain
    _check_consumers(layered)
    _check_consumers(plain)
    _check_consumers(unversioned, zincati=False)  # Zincati needs a version, as it does from rpm-ostree


def test_version_is_left_out_not_null_when_the_commit_has_none(snapshots: Snapshots) -> None:
    layered, unversioned = snapshots.layered["deployments"]
    assert "version" not in unversioned and "base-version" not in unversioned
    assert layered["version"] == "41.1" and layered["base-version"] == "41.1"
    assert snapshots.plain["deployments"][0]["version"] == "41.1"
    text = snapshots.host.run("status").stdout
    assert "None" not in text and "Version:   41.1 (" in text, text


def test_packages_are_the_active_requests(snapshots: Snapshots) -> None:
    dep = snapshots.layered["deployments"][0]
    assert dep["requested-packages"] == ["example-shell", "hello"]
    assert dep["packages"] == ["hello"], "example-shell is in the base: requested, not active"
    assert dep["reconcile"]["inactive_requests"] == ["example-shell"]
    assert dep["reconcile"]["layered_packages"] == ["hello-1.2-1.noarch", "hello-data-1.2-1.noarch"]
    plain = snapshots.plain["deployments"][0]
    assert plain["requested-packages"] == plain["packages"] == []


def test_base_checksum_and_removals_only_on_a_layered_deployment(snapshots: Snapshots) -> None:
    layered, first = snapshots.layered["deployments"]
    plain = snapshots.plain["deployments"][0]
    versioned_base = plain["checksum"]
    assert layered["base-checksum"] == versioned_base != layered["checksum"]
    assert isinstance(layered["base-timestamp"], int) and layered["base-timestamp"] > 0
    assert layered["layered-commit-meta"]["version"] == "41.1"
    assert not any(k.endswith("pkglist") for k in layered["layered-commit-meta"]), "promoted keys are filtered"
    assert layered["base-commit-meta"]["version"] == "41.1" and plain["base-commit-meta"]["version"] == "41.1"
    for dep in (first, plain):
        assert not {"base-checksum", "base-version", "base-timestamp", "layered-commit-meta"} & set(dep)
        assert dep["base-removals"] == [] and dep["reconcile"]["built_by"] is None
    assert layered["reconcile"]["built_by"] == "reconcile"
    assert layered["requested-base-removals"] == ["example-libs"]
    assert layered["base-removals"] == [[f"example-libs-2.1-1.{ARCH}", "example-libs", 0, "2.1", "1", ARCH]]
    assert layered["base-local-replacements"] == [] and layered["base-remote-replacements"] == {}
    assert "requested-base-remote-replacements" not in layered, "only when the origin has overrides.replace"
    assert layered["regenerate-initramfs"] is False and layered["unlocked"] == "none"
    assert layered["origin"] == VERSIONED and "container-image-reference" not in layered
    assert layered["id"] == f"{exampleos.OSNAME}-{layered['checksum']}.{layered['serial']}"
    text = snapshots.host.run("status").stdout
    assert f"Removed:   example-libs-2.1-1.{ARCH} (from the base)" in text, text


def test_a_newer_commit_of_the_base_ref_is_pending(snapshots: Snapshots) -> None:
    assert not any("pending-base-checksum" in d for d in snapshots.plain["deployments"])
    now = snapshots.pending["deployments"]
    tip = ostree(f"--repo={snapshots.host.sysroot / 'ostree' / 'repo'}", "rev-parse", VERSIONED).strip()
    for dep in now:
        assert dep["pending-base-checksum"] == tip and dep["pending-base-version"] == "41.2"
        assert dep["pending-base-timestamp"] > 0

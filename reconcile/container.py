"""Container-image bases as ostree-rs-ext (bootc, rpm-ostree) leaves them in the repo: an image reference
(`ostree-image-signed:docker://...`) names a ref `ostree/container/image/<escaped image>` whose commit, the
*merge commit*, holds the whole image (its ostree layer and any derived layers) and carries the manifest and
config as metadata. reconcile reads that import; pulling an image is bootc's or rpm-ostree's job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconcile.errors import ReconcileError
from reconcile.ostree import Repo

IMAGE_REF_PREFIX = "ostree/container/image"
BLOB_REF_PREFIX = "ostree/container/blob"
META_MANIFEST_DIGEST = "ostree.manifest-digest"
META_MANIFEST = "ostree.manifest"
META_CONFIG = "ostree.container.image-config"
VERSION_LABELS = ("org.opencontainers.image.version", "version")  # ostree-rs-ext's order

# Signature policies of an ostree image reference, and the transports of the image part (containers-image).
_SIGVERIFY = ("ostree-image-signed", "ostree-unverified-image")
_TRANSPORTS = {
    "registry": "docker://",
    "docker": "docker://",
    "oci": "oci:",
    "oci-archive": "oci-archive:",
    "docker-archive": "docker-archive:",
    "containers-storage": "containers-storage:",
    "dir": "dir:",
}


@dataclass(frozen=True)
class ImageReference:
    """`ostree-…:TRANSPORT:NAME` taken apart: how it is verified, and the image it names."""

    sigverify: str  # ostree-image-signed, ostree-unverified-image, or ostree-remote-image:REMOTE
    transport: str  # as ostree-rs-ext prints it: docker://, oci:, oci-archive:, ...
    name: str

    @property
    def image(self) -> str:
        """The image without its signature policy: what the import's ref is named after."""
        return self.transport + self.name


def parse_image_reference(value: str) -> ImageReference:
    """The forms `bootc switch` and `rpm-ostree rebase` accept; ValueError says what is wrong."""
    scheme, sep, rest = value.partition(":")
    if not sep:
        raise ValueError(f"{value!r} is not an ostree container image reference (no ':')")
    if scheme == "ostree-unverified-registry":
        sigverify, image = "ostree-unverified-image", f"registry:{rest}"
    elif scheme in ("ostree-remote-registry", "ostree-remote-image"):
        remote, sep, image = rest.partition(":")
        if not sep or not remote:
            raise ValueError(f"{value!r} names no ostree remote ({scheme}:REMOTE:IMAGE)")
        sigverify = f"ostree-remote-image:{remote}"
        image = f"registry:{image}" if scheme == "ostree-remote-registry" else image
    elif scheme in _SIGVERIFY:
        sigverify, image = scheme, rest
    else:
        raise ValueError(
            f"{value!r} is not an ostree container image reference (ostree-unverified-registry:IMAGE, "
            "ostree-unverified-image:TRANSPORT:IMAGE, ostree-image-signed:TRANSPORT:IMAGE or "
            "ostree-remote-image:REMOTE:TRANSPORT:IMAGE)"
        )
    transport, sep, name = image.partition(":")
    if not sep or transport not in _TRANSPORTS:
        known = ", ".join(sorted({t.rstrip(":/") for t in _TRANSPORTS.values()} | {"registry"}))
        raise ValueError(
            f"{value!r}: {transport!r} is not an image transport (known: {known}; a registry image is docker://NAME)"
        )
    if transport == "docker":
        if not name.startswith("//"):
            raise ValueError(f"{value!r}: the docker transport is written docker://NAME")
        name = name[2:]
    if not name or any(c.isspace() or c == "\0" for c in name):
        raise ValueError(f"{value!r}: the image name is empty or has spaces")
    return ImageReference(sigverify, _TRANSPORTS[transport], name)


def escape_for_ref(text: str) -> str:
    """ostree-rs-ext's ref escaping: letters, digits and `-` stay, `/` stays between a letter or digit and
    more text, `_` doubles, anything else becomes `_XX_` (its code point in hex)."""
    out = []
    previous_alnum = False
    for i, ch in enumerate(text):
        alnum = ch.isascii() and ch.isalnum()
        if alnum or ch == "-" or (ch == "/" and previous_alnum and i + 1 < len(text)):
            out.append(ch)
        elif ch == "_":
            out.append("__")
        else:
            out.append(f"_{ord(ch):02X}_")
        previous_alnum = alnum
    return "".join(out)


def import_ref(reference: str) -> str:
    """The ref of the local import of an image reference (the signature policy is not part of it)."""
    return f"{IMAGE_REF_PREFIX}/{escape_for_ref(parse_image_reference(reference).image)}"


def blob_ref(digest: str) -> str:
    """The ref of one imported layer, by its digest (`sha256:…`)."""
    return f"{BLOB_REF_PREFIX}/{escape_for_ref(digest)}"


@dataclass(frozen=True)
class ImportedImage:
    """The local import of an image: its merge commit and what the manifest says of it."""

    ref: str
    commit: str
    manifest_digest: str
    version: str | None
    layers: int


def find_import(repo: Repo, reference: str) -> ImportedImage | None:
    """The import of `reference` in the repo, or None when bootc or rpm-ostree never imported it."""
    ref = import_ref(reference)
    commit = repo.resolve(ref)
    if commit is None:
        return None
    meta = repo.commit_metadata(commit)
    digest = meta.get(META_MANIFEST_DIGEST)
    if not isinstance(digest, str):
        raise ReconcileError(
            f"The ref {ref} (the import of {reference}) points at {commit}, which has no {META_MANIFEST_DIGEST} "
            "metadata: it is not a container image import.",
            hint=f"Import the image again with `bootc switch {reference}` or `rpm-ostree rebase {reference}`. "
            "Nothing was changed.",
        )
    manifest = _json(meta.get(META_MANIFEST))
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    return ImportedImage(ref, commit, digest, config_version(meta), len(layers) if isinstance(layers, list) else 0)


def config_version(meta: Mapping[str, Any]) -> str | None:
    """The version label of an imported image's config (a merge commit has no `version` key of its own)."""
    config = _json(meta.get(META_CONFIG))
    labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
    if not isinstance(labels, dict):
        return None
    for key in VERSION_LABELS:
        if isinstance(labels.get(key), str):
            return str(labels[key])
    return None


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None

"""GLib key files: the origin files of deployments."""

from __future__ import annotations

import contextlib

from reconcile.errors import OstreeError
from reconcile.ostree._gi import (
    GLib,
)


def keyfile_from_text(text: str) -> GLib.KeyFile:
    kf = GLib.KeyFile.new()
    try:
        kf.load_from_data(text, len(text.encode()), GLib.KeyFileFlags.KEEP_COMMENTS)
    except GLib.Error as e:
        raise OstreeError(f"parse keyfile: {e.message}") from e
    return kf


def keyfile_copy(kf: GLib.KeyFile) -> GLib.KeyFile:
    data, _length = kf.to_data()
    return keyfile_from_text(data)


def keyfile_get(kf: GLib.KeyFile, group: str, key: str) -> str | None:
    try:
        return str(kf.get_string(group, key))
    except GLib.Error:
        return None


def keyfile_get_list(kf: GLib.KeyFile, group: str, key: str) -> list[str]:
    try:
        return [str(x) for x in kf.get_string_list(group, key)]
    except GLib.Error:
        return []


def keyfile_remove(kf: GLib.KeyFile, group: str, key: str | None = None) -> None:
    with contextlib.suppress(GLib.Error):
        if key is None:
            kf.remove_group(group)
        else:
            kf.remove_key(group, key)

"""Crafting hostile RPMs: rpmbuild will not make them, so tests rewrite real ones.

An RPM is split into lead, signature header, header and compressed cpio payload; same-length substitutions
are applied to the header data and to the uncompressed payload; the payload is recompressed; then, unless
asked not to, every digest is recomputed so only the intended defect remains.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

LEAD = 96
SIG_SIZE, SIG_MD5, SIG_PAYLOADSIZE, SIG_SHA1, SIG_SHA256 = 1000, 1004, 1007, 269, 273
PAYLOADDIGEST = 5092


@dataclass
class Parts:
    lead: bytes
    sig: bytearray  # magic + index + store, without padding
    header: bytearray  # magic + index + store
    payload: bytes  # compressed


def _header_len(data: bytes, at: int) -> int:
    il, dl = struct.unpack_from(">II", data, at + 8)
    return 16 + 16 * il + dl


def split(path: Path) -> Parts:
    data = path.read_bytes()
    sig_len = _header_len(data, LEAD)
    hdr_at = LEAD + sig_len + (8 - sig_len % 8) % 8
    hdr_len = _header_len(data, hdr_at)
    return Parts(
        data[:LEAD],
        bytearray(data[LEAD : LEAD + sig_len]),
        bytearray(data[hdr_at : hdr_at + hdr_len]),
        data[hdr_at + hdr_len :],
    )


def _tag(blob: bytearray, tag: int) -> tuple[int, int, int] | None:
    """(type, absolute offset of the data, count) of a tag in a header blob."""
    il = struct.unpack_from(">I", blob, 8)[0]
    store = 16 + 16 * il
    for i in range(il):
        t, typ, off, count = struct.unpack_from(">iIiI", blob, 16 + 16 * i)
        if t == tag:
            return typ, store + off, count
    return None


def _set_string(blob: bytearray, tag: int, value: str) -> None:
    found = _tag(blob, tag)
    if found is None:
        return
    _typ, at, _count = found
    old_end = blob.index(b"\0", at)
    assert old_end - at == len(value), "same-length replacement only"
    blob[at:old_end] = value.encode()


def _set_int32(blob: bytearray, tag: int, value: int) -> None:
    found = _tag(blob, tag)
    if found is not None:
        struct.pack_into(">I", blob, found[1], value)


def _set_bin(blob: bytearray, tag: int, value: bytes) -> None:
    found = _tag(blob, tag)
    if found is not None:
        blob[found[1] : found[1] + len(value)] = value


def join(p: Parts, *, fix_payload_digest: bool = True, fix_header_digest: bool = True) -> bytes:
    if fix_payload_digest:
        _set_string(p.header, PAYLOADDIGEST, hashlib.sha256(p.payload).hexdigest())
    if fix_header_digest:
        _set_string(p.sig, SIG_SHA256, hashlib.sha256(p.header).hexdigest())
        _set_string(p.sig, SIG_SHA1, hashlib.sha1(p.header).hexdigest())
    _set_bin(p.sig, SIG_MD5, hashlib.md5(bytes(p.header) + p.payload).digest())
    _set_int32(p.sig, SIG_SIZE, len(p.header) + len(p.payload))
    pad = b"\0" * ((8 - len(p.sig) % 8) % 8)
    return p.lead + bytes(p.sig) + pad + bytes(p.header) + p.payload


def rewrite(
    src: Path,
    dest: Path,
    header: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    payload: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    **fix: bool,
) -> Path:
    parts = split(src)
    for old, new in header:
        assert len(old) == len(new) and old in parts.header, old
        parts.header = bytearray(bytes(parts.header).replace(old, new))
    if payload:
        cpio = gzip.decompress(parts.payload)
        for old, new in payload:
            assert len(old) == len(new) and old in cpio, old
            cpio = cpio.replace(old, new)
        parts.payload = gzip.compress(cpio, mtime=0)
    dest.write_bytes(join(parts, **fix))
    return dest


def truncate(src: Path, dest: Path, keep_payload_bytes: int) -> Path:
    parts = split(src)
    parts.payload = parts.payload[:keep_payload_bytes]
    dest.write_bytes(join(parts, fix_payload_digest=False))
    return dest


def set_header_counts(src: Path, dest: Path, tags: int) -> Path:
    parts = split(src)
    struct.pack_into(">I", parts.header, 8, tags)
    dest.write_bytes(join(parts, fix_payload_digest=False, fix_header_digest=False))
    return dest

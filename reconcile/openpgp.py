"""Just enough OpenPGP (RFC 4880) to name a public key: its fingerprint, key ids (primary and subkeys) and
user ids, and to armor a binary key for rpm. Trust decisions are rpm's and GnuPG's, never made here."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

_BLOCK = re.compile(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.DOTALL)
TAG_PUBLIC_KEY, TAG_USER_ID, TAG_PUBLIC_SUBKEY = 6, 13, 14


class KeyFormatError(ValueError):
    """The bytes are not an OpenPGP public key reconcile can use."""


@dataclass(frozen=True)
class PublicKey:
    fingerprint: str  # 40 upper-case hex digits
    key_ids: tuple[str, ...]  # 16 lower-case hex digits each: the primary key first, then its subkeys
    user_ids: tuple[str, ...]
    armored: bytes = field(repr=False)
    binary: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return self.key_ids[0]

    def signs_for(self, key_id: str) -> bool:
        """Whether a signature's key id (8 or 16 hex digits, as rpm prints it) is this key or a subkey."""
        wanted = key_id.lower()
        return any(k.endswith(wanted) for k in self.key_ids)


def read_keys(data: bytes) -> list[PublicKey]:
    """Every public key in armored text (several blocks allowed) or in binary form."""
    blocks = [_dearmor(m.group(1)) for m in _BLOCK.finditer(data)]
    if not blocks:
        if data[:1] and data[0] & 0x80:
            blocks = [data]
        else:
            raise KeyFormatError("no OpenPGP public key block found")
    keys = []
    for binary in blocks:
        try:
            keys += _split_keys(binary)
        except (IndexError, ValueError) as e:  # a length that runs past the data, a truncated header
            if isinstance(e, KeyFormatError):
                raise
            raise KeyFormatError("the key data is truncated or malformed") from None
    if not keys:
        raise KeyFormatError("the key block holds no public key")
    return keys


def _dearmor(text: bytes) -> bytes:
    lines = text.decode("ascii", "replace").splitlines()
    if "" in lines:  # armor headers end at the first empty line
        lines = lines[lines.index("") + 1 :]
    body = "".join(line.strip() for line in lines if line.strip() and not line.startswith("="))
    try:
        return base64.b64decode(body, validate=True)
    except ValueError as e:
        raise KeyFormatError(f"the key's armor is not valid base64 ({e})") from None


def _packets(data: bytes) -> list[tuple[int, int, bytes]]:
    """(tag, offset of the packet, body) for each packet."""
    out, i = [], 0
    while i < len(data):
        start, first = i, data[i]
        if not first & 0x80:
            raise KeyFormatError(f"byte {i} does not start an OpenPGP packet")
        if first & 0x40:  # new format
            tag, i = first & 0x3F, i + 1
            if i >= len(data):
                raise KeyFormatError("truncated packet header")
            o = data[i]
            if o < 192:
                length, i = o, i + 1
            elif o < 224:
                length, i = ((o - 192) << 8) + data[i + 1] + 192, i + 2
            elif o == 255:
                length, i = int.from_bytes(data[i + 1 : i + 5], "big"), i + 5
            else:
                raise KeyFormatError("partial-length packets do not belong in a key")
        else:
            tag, kind, i = (first >> 2) & 0x0F, first & 0x03, i + 1
            if kind == 3:
                length = len(data) - i
            else:
                size = (1, 2, 4)[kind]
                length, i = int.from_bytes(data[i : i + size], "big"), i + size
        if i + length > len(data):
            raise KeyFormatError("a packet runs past the end of the key")
        out.append((tag, start, data[i : i + length]))
        i += length
    return out


def _fingerprint(body: bytes) -> bytes:
    if not body or body[0] != 4:
        raise KeyFormatError(f"OpenPGP key version {body[0] if body else '?'} is not supported (only version 4)")
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()


def _split_keys(binary: bytes) -> list[PublicKey]:
    keys: list[PublicKey] = []
    current: dict | None = None
    start = 0
    for tag, offset, body in _packets(binary):
        if tag == TAG_PUBLIC_KEY:
            if current is not None:
                keys.append(_finish(current, binary[start:offset]))
            current, start = {"fpr": _fingerprint(body), "subkeys": [], "uids": []}, offset
        elif current is not None and tag == TAG_PUBLIC_SUBKEY:
            current["subkeys"].append(_fingerprint(body))
        elif current is not None and tag == TAG_USER_ID:
            current["uids"].append(body.decode("utf-8", "replace"))
    if current is not None:
        keys.append(_finish(current, binary[start:]))
    return keys


def _finish(current: dict, binary: bytes) -> PublicKey:
    fpr: bytes = current["fpr"]
    ids = [fpr[-8:].hex()] + [s[-8:].hex() for s in current["subkeys"]]
    return PublicKey(fpr.hex().upper(), tuple(ids), tuple(current["uids"]), armor(binary), binary)


def armor(binary: bytes) -> bytes:
    body = base64.b64encode(binary).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(binary).to_bytes(3, "big")).decode()
    text = (
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
        + "\n".join(lines)
        + f"\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n"
    )
    return text.encode()


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF

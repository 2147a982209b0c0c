"""Throwaway OpenPGP keys made in the test with GnuPG, RPMs signed with `rpmsign`, detached signatures of
repomd.xml; and crafted damage (a header byte changed after signing)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rpmforge import split
from support import exampleos

SigningKey = exampleos.SigningKey
make_signing_key, sign_rpms, stop_agent = exampleos.make_signing_key, exampleos.sign_rpms, exampleos.stop_agent


def sign_detached(key: SigningKey, path: Path) -> Path:
    asc = path.with_name(path.name + ".asc")
    argv = ["gpg", "--homedir", str(key.home), "--batch", "--yes", "--armor", "--local-user", key.email]
    subprocess.run([*argv, "--detach-sign", "--output", str(asc), str(path)], check=True, capture_output=True)
    return asc


def damage_header(rpm: Path) -> None:
    """Change one byte of the main header's data (the summary text) after signing: the signature must fail."""
    parts = split(rpm)
    at = parts.header.find(b"test package")
    assert at > 0, "the summary text was not found in the header"
    parts.header[at] ^= 0x20  # 't' -> 'T'
    pad = b"\0" * ((8 - len(parts.sig) % 8) % 8)
    rpm.write_bytes(parts.lead + bytes(parts.sig) + pad + bytes(parts.header) + parts.payload)


def damage_payload(rpm: Path) -> None:
    """Change one byte of the compressed payload: the header (and its signature) stay intact."""
    data = bytearray(rpm.read_bytes())
    data[-64] ^= 0xFF
    rpm.write_bytes(bytes(data))

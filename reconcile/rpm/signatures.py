"""Package signatures, checked by rpm's own code against the keys a repo lists: the header signature from a
header-only read at plan time (the rpm Python bindings), and the whole file before import (`rpmkeys
--checksig` with `_pkgverify_level signature`, which also checks the payload digests)."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.errors import ReconcileError
from reconcile.openpgp import PublicKey
from reconcile.process import dies_with_us

_STATUS = re.compile(r"^\s+(?P<what>.+?): (?P<status>OK|NOKEY|NOTTRUSTED|BAD|NOTFOUND)\b", re.MULTILINE)
_KEY_ID = re.compile(r"[Kk]ey ID ([0-9a-fA-F]+)")
_SIGNATURE_TAGS = ("RSAHEADER", "DSAHEADER", "SIGPGP", "SIGGPG")
log = logging.getLogger("reconcile.signatures")
_quiet = False


@dataclass(frozen=True)
class Verdict:
    """What rpm said about one package: `signer` is the key that signed it when the check passed."""

    ok: bool
    key_id: str | None
    problem: str = ""
    signer: PublicKey | None = None


def _signer(keys: list[PublicKey], key_id: str | None) -> PublicKey | None:
    return next((k for k in keys if key_id and k.signs_for(key_id)), None)


def _key_list(keys: list[PublicKey]) -> str:
    return ", ".join(k.fingerprint for k in keys) or "none"


@contextmanager
def _memfd(data: bytes) -> Iterator[int]:
    fd = os.memfd_create("rpm-header")
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


def _unverified(fd: int) -> Any:
    """The header as rpm reads it with no check at all: to name the key that signed it."""
    import rpm

    global _quiet
    if not _quiet:  # rpm would print its own warnings on stderr; ours name the package, repo and key
        rpm.setLogFile(open(os.devnull, "w"))  # noqa: SIM115 - kept open for the process
        _quiet = True
    return rpm.TransactionSet("/", rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS).hdrFromFdno(fd)


def check_header(raw: bytes, keys: list[PublicKey]) -> Verdict:
    """Lead, signature header and header of a package (no payload): is the header signed by one of `keys`?"""
    import rpm

    with _memfd(raw) as fd:
        try:
            hdr = _unverified(fd)
        except rpm.error as e:
            return Verdict(False, None, f"its header cannot be read by rpm ({e})")
    described = next((hdr.format(f"%{{{tag}:pgpsig}}") for tag in _SIGNATURE_TAGS[:2] if hdr[tag]), None)
    if described is None:
        legacy = next((hdr.format(f"%{{{tag}:pgpsig}}") for tag in _SIGNATURE_TAGS[2:] if hdr[tag]), None)
        if legacy is None:
            return Verdict(False, None, "it is not signed")
        # A header+payload signature cannot be checked from the header, and a package the cache holds is
        # never read whole again: refused rather than trusted on its key id.
        return Verdict(
            False,
            _key_id(legacy),
            "it carries only a legacy (V3) header+payload signature, which rpm cannot check from its header; "
            "re-sign it with a current rpmsign",
        )
    key_id = _key_id(described)
    keyring = rpm.keyring()
    for key in keys:
        keyring.addKey(rpm.pubkey(key.armored))
    checker = rpm.TransactionSet("/")
    checker.setKeyring(keyring)
    with _memfd(raw) as fd:
        try:
            checker.hdrFromFdno(fd)
        except rpm.error as e:
            if "public key not available" in str(e):
                return Verdict(False, key_id, f"it is signed with key {key_id}, which is not one of the repo's keys")
            return Verdict(False, key_id, f"its signature (key {key_id}) does not verify ({e})")
    signer = _signer(keys, key_id)
    return Verdict(signer is not None, key_id, "" if signer else f"rpm accepted key {key_id}, not a key listed", signer)


def _key_id(described: str) -> str | None:
    m = _KEY_ID.search(described)
    return m.group(1).lower() if m else None


def check_files(paths: list[Path], keyring_db: Path, keys: list[PublicKey]) -> dict[Path, Verdict]:
    """`rpmkeys --checksig` of whole files against an rpmdb that holds exactly the repo's keys."""
    if not paths:
        return {}
    argv = ["rpmkeys", "--dbpath", str(keyring_db), "--checksig", "-v", "--define", "_pkgverify_level signature"]
    # Only the keys of that database: newer rpm can keep keys elsewhere, and a host's macros may say so.
    argv += ["--define", "_keyring rpmdb", "--define", f"_keyringpath {keyring_db}/pubkeys/"]
    log.debug("run: %s", shlex.join([*argv, *map(str, paths)]))
    try:
        command = dies_with_us([*argv, *map(str, paths)])
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    except FileNotFoundError:
        raise ReconcileError("rpmkeys (from rpm) is not installed; it is needed to check package signatures.") from None
    except subprocess.TimeoutExpired:
        raise ReconcileError("rpmkeys --checksig did not finish within 600 s.") from None
    stderr = " ".join(proc.stderr.strip().splitlines()[-3:])
    sections = _split_output(proc.stdout, paths)
    verdicts = {path: _verdict(sections.get(path, ""), keys, path, stderr) for path in paths}
    if proc.returncode != 0 and all(v.ok for v in verdicts.values()):  # rpm failed, yet nothing says why
        return {path: Verdict(False, None, f"rpmkeys failed (exit code {proc.returncode}): {stderr}") for path in paths}
    return verdicts


def _long_key_id(path: Path) -> str | None:
    import rpm

    try:
        with open(path, "rb") as f:
            hdr = _unverified(f.fileno())
    except (OSError, rpm.error):
        return None
    for tag in _SIGNATURE_TAGS:
        if hdr[tag]:
            return _key_id(hdr.format(f"%{{{tag}:pgpsig}}"))
    return None


def _split_output(text: str, paths: list[Path]) -> dict[Path, str]:
    by_name = {f"{p}:": p for p in paths}
    out: dict[Path, list[str]] = {}
    current: Path | None = None
    for line in text.splitlines():
        if line in by_name:
            current = by_name[line]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {p: "\n".join(lines) for p, lines in out.items()}


def _verdict(section: str, keys: list[PublicKey], path: Path, stderr: str) -> Verdict:
    statuses = [(m.group("what"), m.group("status")) for m in _STATUS.finditer(section)]
    if not statuses:
        return Verdict(False, None, f"rpmkeys gave no verdict for it ({stderr or 'no output'})")
    signatures = [(what, status) for what, status in statuses if "ignature" in what]
    signed = [(what, status) for what, status in signatures if status != "NOTFOUND"]
    key_id = next((_key_id(what) for what, _ in signed if _key_id(what)), None)
    if key_id and any(status != "OK" for _what, status in statuses):
        key_id = _long_key_id(path) or key_id  # rpmkeys prints 8 digits; a refusal names all 16
    bad_digest = [what for what, status in statuses if "digest" in what and status == "BAD"]
    if bad_digest:
        return Verdict(False, key_id, f"its {bad_digest[0]} does not match: the file is corrupt or was tampered with")
    if not signed:
        return Verdict(False, None, "it is not signed")
    for what, status in signed:
        if status == "NOKEY":
            return Verdict(False, key_id, f"it is signed with key {key_id}, which is not one of the repo's keys")
        if status != "OK":
            return Verdict(False, key_id, f"its signature (key {key_id}) is {status}: {what}")
    return Verdict(True, key_id, signer=_signer(keys, key_id))

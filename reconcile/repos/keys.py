"""The signing keys each repo lists in `gpgkey=`: fetched once (a network URL is not fetched again while
its keys are cached), kept by fingerprint, and handed to rpm (a keyring) and to GnuPG (for `repomd.xml.asc`).

A key is "new" until an apply has used it; a plan shows new keys with their fingerprint and user id, as dnf
asks before it imports a key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.files import private_tempdir, write_atomically
from reconcile.openpgp import KeyFormatError, PublicKey, read_keys
from reconcile.process import dies_with_us
from reconcile.repos.config import RepoConfig
from reconcile.repos.transfer import Download, Downloader, TransferError, local_path


class KeyStore:
    def __init__(
        self, cache_root: Path, downloader: Downloader, *, cache_only: bool, refresh: bool = False, root: Path | None
    ) -> None:
        self.dir = cache_root / "keys"
        self.downloader = downloader
        self.cache_only = cache_only
        self.refresh = refresh  # fetch network keys again (a repo may have rotated its key)
        self.root = root  # the deployment's tree, where file:// keys of a sysroot other than / live
        self._by_repo: dict[str, list[PublicKey]] = {}

    def for_repo(self, cfg: RepoConfig) -> list[PublicKey]:
        if cfg.id not in self._by_repo:
            keys: list[PublicKey] = []
            for url in cfg.gpgkeys:
                keys += self._from_url(cfg, url)
            self._by_repo[cfg.id] = list({k.fingerprint: k for k in keys}.values())
        return self._by_repo[cfg.id]

    def _from_url(self, cfg: RepoConfig, url: str) -> list[PublicKey]:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("", "file"):
            return self._parse(cfg, url, self._read_local(cfg, url))
        if scheme not in ("http", "https", "ftp"):
            raise ReconcileError(f"{cfg.where}: [{cfg.id}] gpgkey {url} has an unsupported scheme.")
        cached = self._cached(url)
        if cached is not None and not (self.refresh and not self.cache_only):
            return cached
        if self.cache_only:
            raise ReconcileError(
                f"--cache-only: the key {url} of [{cfg.id}] ({cfg.source}) has never been fetched.",
                hint="Run once without --cache-only.",
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        dest = private_tempdir(self.dir, ".key-") / "key"
        try:
            self.downloader.fetch([Download(cfg, url, dest, f"the key {url}")], "Fetching keys", quiet=True)
            keys = self._parse(cfg, url, dest.read_bytes())
        except TransferError as e:
            raise ReconcileError(f"The gpgkey of [{cfg.id}] ({cfg.source}) cannot be fetched: {e.message}") from None
        finally:
            shutil.rmtree(dest.parent, ignore_errors=True)
        for key in keys:
            write_atomically(self.dir / f"{key.fingerprint}.asc", key.armored)
        index = self._index()
        index[url] = [k.fingerprint for k in keys]
        write_atomically(self.dir / "urls.json", json.dumps(index, indent=1, sort_keys=True).encode())
        return keys

    def _read_local(self, cfg: RepoConfig, url: str) -> bytes:
        """The deployment's own copy first (where a host's /etc/pki/rpm-gpg lives), else the path as given."""
        path = local_path(url)
        if not path.is_absolute():
            raise ReconcileError(f"{cfg.where}: the gpgkey {url} of [{cfg.id}] is not an absolute path.")
        candidates = [self.root / path.relative_to("/")] if self.root is not None else []
        for candidate in [*candidates, path]:
            if candidate.is_file():
                try:
                    return candidate.read_bytes()
                except OSError as e:
                    raise ReconcileError(f"{cfg.where}: the gpgkey {url} of [{cfg.id}] cannot be read: {e}.") from None
        tried = " or ".join(str(c) for c in [*candidates, path])
        raise ReconcileError(f"{cfg.where}: the gpgkey {url} of [{cfg.id}] does not exist (looked for {tried}).")

    def _parse(self, cfg: RepoConfig, url: str, data: bytes) -> list[PublicKey]:
        try:
            return read_keys(data)
        except KeyFormatError as e:
            raise ReconcileError(f"{cfg.where}: the gpgkey {url} of [{cfg.id}] is not a usable key: {e}.") from None

    def _index(self) -> dict[str, list[str]]:
        try:
            data = json.loads((self.dir / "urls.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _cached(self, url: str) -> list[PublicKey] | None:
        fingerprints = self._index().get(url)
        if not fingerprints:
            return None
        keys = []
        for fpr in fingerprints:
            try:
                found = read_keys((self.dir / f"{fpr}.asc").read_bytes())
            except (OSError, KeyFormatError):
                return None
            if [k.fingerprint for k in found] != [fpr]:  # the file is not what its name says: fetch again
                return None
            keys += found
        return keys

    # -- what has been used before -------------------------------------------------------------------
    def is_new(self, key: PublicKey) -> bool:
        return not (self.dir / "accepted" / key.fingerprint).exists()

    # -- the keys, as rpm and GnuPG want them ------------------------------------------------------------
    def rpm_keyring(self, keys: list[PublicKey]) -> Path:
        """An rpmdb holding exactly these keys, for `rpmkeys --checksig` (rpm 4.18 reads keys from an rpmdb)."""
        return self._materialize("rpmdb", keys, _import_into_rpmdb)

    def gnupg_home(self, keys: list[PublicKey]) -> Path:
        """A GnuPG home holding exactly these keys, for librepo's check of repomd.xml.asc (as dnf does)."""
        return self._materialize("gnupg", keys, _import_into_gnupg)

    def _materialize(self, kind: str, keys: list[PublicKey], build: Callable[[Path, list[PublicKey]], None]) -> Path:
        """Built once per set of keys, in a temporary directory renamed into place."""
        digest = hashlib.sha256(",".join(sorted(k.fingerprint for k in keys)).encode()).hexdigest()[:16]
        target = self.dir / f"{kind}-{digest}"
        if target.is_dir():
            return target
        self.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{kind}-", dir=self.dir) as work:
            home = Path(work) / "home"
            home.mkdir(mode=0o700)
            build(home, keys)
            try:
                os.rename(home, target)
            except OSError:
                if not target.is_dir():  # another process built the same set meanwhile
                    raise
        return target


def accept_keys(cache_root: Path, fingerprints: list[str]) -> None:
    """Remember keys an apply used: later plans no longer show them as new."""
    accepted = cache_root / "keys" / "accepted"
    accepted.mkdir(parents=True, exist_ok=True)
    for fpr in fingerprints:
        (accepted / fpr).touch()


def _import_into_rpmdb(directory: Path, keys: list[PublicKey]) -> None:
    if not keys:
        return  # an empty keyring: every signature is then "not one of the repo's keys"
    files = []
    for key in keys:
        files.append(directory.parent / f"{key.fingerprint}.asc")
        files[-1].write_bytes(key.armored)
    _run(["rpmkeys", "--dbpath", str(directory), "--import", *map(str, files)], "rpmkeys --import")


def _import_into_gnupg(directory: Path, keys: list[PublicKey]) -> None:
    """GnuPG reads a keyring of plain OpenPGP packets (pubring.gpg): no gpg run, no agent to start."""
    (directory / "pubring.gpg").write_bytes(b"".join(k.binary for k in keys))


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(dies_with_us(argv), capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise ReconcileError(f"{argv[0]} is not installed; it is needed to check signatures ({what}).") from None
    except subprocess.TimeoutExpired:
        raise ReconcileError(f"{what} did not finish within 60 s.") from None
    if proc.returncode != 0:
        raise ReconcileError(f"{what} failed: {proc.stderr.strip() or proc.stdout.strip()}")

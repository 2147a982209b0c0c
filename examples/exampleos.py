"""Tooling for the example distribution (ExampleOS): build its RPMs, publish an rpm-md repo, and set up an
OSTree sysroot in a directory. The demo and the test suite both use it.

Sysroots made here are safe on a development machine: a tmpfs is mounted on `<sysroot>/boot` (ostree
freezes the filesystem holding /boot), the bootloader is pinned to `none`, and deployments stay mutable
so the directory can be deleted.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
SPECS = EXAMPLES / "specs"
BASE_PACKAGES = ["example-filesystem", "example-shell", "example-libs", "example-kernel", "example-release"]
OSNAME = "example"
BASE_REF = "example/base"
SOCKET_PATH_MAX = 108  # sockaddr_un.sun_path, the NUL included

# Deployments stay deletable; ostree's global sync() is skipped (it would flush the whole host).
SYSROOT_ENV = {"OSTREE_SYSROOT_DEBUG": "mutable-deployments", "OSTREE_SYSROOT_OPTS": "skip-sync"}


def sysroot_env() -> dict[str, str]:
    return {**os.environ, **SYSROOT_ENV}


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=kwargs.pop("env", sysroot_env()), check=False)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_rpms(specs: Iterable[Path], topdir: Path, target: str | None = None) -> list[Path]:
    """rpmbuild each spec (for another architecture with `target`); returns the binary RPMs built."""
    topdir.mkdir(parents=True, exist_ok=True)
    before = set(topdir.glob("RPMS/*/*.rpm"))
    extra = ["--target", target] if target else []
    for spec in specs:
        run(["rpmbuild", "-bb", "--quiet", *extra, "--define", f"_topdir {topdir}", str(spec)])
    return sorted(set(topdir.glob("RPMS/*/*.rpm")) - before)


def make_repo(rpms: Iterable[Path], repo_dir: Path) -> Path:
    """Copy RPMs into `repo_dir` and generate rpm-md metadata with createrepo_c."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    for rpm in rpms:
        shutil.copy2(rpm, repo_dir / rpm.name)
    run(["createrepo_c", "--quiet", "--no-database", "--simple-md-filenames", str(repo_dir)])
    return repo_dir


def write_repo_file(reposdir: Path, repo_id: str, baseurl: str | None, **options: object) -> Path:
    """A .repo file with one repo; `options` are further `key=value` lines (they override the defaults)."""
    reposdir.mkdir(parents=True, exist_ok=True)
    path = reposdir / f"{repo_id}.repo"
    values: dict[str, object] = {"name": repo_id, "baseurl": baseurl, "enabled": 1, "gpgcheck": 0, **options}
    lines = [f"[{repo_id}]"] + [f"{k}={v}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class SigningKey:
    """A throwaway OpenPGP key in its own GnuPG home, for signing RPMs and repo metadata."""

    home: Path
    email: str
    public: Path  # the armored public key, as a repo's gpgkey= points at it
    fingerprint: str

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:].lower()


def _gpg(home: Path, *args: str, stdin: str | None = None) -> str:
    argv = ["gpg", "--homedir", str(home), "--batch", *args]
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr}")
    return proc.stdout


def make_signing_key(directory: Path, name: str, real_name: str | None = None) -> SigningKey:
    directory.mkdir(parents=True, exist_ok=True)
    home = directory / f"gnupg-{name}"
    if len(str(home / "S.gpg-agent.browser")) >= SOCKET_PATH_MAX:  # gpg-agent could not bind its sockets there
        home = Path(tempfile.mkdtemp(prefix=f"gnupg-{name}-"))
        atexit.register(shutil.rmtree, home, True)
    home.mkdir(parents=True, mode=0o700, exist_ok=True)
    email = f"{name}@example.test"
    params = f"%no-protection\nKey-Type: RSA\nKey-Length: 2048\nName-Real: {real_name or name + ' signer'}\n"
    _gpg(home, "--gen-key", stdin=params + f"Name-Email: {email}\nExpire-Date: 0\n%commit\n")
    public = directory / f"{name}.asc"
    public.write_text(_gpg(home, "--armor", "--export", email))
    listing = _gpg(home, "--with-colons", "--list-keys", email)
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return SigningKey(home, email, public, fingerprint)


def stop_agent(key: SigningKey) -> None:
    """The gpg-agent that key generation started for this home (only that one)."""
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], capture_output=True, check=False)


def sign_rpms(key: SigningKey, rpms: Iterable[Path]) -> None:
    """rpmsign in place (Debian's rpm looks for gpg2; its gpg is gpg)."""
    argv = ["rpmsign", "--define", "__gpg /usr/bin/gpg", "--define", f"_gpg_name {key.email}", "--addsign"]
    env = {"GNUPGHOME": str(key.home), "PATH": "/usr/bin:/bin"}
    run([*argv, *map(str, rpms)], env=env)


def init_sysroot(sysroot: Path, source_repo: Path, ref: str, osname: str = OSNAME) -> None:
    """An OSTree sysroot in a directory with `ref` (from `source_repo`) deployed."""
    sysroot.mkdir(parents=True)
    run(["ostree", "admin", "init-fs", "--modern", str(sysroot)])
    boot = sysroot / "boot"
    boot.mkdir(exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "size=64m", "reconcile-sysroot-boot", str(boot)])
    repo = sysroot / "ostree" / "repo"
    run(["ostree", f"--repo={repo}", "config", "set", "sysroot.bootloader", "none"])
    run(["ostree", "admin", f"--sysroot={sysroot}", "os-init", osname])
    pull_base(sysroot, source_repo, ref)
    run(
        [
            "ostree",
            "admin",
            f"--sysroot={sysroot}",
            "deploy",
            f"--os={osname}",
            "--karg=root=LABEL=example",
            ref,
        ]
    )


def pull_base(sysroot: Path, source_repo: Path, ref: str) -> None:
    run(["ostree", f"--repo={sysroot / 'ostree' / 'repo'}", "pull-local", str(source_repo), ref])


def teardown_sysroot(sysroot: Path) -> None:
    boot = sysroot / "boot"
    if boot.is_dir() and os.path.ismount(boot):
        subprocess.run(["umount", str(boot)], check=False)
    if sysroot.exists():
        subprocess.run(["chattr", "-R", "-i", str(sysroot / "ostree" / "deploy")], capture_output=True, check=False)
        shutil.rmtree(sysroot)

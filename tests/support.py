"""Test helpers: spec files written from Python, CLI runs and state snapshots (servers: servers.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import exampleos  # noqa: E402

RECONCILE = str(Path(sys.executable).parent / "reconcile")


# -- spec files ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    path: str
    content: bytes | str = b""
    mode: int = 0o644
    user: str = "root"
    group: str = "root"
    config: bool = False
    ghost: bool = False
    caps: str = ""


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755
    user: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Hardlink:
    path: str
    to: str


@dataclass(frozen=True)
class Package:
    name: str
    version: str = "1.0"
    release: str = "1"
    epoch: int | None = None
    arch: str = "noarch"
    requires: tuple[str, ...] = ()
    requires_pre: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    obsoletes: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    supplements: tuple[str, ...] = ()
    enhances: tuple[str, ...] = ()
    files: tuple[File | Dir | Symlink | Hardlink, ...] = ()
    scripts: dict[str, str] = field(default_factory=dict)

    @property
    def nevra(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        arch = self.arch if self.arch != "native" else os.uname().machine
        return f"{self.name}-{epoch}{self.version}-{self.release}.{arch}"

    def spec(self) -> str:
        lines = [
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Release: {self.release}",
            "Summary: test package",
            "License: MIT",
            "AutoReqProv: no",
            "%global debug_package %{nil}",
            "%global __os_install_post %{nil}",
            "%global _binary_payload w9.gzdio",
        ]
        if self.epoch is not None:
            lines.append(f"Epoch: {self.epoch}")
        if self.arch == "noarch":
            lines.append("BuildArch: noarch")
        for tag, values in (
            ("Requires", self.requires),
            ("Requires(pre)", self.requires_pre),
            ("Provides", self.provides),
            ("Conflicts", self.conflicts),
            ("Obsoletes", self.obsoletes),
            ("Recommends", self.recommends),
            ("Supplements", self.supplements),
            ("Enhances", self.enhances),
        ):
            lines += [f"{tag}: {v}" for v in values]
        lines += ["%description", f"{self.name} for tests", "%install", "mkdir -p %{buildroot}"]
        listing = []
        files = self.files or (File(f"/usr/share/{self.name}/{self.version}-{self.release}", f"{self.nevra}\n"),)
        for f in files:
            target = f"%{{buildroot}}{_q(f.path)}"
            parent = f"%{{buildroot}}{_q(os.path.dirname(f.path))}"
            if isinstance(f, Dir):
                lines.append(f"mkdir -p {target}")
                listing.append(f"%attr({f.mode:04o},{f.user},{f.group}) %dir {_q(f.path)}")
            elif isinstance(f, Symlink):
                lines += [f"mkdir -p {parent}", f"ln -s {_q(f.target)} {target}"]
                listing.append(_q(f.path))
            elif isinstance(f, Hardlink):
                lines += [f"mkdir -p {parent}", f"ln %{{buildroot}}{_q(f.to)} {target}"]
                listing.append(_q(f.path))
            else:
                data = f.content.encode() if isinstance(f.content, str) else f.content
                if not f.ghost:
                    encoded = base64.b64encode(data).decode()
                    lines += [
                        f"mkdir -p {parent}",
                        f"echo {encoded} | base64 -d > {target}",
                        f"chmod {f.mode:o} {target}",
                    ]
                prefix = "%ghost " if f.ghost else "%config(noreplace) " if f.config else ""
                prefix += f"%caps({f.caps}) " if f.caps else ""
                listing.append(f"%attr({f.mode:04o},{f.user},{f.group}) {prefix}{_q(f.path)}")
        for kind, body in self.scripts.items():
            lines += [f"%{kind}", body]
        lines += ["%files", *listing, ""]
        return "\n".join(lines)


def _q(path: str) -> str:
    return f'"{path}"' if any(c.isspace() for c in path) else path


class RpmFactory:
    """Builds packages with rpmbuild, once per spec text per session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def build(self, pkg: Package) -> Path:
        return self.build_spec(pkg.name, pkg.spec(), pkg.arch)

    def build_spec(self, name: str, text: str, arch: str = "noarch") -> Path:
        """rpmbuild a spec the test wrote by hand (for what Package cannot express)."""
        key = hashlib.sha256(f"{arch}\n{text}".encode()).hexdigest()[:16]
        out = self.workdir / key
        done = list(out.glob("RPMS/*/*.rpm"))
        if done:
            return done[0]
        self.workdir.mkdir(parents=True, exist_ok=True)
        spec = self.workdir / f"{name}-{key}.spec"
        spec.write_text(text)
        target = None if arch in ("noarch", "native") else arch
        built = exampleos.build_rpms([spec], out, target)
        assert len(built) == 1, built
        return built[0]

    def repo(self, directory: Path, packages: list[Package], extra_rpms: list[Path] = ()) -> Path:  # type: ignore[assignment]
        return exampleos.make_repo([self.build(p) for p in packages] + list(extra_rpms), directory)


# -- the CLI ---------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


COMMAND_BOUND = 600  # seconds: a hung command fails its test instead of hanging the suite


def reconcile(*args: str | Path) -> Result:
    argv = [RECONCILE, *map(str, args)]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=exampleos.sysroot_env(), check=False, timeout=COMMAND_BOUND
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"reconcile {' '.join(argv[1:])} did not end within {COMMAND_BOUND} s") from e
    return Result(proc.returncode, proc.stdout, proc.stderr)


# -- state snapshots -------------------------------------------------------------------------------
def ostree(*args: str | Path) -> str:
    return exampleos.run(["ostree", *map(str, args)]).stdout


def state_of(sysroot: Path, origin: Path | None = None) -> dict:
    """Everything a failed command must leave unchanged: deployments, origins, refs, the origin file."""
    deploy = sysroot / "ostree" / "deploy"
    origins = {p.name: p.read_bytes() for p in sorted(deploy.glob("*/deploy/*.origin"))}
    refs = ostree(f"--repo={sysroot / 'ostree' / 'repo'}", "refs", "--list")
    resolved = {r: ostree(f"--repo={sysroot / 'ostree' / 'repo'}", "rev-parse", r).strip() for r in refs.split()}
    return {
        "deployments": sorted(p.name for p in deploy.glob("*/deploy/*") if p.is_dir()),
        "origins": origins,
        "refs": resolved,
        "origin_file": origin.read_bytes() if origin else None,
    }


def rpm_query(tree: Path, *args: str) -> str:
    """rpm run against a tree's own database (Debian's rpm would look in ~/.rpmdb)."""
    proc = subprocess.run(
        ["rpm", "--root", str(tree), "--dbpath", "/usr/share/rpm", *args], capture_output=True, text=True, check=False
    )
    return proc.stdout

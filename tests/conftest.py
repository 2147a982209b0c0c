"""Fixtures: RPMs built by rpmbuild once per session, a base composed by reconcile itself, and a fresh OSTree
sysroot per test (tmpfs on /boot, bootloader none) that is checked with ostree's own tools at teardown."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from signing import SigningKey, make_signing_key, stop_agent
from support import Package, Result, RpmFactory, exampleos, ostree, reconcile, state_of

# -- test tiers -----------------------------------------------------------------------------------
# A test is marked by what it needs; each need has a probe, and a test whose probe fails is skipped with the
# reason, or fails when RECONCILE_TEST_TIERS=all (make test: CI must never skip a tier silently).
ROOT_FIXTURES = {"host", "base", "selinux_host", "selinux_bases"}  # sysroots (a tmpfs on /boot), bare repos


def _is_root() -> str | None:
    return None if os.geteuid() == 0 else "needs root: it mounts a tmpfs on each test sysroot's /boot"


def _has_libostree() -> str | None:
    probe = subprocess.run(
        [sys.executable, "-c", "import gi; gi.require_version('OSTree', '1.0'); from gi.repository import OSTree"],
        capture_output=True,
        check=False,
    )
    return None if probe.returncode == 0 else "needs libostree's GObject bindings (gir1.2-ostree-1.0, PyGObject)"


def _sandbox_works() -> str | None:
    """Scriptlets run in bubblewrap; a plain chroot (where / is not a mount point) cannot host it."""
    probe = subprocess.run(["bwrap", "--bind", "/", "/", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "needs a working bubblewrap (is / a mount point?)"


PROBES = {"root": _is_root, "ostree": _has_libostree, "sandbox": _sandbox_works}
needs_sandbox = pytest.mark.sandbox
needs_root = pytest.mark.root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("sandbox"):
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.ostree)


_probed: dict[str, str | None] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for need, probe in PROBES.items():
        if item.get_closest_marker(need) is None:
            continue
        if need not in _probed:
            _probed[need] = probe()
        reason = _probed[need]
        if reason is None:
            continue
        if os.environ.get("RECONCILE_TEST_TIERS") == "all":
            pytest.fail(f"{reason} (RECONCILE_TEST_TIERS=all: no tier may be skipped)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def keys(session_dir: Path) -> Iterator[dict[str, SigningKey]]:
    """Two throwaway signing keys: `trusted` (listed in the test repos' gpgkey) and `other`."""
    made = {name: make_signing_key(session_dir / "keys", name) for name in ("trusted", "other")}
    yield made
    for key in made.values():
        stop_agent(key)


@pytest.fixture(scope="session")
def rpms(session_dir: Path) -> RpmFactory:
    return RpmFactory(session_dir / "rpmbuild")


@pytest.fixture(scope="session")
def example_rpms(session_dir: Path) -> list[Path]:
    return exampleos.build_rpms(sorted(exampleos.SPECS.glob("*.spec")), session_dir / "example-rpmbuild")


@dataclass(frozen=True)
class ComposedBase:
    repo: Path
    ref: str
    commit: str


def compose_base(repo: Path, ref: str, reposdir: Path, packages: list[str]) -> ComposedBase:
    result = reconcile("compose", "--repo", repo, "--ref", ref, "--reposdir", reposdir, "--json", *packages)
    assert result.code == 0, result.stderr
    return ComposedBase(repo, ref, result.json()["commit"])


@pytest.fixture(scope="session")
def base(session_dir: Path, example_rpms: list[Path]) -> ComposedBase:
    """ExampleOS composed from its RPMs by `reconcile compose`."""
    repo = exampleos.make_repo(example_rpms, session_dir / "example-repo")
    reposdir = session_dir / "example-repos.d"
    exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
    return compose_base(session_dir / "compose", exampleos.BASE_REF, reposdir, exampleos.BASE_PACKAGES)


def base_checksum(dep: dict) -> str:
    """A status deployment's base: rpm-ostree's `base-checksum`, present only when it is layered."""
    return dep.get("base-checksum", dep["checksum"])


@dataclass
class Host:
    """A sysroot with the example base deployed, plus an origin file and a repos dir for it."""

    root: Path
    base: ComposedBase
    rpms: RpmFactory
    example_rpms: list[Path]

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def origin(self) -> Path:
        return self.root / "origin.toml"

    @property
    def reposdir(self) -> Path:
        return self.root / "yum.repos.d"

    @property
    def rpm_repo(self) -> Path:
        return self.root / "rpm-repo"

    @property
    def cachedir(self) -> Path:
        """The stateroot's /var/cache/reconcile: repo metadata, keys, headers and downloaded packages."""
        return self.sysroot / "ostree" / "deploy" / exampleos.OSNAME / "var" / "cache" / "reconcile"

    def downloaded(self) -> list[Path]:
        """Package files in the download cache (kept only until a deployment has used them)."""
        return sorted(p for p in (self.cachedir / "packages").rglob("*") if p.is_file())

    def publish(self, packages: list[Package], examples: bool = True) -> Path:
        """An rpm-md repo with the example RPMs plus `packages`, configured as [test]."""
        if self.rpm_repo.exists():
            for old in self.rpm_repo.glob("*.rpm"):
                old.unlink()
        self.rpms.repo(self.rpm_repo, packages, self.example_rpms if examples else [])
        exampleos.write_repo_file(self.reposdir, "test", f"file://{self.rpm_repo}")
        return self.rpm_repo

    def add_base(self, name: str, extra: list[Package]) -> ComposedBase:
        """Compose example/NAME (see `compose`), into the sysroot."""
        base = self.compose(name, extra)
        exampleos.pull_base(self.sysroot, base.repo, base.ref)
        return base

    def compose(self, name: str, extra: list[Package]) -> ComposedBase:
        """example/NAME from the example packages plus `extra` (same names replace), outside the sysroot."""
        replaced = {p.name for p in extra}
        rpms = [r for r in self.example_rpms if r.name.rsplit("-", 2)[0] not in replaced]
        repo = exampleos.make_repo(rpms + [self.rpms.build(p) for p in extra], self.root / f"{name}-repo")
        reposdir = self.root / f"{name}.repos.d"
        exampleos.write_repo_file(reposdir, "exampleos", f"file://{repo}")
        names = list(dict.fromkeys([*exampleos.BASE_PACKAGES, *(p.name for p in extra)]))
        return compose_base(self.root / f"compose-{name}", f"example/{name}", reposdir, names)

    def write_origin(self, requested: list[str], base: str = exampleos.BASE_REF, extra: str = "") -> None:
        items = ", ".join(f'"{r}"' for r in requested)
        self.origin.write_text(f'[origin]\nbaserefspec = "{base}"\n\n[packages]\nrequested = [{items}]\n{extra}')

    def run(self, command: str, *args: str | Path) -> Result:
        opts: list[str | Path] = ["--sysroot", self.sysroot]
        if command in ("plan", "apply"):
            opts += ["--origin", self.origin, "--reposdir", self.reposdir]
        if command == "apply":
            opts.append("--yes")
        return reconcile(command, *opts, *args)

    def apply_ok(self, *args: str) -> Result:
        result = self.run("apply", *args)
        assert result.code == 0, result.stderr
        return result

    def status(self) -> dict:
        result = self.run("status", "--json")
        assert result.code == 0, result.stderr
        return result.json()

    def default(self) -> dict:
        return self.status()["deployments"][0]

    def deployed_origin(self, dep: dict | None = None) -> Path:
        """The origin keyfile libostree keeps beside a deployment (the default one unless `dep`)."""
        dep = dep or self.default()
        return self.deployment_path(dep).parent / f"{dep['checksum']}.{dep['serial']}.origin"

    def deployment_path(self, dep: dict) -> Path:
        return self.sysroot / "ostree" / "deploy" / dep["osname"] / "deploy" / f"{dep['checksum']}.{dep['serial']}"

    def state(self) -> dict:
        return state_of(self.sysroot, self.origin if self.origin.exists() else None)

    @contextlib.contextmanager
    def sysroot_locked(self) -> Iterator[None]:
        """Another process holds the sysroot lock (libostree's own) until the block ends."""
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import gi, sys, time; gi.require_version('OSTree', '1.0'); from gi.repository import Gio, OSTree; "
                "s = OSTree.Sysroot.new(Gio.File.new_for_path(sys.argv[1])); s.load(None); s.lock(); "
                "print('locked', flush=True); time.sleep(120)",
                str(self.sysroot),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=exampleos.sysroot_env(),
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            yield
        finally:
            holder.kill()
            holder.wait()

    def check_with_ostree(self) -> None:
        """ostree's own view must agree with ours, and the repo must pass fsck."""
        listed = ostree("admin", f"--sysroot={self.sysroot}", "status")
        ours = [f"{d['checksum']}.{d['serial']}" for d in self.status()["deployments"]]
        theirs = re.findall(r"\b([0-9a-f]{64}\.\d+)", listed)
        assert theirs == ours, listed
        fsck = ostree("fsck", f"--repo={self.sysroot / 'ostree' / 'repo'}")
        assert "no errors found" in fsck, fsck


@contextlib.contextmanager
def hosted(root: Path, base: ComposedBase, rpms: RpmFactory, example_rpms: list[Path]) -> Iterator[Host]:
    """A Host in `root`; after the test, ostree must agree with reconcile and fsck must pass."""
    h = Host(root, base, rpms, example_rpms)
    exampleos.init_sysroot(h.sysroot, base.repo, base.ref)
    try:
        yield h
        h.check_with_ostree()
    finally:
        exampleos.teardown_sysroot(h.sysroot)


@pytest.fixture
def host(tmp_path: Path, base: ComposedBase, rpms: RpmFactory, example_rpms: list[Path]) -> Iterator[Host]:
    with hosted(tmp_path, base, rpms, example_rpms) as h:
        yield h

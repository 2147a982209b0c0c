"""Benchmark data, generated deterministically from a seed and cached under build/bench/<size>-<seed>/.

- bases of N files composed from RPMs by `reconcile compose` (bench-base-NNN packages on ExampleOS);
- a 5,000-file package (bench-big), small layering targets (bench-layer-NNN) and applications with
  libraries (bench-app-NN, bench-applib-N), all built by rpmbuild;
- an rpm-md repo holding those real RPMs plus synthetic metadata for tens of thousands more packages with a
  realistic dependency structure (soname provides, versioned requires, rich and file dependencies);
- a Fedora-sized base: the largest bench base plus bench-fedora-NNNN packages with Fedora's header weight
  (benchmarks/fedora.py), in a repo of their own that only its compose reads, so the cases' repo is unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import exampleos  # noqa: E402

from benchmarks import fedora  # noqa: E402

RECONCILE = str(Path(sys.executable).parent / "reconcile")
FORMAT_VERSION = 4  # bump to regenerate cached data after changing the generators


@dataclass(frozen=True)
class Size:
    base_packages: int
    files_per_package: int
    big_files: int
    big_avg_bytes: int
    repo_packages: int
    requests: int
    layer_counts: tuple[int, ...]
    base_fractions: tuple[float, ...]
    repetitions: int
    fedora_packages: int  # bench-fedora-NNNN packages added to the largest base for the Fedora-sized one
    fedora_mean_files: int
    fedora_mean_changelog: int  # %changelog entries


SIZES = {
    "full": Size(200, 500, 5000, 18000, 60000, 20, (1, 10, 100), (0.1, 0.5, 1.0), 5, 1400, 68, 150),
    "quick": Size(8, 100, 400, 2000, 1500, 4, (1, 4), (0.5, 1.0), 1, 6, 12, 4),
}
FEDORA = float("inf")  # the "fraction" naming the Fedora-sized base: int(FEDORA * 100) fails loudly
FEDORA_REF = "bench/base-fedora"


@dataclass(frozen=True)
class BaseStats:
    """Measured from a composed commit: what its rpmdb lists, its non-directory entries, the rpmdb's size."""

    packages: int
    files: int
    rpmdb_bytes: int


@dataclass(frozen=True)
class BenchData:
    root: Path
    size: Size
    arch: str

    @property
    def compose_repo(self) -> Path:
        return self.root / "compose"

    @property
    def rpm_repo(self) -> Path:
        return self.root / "rpm-repo"

    @property
    def reposdir(self) -> Path:
        return self.root / "repos.d"

    @property
    def fedora_repo(self) -> Path:
        return self.root / "rpm-repo-fedora"

    @property
    def fedora_reposdir(self) -> Path:
        return self.root / "repos-fedora.d"

    @property
    def big_rpm(self) -> Path:
        return next(self.rpm_repo.glob("bench-big-*.rpm"))

    @property
    def all_bases(self) -> tuple[float, ...]:
        """The bench bases, smallest first, then the Fedora-sized one."""
        return (*self.size.base_fractions, FEDORA)

    def base_name(self, fraction: float) -> str:
        return "fedora" if fraction == FEDORA else str(int(fraction * 100))

    def base_ref(self, fraction: float) -> str:
        return FEDORA_REF if fraction == FEDORA else f"bench/base-{int(fraction * 100)}"

    def base_files(self, fraction: float) -> int:
        """The bench packages' files (ExampleOS aside); for the Fedora-sized base, measured from its commit."""
        if fraction == FEDORA:
            return self.stats(FEDORA).files
        return int(self.size.base_packages * fraction) * self.size.files_per_package

    def stats(self, fraction: float) -> BaseStats:
        return BaseStats(**json.loads((self.root / "base-stats.json").read_text())[self.base_ref(fraction)])

    @property
    def layer_names(self) -> list[str]:
        return [f"bench-layer-{i:03d}" for i in range(max(self.size.layer_counts))]

    @property
    def app_names(self) -> list[str]:
        return [f"bench-app-{i:02d}" for i in range(self.size.requests)]


def prepare(size_name: str, seed: int, log: object = print) -> BenchData:
    size = SIZES[size_name]
    root = ROOT / "build" / "bench" / f"{size_name}-{seed}"
    data = BenchData(root, size, exampleos.run(["uname", "-m"]).stdout.strip())
    stamp = root / f".complete-{FORMAT_VERSION}"
    if stamp.exists():
        return data
    unmount_below(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(seed)
    started = time.monotonic()
    log(f"generating benchmark data in {root} (seed {seed}); this is done once")  # type: ignore[operator]
    rpms = _build_rpms(data, rng)
    exampleos.make_repo(rpms, data.rpm_repo)
    _add_synthetic_packages(data, rng)
    exampleos.write_repo_file(data.reposdir, "bench", f"file://{data.rpm_repo}")
    for fraction in size.base_fractions:
        count = int(size.base_packages * fraction)
        packages = [*exampleos.BASE_PACKAGES, *(f"bench-base-{i:03d}" for i in range(count))]
        argv = [RECONCILE, "compose", "--repo", str(data.compose_repo), "--ref", data.base_ref(fraction)]
        exampleos.run([*argv, "--reposdir", str(data.reposdir), *packages])
    log(f"bench bases composed in {time.monotonic() - started:.0f} s")  # type: ignore[operator]
    _prepare_fedora(data, seed, log)
    stats = {data.base_ref(f): measure_base(data.compose_repo, data.base_ref(f)).__dict__ for f in data.all_bases}
    (root / "base-stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    stamp.write_text(f"{time.monotonic() - started:.0f} s\n")
    log(f"benchmark data generated in {time.monotonic() - started:.0f} s")  # type: ignore[operator]
    return data


def _prepare_fedora(data: BenchData, seed: int, log: object) -> None:
    """Build the bench-fedora packages (2 rpmbuilds at a time) and compose the largest base plus them."""
    started = time.monotonic()
    size = data.size
    rng = random.Random(f"{seed}/fedora")  # its own stream: the other data stays what it was before it
    in_every_base = max(1, int(size.base_packages * min(size.base_fractions)))
    packages = fedora.plan_packages(size.fedora_packages, size.fedora_mean_files, data.arch, rng, in_every_base)
    src, specs = data.root / "src-fedora", data.root / "specs-fedora"
    specs.mkdir(parents=True)
    jobs = [(pkg, fedora.write_spec(pkg, src, specs, size.fedora_mean_changelog, rng)) for pkg in packages]

    def build(job: tuple[fedora.FedoraPackage, Path]) -> list[Path]:
        pkg, spec = job
        fedora.write_tree(pkg, src / pkg.name)
        try:
            return exampleos.build_rpms([spec], data.root / "rpmbuild-fedora" / pkg.name)
        finally:
            fedora.remove_tree(pkg, src)

    with ThreadPoolExecutor(max_workers=2) as pool:
        rpms = [rpm for built in pool.map(build, jobs) for rpm in built]
    shutil.rmtree(src, ignore_errors=True)
    log(f"built {len(rpms)} bench-fedora RPMs in {time.monotonic() - started:.0f} s")  # type: ignore[operator]
    exampleos.make_repo(rpms, data.fedora_repo)
    shutil.rmtree(data.root / "rpmbuild-fedora")  # the repo holds copies
    exampleos.write_repo_file(data.fedora_reposdir, "bench", f"file://{data.rpm_repo}")
    exampleos.write_repo_file(data.fedora_reposdir, "bench-fedora", f"file://{data.fedora_repo}")
    names = [*exampleos.BASE_PACKAGES, *(f"bench-base-{i:03d}" for i in range(size.base_packages))]
    argv = [RECONCILE, "compose", "--repo", str(data.compose_repo), "--ref", FEDORA_REF]
    exampleos.run([*argv, "--reposdir", str(data.fedora_reposdir), *names, *(p.name for p in packages)])
    log(f"Fedora-sized base built and composed in {time.monotonic() - started:.0f} s")  # type: ignore[operator]


def measure_base(repo: Path, ref: str) -> BaseStats:
    listing = exampleos.run(["ostree", f"--repo={repo}", "ls", "-R", ref, "/"]).stdout.splitlines()
    files = sum(1 for line in listing if line and not line.startswith("d"))
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as db:
        argv = ["ostree", f"--repo={repo}", "cat", ref, "/usr/share/rpm/rpmdb.sqlite"]
        subprocess.run(argv, stdout=db, check=True)
        conn = sqlite3.connect(f"file:{db.name}?mode=ro", uri=True)
        try:
            (packages,) = conn.execute("SELECT count(*) FROM Packages").fetchone()
        finally:
            conn.close()
        return BaseStats(packages, files, Path(db.name).stat().st_size)


def unmount_below(root: Path) -> None:
    """Sysroots left by an interrupted run have a tmpfs on /boot; unmount before deleting."""
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for target in sorted((t for t in targets if t.startswith(f"{root}/")), key=len, reverse=True):
        exampleos.run(["umount", target])


# -- RPMs ------------------------------------------------------------------------------------------
def _spec(
    name: str, version: str, source: Path | None, owned: list[str], requires: list[str], provides: list[str]
) -> str:
    lines = [
        f"Name: {name}",
        f"Version: {version}",
        "Release: 1",
        "Summary: benchmark package",
        "License: MIT",
        "AutoReqProv: no",
        "%global debug_package %{nil}",
        "%global __os_install_post %{nil}",
        "%global _binary_payload w1.gzdio",
    ]
    lines += [] if provides else ["BuildArch: noarch"]
    lines += [f"Requires: {r}" for r in requires] + [f"Provides: {p}" for p in provides]
    lines += ["%description", "benchmark data", "%install", "mkdir -p %{buildroot}"]
    lines += [f"cp -a {source}/. %{{buildroot}}/"] if source is not None else []
    lines += ["%files", *owned]
    return "\n".join(lines) + "\n"


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _build_rpms(data: BenchData, rng: random.Random) -> list[Path]:
    size, src, specs = data.size, data.root / "src", data.root / "specs"
    specs.mkdir(parents=True)
    jobs: list[tuple[Path, str]] = []

    def add(name: str, version: str, files: dict[str, bytes], requires: list[str], provides: list[str]) -> None:
        source = _tree(src / f"{name}-{version}", files)
        # The package owns its top directories, so the payload holds everything below them.
        owned = sorted({"/" + "/".join(rel.split("/")[:3]) for rel in files})
        spec = specs / f"{name}-{version}.spec"
        spec.write_text(_spec(name, version, source, owned, requires, provides))
        jobs.append((spec, f"{name}-{version}"))

    for i in range(size.base_packages):
        files = {
            f"usr/share/bench/{i:03d}/d{j // 50:02d}/f{j:03d}": f"bench {i} {j}\n".encode() * rng.randint(1, 40)
            for j in range(size.files_per_package)
        }
        requires = [f"libbench{i - 1:03d}.so.1()(64bit)"] if i else ["example-filesystem"]
        add(f"bench-base-{i:03d}", "1.0", files, requires, [f"libbench{i:03d}.so.1()(64bit)"])
    big = {
        f"usr/share/bench-big/d{j // 100:02d}/f{j:04d}": rng.randbytes(rng.randint(1, 2 * size.big_avg_bytes))
        for j in range(size.big_files)
    }
    add("bench-big", "1.0", big, [], [])
    # Layering targets depend on libraries every base size has, so each base layers the same packages.
    in_every_base = max(1, int(size.base_packages * min(size.base_fractions)))
    for i, name in enumerate(data.layer_names):
        files = {f"usr/share/bench-layer/{i:03d}/f{j}": f"layer {i} {j}\n".encode() for j in range(10)}
        add(name, "1.0", files, [f"libbench{rng.randrange(in_every_base):03d}.so.1()(64bit)"], [])
    for i in range(5):
        for version in ("1.0", "2.0"):
            add(f"bench-applib-{i}", version, {f"usr/share/bench-applib/{i}/{version}": b"lib\n"}, [], [])
    for i, name in enumerate(data.app_names):
        requires = [f"bench-applib-{i % 5} >= 1.0", f"libbench{rng.randrange(in_every_base):03d}.so.1()(64bit)"]
        add(name, "1.0", {f"usr/share/bench-app/{i}/app": b"app\n"}, requires, [])

    def build(job: tuple[Path, str]) -> list[Path]:
        spec, name = job
        return exampleos.build_rpms([spec], data.root / "rpmbuild" / name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        built = [rpm for rpms in pool.map(build, jobs) for rpm in rpms]
    shutil.rmtree(src)
    return built + _example_rpms(data)


def _example_rpms(data: BenchData) -> list[Path]:
    return exampleos.build_rpms(sorted(exampleos.SPECS.glob("*.spec")), data.root / "rpmbuild" / "example")


# -- synthetic metadata -----------------------------------------------------------------------------
_NS = 'xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm"'


def _entry(name: str, flags: str = "", version: str = "") -> str:
    if not flags:
        return f'<rpm:entry name="{name}"/>'
    return f'<rpm:entry name="{name}" flags="{flags}" epoch="0" ver="{version}" rel="1"/>'


def _synthetic(i: int, version: str, rng: random.Random, arch: str, base_packages: int) -> str:
    name = f"synth-{i:05d}"
    provides = [_entry(name, "EQ", version)]
    if i % 3 == 0:
        provides.append(_entry(f"libsynth{i:05d}.so.1()(64bit)"))
    requires = []
    for _ in range(rng.randint(0, 5) if i else 0):
        j = rng.randrange(i)
        kind = rng.random()
        if kind < 0.35 and j % 3 == 0:
            requires.append(_entry(f"libsynth{j:05d}.so.1()(64bit)"))
        elif kind < 0.6:
            requires.append(_entry(f"synth-{j:05d}", "GE", "1.0"))
        elif kind < 0.75:
            k = rng.randrange(i)
            requires.append(f'<rpm:entry name="(synth-{j:05d} or synth-{k:05d})"/>')
        elif kind < 0.85:
            requires.append(_entry(f"/usr/bin/synth-{j:05d}"))
        else:
            requires.append(_entry(f"libbench{rng.randrange(base_packages):03d}.so.1()(64bit)"))
    checksum = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
    return (
        f'<package type="rpm"><name>{name}</name><arch>{arch}</arch>'
        f'<version epoch="0" ver="{version}" rel="1"/><checksum type="sha256" pkgid="YES">{checksum}</checksum>'
        f"<summary>synthetic</summary><description>synthetic</description><packager/><url/>"
        f'<time file="0" build="0"/><size package="1000" installed="2000" archive="2100"/>'
        f'<location href="synth/{name}-{version}-1.{arch}.rpm"/><format><rpm:license>MIT</rpm:license>'
        f"<rpm:provides>{''.join(provides)}</rpm:provides><rpm:requires>{''.join(requires)}</rpm:requires>"
        f"<file>/usr/bin/{name}</file></format></package>"
    )


def _add_synthetic_packages(data: BenchData, rng: random.Random) -> None:
    """Merge synthetic packages into the primary metadata createrepo_c wrote for the real RPMs."""
    repodata = data.rpm_repo / "repodata"
    primary = next(repodata.glob("*primary.xml.gz"))
    real = re.findall(r"<package type=\"rpm\">.*?</package>", gzip.decompress(primary.read_bytes()).decode(), re.S)
    count = max(0, data.size.repo_packages - len(real))
    synthetic = []
    for i in range(count):
        synthetic.append(_synthetic(i, "1.0", rng, data.arch, data.size.base_packages))
        if i % 10 == 0:
            synthetic.append(_synthetic(i, "1.1", rng, data.arch, data.size.base_packages))
    packages = real + synthetic
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<metadata {_NS} packages="{len(packages)}">\n'
    xml += "\n".join(packages) + "\n</metadata>\n"
    raw = xml.encode()
    compressed = gzip.compress(raw, compresslevel=6, mtime=0)
    for old in repodata.iterdir():
        old.unlink()
    digest = hashlib.sha256(compressed).hexdigest()
    (repodata / f"{digest}-primary.xml.gz").write_bytes(compressed)
    repomd = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo">'
        f"<revision>{len(packages)}</revision>"
        f'<data type="primary"><checksum type="sha256">{digest}</checksum>'
        f'<open-checksum type="sha256">{hashlib.sha256(raw).hexdigest()}</open-checksum>'
        f'<location href="repodata/{digest}-primary.xml.gz"/><timestamp>1</timestamp>'
        f"<size>{len(compressed)}</size><open-size>{len(raw)}</open-size></data></repomd>\n"
    )
    (repodata / "repomd.xml").write_text(repomd)

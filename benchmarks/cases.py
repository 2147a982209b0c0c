"""P1-P6 of issue 6, each side by side with its baseline in the same run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import reconcile
from benchmarks.data import FEDORA, RECONCILE, BenchData, exampleos, unmount_below
from benchmarks.fetch import COUNT, DELAY, fetch_comparison
from benchmarks.measure import Series, apply_timings, peaks_of, repeat, run, timed
from benchmarks.remote import update_comparison

OSNAME = "bench"
DEPLOY_STEPS = ("Deploying", "Cleaning up")


@dataclass
class Row:
    id: str
    what: str
    baseline_name: str
    ours: Series | None = None
    baseline: Series | None = None
    target: str = ""
    ratio: float | None = None
    met: bool | None = None
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, data: BenchData, log: Callable[[str], None]) -> None:
        self.data = data
        self.log = log
        self.reps = data.size.repetitions
        self.work = data.root / "work"
        self.sysroots: list[Path] = []

    # -- fixtures -------------------------------------------------------------------------------------
    def sysroot(self, fraction: float, name: str = "") -> Path:
        path = self.work / f"sysroot-{name or self.data.base_name(fraction)}"
        exampleos.teardown_sysroot(path)
        exampleos.init_sysroot(path, self.data.compose_repo, self.data.base_ref(fraction), OSNAME)
        self.sysroots.append(path)
        return path

    def empty_sysroot(self, name: str) -> Path:
        """A sysroot with the stateroot and nothing deployed (a tmpfs /boot, no bootloader)."""
        path = self.work / f"sysroot-{name}"
        exampleos.teardown_sysroot(path)
        path.mkdir(parents=True)
        run(["ostree", "admin", "init-fs", "--modern", str(path)])
        (path / "boot").mkdir(exist_ok=True)
        run(["mount", "-t", "tmpfs", "-o", "size=64m", "reconcile-sysroot-boot", str(path / "boot")])
        run(["ostree", f"--repo={path / 'ostree' / 'repo'}", "config", "set", "sysroot.bootloader", "none"])
        run(["ostree", "admin", f"--sysroot={path}", "os-init", OSNAME])
        self.sysroots.append(path)
        return path

    def origin(self, requested: list[str], fraction: float) -> Path:
        path = self.work / "origin.toml"
        items = ", ".join(f'"{r}"' for r in requested)
        path.write_text(
            f'[origin]\nbaserefspec = "{self.data.base_ref(fraction)}"\n[packages]\nrequested = [{items}]\n'
        )
        return path

    def reconcile(self, command: str, sysroot: Path, requested: list[str], fraction: float) -> list[str]:
        argv = [RECONCILE, command, "--sysroot", str(sysroot), "--origin", str(self.origin(requested, fraction))]
        argv += ["--reposdir", str(self.data.reposdir), "--json"]
        return [*argv, "--yes"] if command == "apply" else argv

    def apply(self, sysroot: Path, requested: list[str], fraction: float = 1.0) -> tuple[float, dict[str, float]]:
        seconds, proc = timed(self.reconcile("apply", sysroot, requested, fraction))
        return seconds, apply_timings(proc)

    def to_base(self, sysroot: Path, fraction: float = 1.0) -> Callable[[], None]:
        return lambda: self.apply(sysroot, [], fraction) and None

    def up_to_commit(self, sysroot: Path, requested: list[str], fraction: float = 1.0) -> float:
        seconds, steps = self.apply(sysroot, requested, fraction)
        return seconds - sum(steps.get(s, 0.0) for s in DEPLOY_STEPS)

    def teardown(self) -> None:
        for path in self.sysroots:
            exampleos.teardown_sysroot(path)
        unmount_below(self.work)
        shutil.rmtree(self.work, ignore_errors=True)

    # -- P1..P6 ---------------------------------------------------------------------------------------
    def p1_noop_plan(self, sysroot: Path) -> Row:
        layer = self.data.layer_names[:1]
        self.apply(sysroot, layer)
        plan = self.reconcile("plan", sysroot, layer, 1.0)
        first, _proc = timed(plan)  # plans for real and records the answer; the next ones are answered from it
        ours = repeat(self.reps + 2, lambda: timed(plan)[0])
        status = ["ostree", "admin", f"--sysroot={sysroot}", "status"]
        baseline = repeat(self.reps + 2, lambda: timed(status)[0])
        ratio = ours.median / baseline.median
        row = Row("P1", "no-op `reconcile plan`, metadata cached", "`ostree admin status`", ours, baseline)
        row.target, row.ratio = "≤ 5× baseline and ≤ 0.1 s", ratio
        row.met = ratio <= 5 and ours.median <= 0.1
        row.notes.append(f"the first no-op plan after the apply (planned for real, then recorded): {first:.3f} s")
        return row

    def p2_layer_one(self) -> Row:
        """On the Fedora-sized base: the checkout route's cost grows with the base, layering's must not."""
        sysroot = self.sysroot(FEDORA)
        layer = self.data.layer_names[:1]
        self.apply(sysroot, layer, FEDORA)  # the package is in the cache now: both sides start from a package commit
        ours = repeat(self.reps, lambda: self.up_to_commit(sysroot, layer, FEDORA), self.to_base(sysroot, FEDORA))
        repo = sysroot / "ostree" / "repo"
        pkg = run(["ostree", f"--repo={repo}", "rev-parse", f"reconcile/pkg/{layer[0]}/1.0-1.noarch"]).stdout.strip()
        base = run(["ostree", f"--repo={repo}", "rev-parse", self.data.base_ref(FEDORA)]).stdout.strip()
        checkout = self.work / "checkout"

        def checkout_path() -> float:
            start = time.perf_counter()
            run(["ostree", f"--repo={repo}", "checkout", "-H", base, str(checkout)])
            run(["ostree", f"--repo={repo}", "checkout", "-H", "--union", pkg, str(checkout)])
            run(
                [
                    "ostree",
                    f"--repo={repo}",
                    "commit",
                    "--link-checkout-speedup",
                    "-b",
                    "bench/tmp",
                    f"--tree=dir={checkout}",
                ]
            )
            return time.perf_counter() - start

        baseline = repeat(self.reps, checkout_path, lambda: shutil.rmtree(checkout, ignore_errors=True))
        shutil.rmtree(checkout, ignore_errors=True)
        run(["ostree", f"--repo={repo}", "refs", "--delete", "bench/tmp"])
        what = "layer 1 small package onto the Fedora-sized base, up to the layered commit"
        p2 = Row("P2", what, "checkout -H + union + commit")
        p2.ours, p2.baseline, p2.target = ours, baseline, "≥ 15× faster"
        p2.ratio = baseline.median / ours.median
        p2.met = p2.ratio >= 15
        exampleos.teardown_sysroot(sysroot)
        return p2

    def p2b_whole_apply(self, sysroot: Path) -> Row:
        """On the 100k-file base: a deploy of the Fedora-sized tree takes ~20 s a sample on this disk."""
        layer = self.data.layer_names[:1]
        self.apply(sysroot, layer)
        whole = repeat(self.reps, lambda: self.apply(sysroot, layer)[0], self.to_base(sysroot))
        # Both sides start from the same state: the base deployed, a layered deployment as its rollback. ostree
        # deploys that rollback's commit (removing the old deployment, as apply does); apply builds its own.
        layered_commit: list[str] = []

        def back_to_base() -> None:
            self.to_base(sysroot)()
            status = run(["ostree", "admin", f"--sysroot={sysroot}", "status"]).stdout.split()
            deployments = [w for w in status if w.count(".") == 1 and len(w.split(".")[0]) == 64]
            layered_commit[:] = [deployments[1].rsplit(".", 1)[0]]

        def plain_deploy() -> float:
            return timed(["ostree", "admin", f"--sysroot={sysroot}", "deploy", f"--os={OSNAME}", *layered_commit])[0]

        plain = repeat(self.reps, plain_deploy, back_to_base)
        run(["ostree", "admin", f"--sysroot={sysroot}", "undeploy", "0"])  # its origin is not reconcile's
        what = "whole `apply` of 1 package onto the 100k-file base, deploy included"
        p2b = Row("P2b", what, "`ostree admin deploy` of the same commit")
        p2b.ours, p2b.baseline, p2b.target = whole, plain, "≤ 1.3× baseline"
        p2b.ratio = whole.median / plain.median
        p2b.met = p2b.ratio <= 1.3
        return p2b

    def p3_import(self) -> Row:
        from reconcile.ostree import Repo
        from reconcile.pkgcache import PackageCache
        from reconcile.rpm.nevra import Nevra
        from reconcile.rpm.payload import Owners

        rpm = self.data.big_rpm
        scratch = self.work / "import"

        def ours_once() -> float:
            shutil.rmtree(scratch, ignore_errors=True)
            repo = Repo.open_or_create(scratch)
            repo.gi.set_disable_fsync(True)  # cpio does not fsync either
            cache = PackageCache(repo, Owners({}, {}), None, "layer")
            start = time.perf_counter()
            with repo.transaction():
                cache.import_rpm(rpm, Nevra("bench-big", 0, "1.0", "1", "noarch"), "sha256:-", "bench")
            return time.perf_counter() - start

        extract = self.work / "cpio"

        def baseline_once() -> float:
            shutil.rmtree(extract, ignore_errors=True)
            extract.mkdir(parents=True)
            return timed(["sh", "-c", f"rpm2cpio {rpm} | cpio -idm --quiet"], cwd=extract)[0]

        ours = repeat(self.reps, ours_once)
        baseline = repeat(self.reps, baseline_once)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(extract, ignore_errors=True)
        mib = rpm_payload_mib(extract_size(rpm))
        row = Row(
            "P3", f"import the {self.data.size.big_files}-file package ({mib:.0f} MiB)", "`rpm2cpio \\| cpio -idm`"
        )
        row.ours, row.baseline, row.target = ours, baseline, "≥ 0.7× baseline throughput"
        row.ratio = baseline.median / ours.median
        row.met = row.ratio >= 0.7
        return row

    def p4_resolve(self, sysroot: Path) -> Row:
        apps = self.data.app_names
        plan = self.reconcile("plan", sysroot, apps, 1.0)
        run(plan)  # warm: metadata, .solv cache and headers
        ours = repeat(self.reps, lambda: timed(plan)[0])
        root = self.work / "dnfroot"
        shutil.rmtree(root, ignore_errors=True)
        (root / "root/.rpmdb").mkdir(parents=True)
        deploy = next(d for d in (sysroot / f"ostree/deploy/{OSNAME}/deploy").iterdir() if d.is_dir())
        shutil.copy(deploy / "usr/share/rpm/rpmdb.sqlite", root / "root/.rpmdb/rpmdb.sqlite")
        dnf = ["dnf", f"--installroot={root}", "--releasever=1", f"--setopt=reposdir={self.data.reposdir}"]
        dnf.append("--disableplugin=local")  # dnf-plugins-core's local plugin adds a repo that fails gpgcheck
        dnf += [f"--setopt=cachedir={self.work / 'dnfcache'}", "--setopt=install_weak_deps=True", "-q"]
        exampleos.run([*dnf, "makecache"])
        install = [*dnf, "-C", "install", "--assumeno", *apps]
        check = subprocess.run(install, capture_output=True, text=True, env=exampleos.sysroot_env(), check=False)
        if "Operation aborted" not in check.stdout + check.stderr:  # --assumeno's way to say it resolved
            raise RuntimeError(f"the dnf baseline did not resolve: {check.stdout}{check.stderr}")
        baseline = repeat(self.reps, lambda: _timed_any(install))
        row = Row(
            "P4",
            f"resolve {len(apps)} requests, {self.data.size.repo_packages:,}-package repo, warm",
            "`dnf install --assumeno`",
        )
        row.ours, row.baseline, row.target = ours, baseline, "≤ 0.8× baseline"
        row.ratio = ours.median / baseline.median
        row.met = row.ratio <= 0.8
        return row

    def p5_memory(self, sysroot: Path) -> Row:
        """Each sample a fresh process, its own VmHWM (benchmarks/peaks.py), the package cache cold."""
        own: list[float] = []
        children: dict[str, int] = {}
        for _ in range(max(self.reps, 5)):
            self.to_base(sysroot)()
            self._drop_package_refs(sysroot, "bench-big")
            # The origin file is rewritten by to_base: the argv (and its origin) after it.
            peaks = peaks_of(self.reconcile("apply", sysroot, [*self.data.layer_names[:1], "bench-big"], 1.0))
            if "rpm" not in {name for name, _kib in peaks.children}:
                raise RuntimeError("the P5 apply layered nothing (no rpmdb was written)")
            own.append(peaks.own_kib / 1024)
            for name, kib in peaks.children:
                children[name] = max(children.get(name, 0), kib)
        mib = Series(own)
        row = Row("P5", "peak RSS of `apply` (the 5,000-file package, cold) on the largest base, reconcile's own", "—")
        row.target, row.met = "≤ 150 MiB", mib.median <= 150
        row.notes.append(f"{mib.min:.0f} / {mib.median:.0f} MiB")
        row.notes.append(
            f"{len(own)} fresh processes; each child's own peak (largest): "
            + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in sorted(children.items(), key=lambda c: -c[1]))
        )
        return row

    def _drop_package_refs(self, sysroot: Path, name: str) -> None:
        """A cold import: no package-cache commit of `name` left by an earlier sample (or a rollback)."""
        repo = f"--repo={sysroot / 'ostree' / 'repo'}"
        for ref in run(["ostree", repo, "refs"]).stdout.split():
            if f"/{name}/" in ref:
                run(["ostree", repo, "refs", "--delete", ref])

    def p6_growth(self, sysroot: Path) -> Row:
        row = Row("P6", "apply time up to the commit, by layered packages and by base size", "—")
        counts = self.data.size.layer_counts
        times = {}
        for n in counts:
            names = self.data.layer_names[:n]
            self.to_base(sysroot)()
            self.apply(sysroot, names)  # import once; measure the warm rebuild
            times[n] = repeat(self.reps, partial(self.up_to_commit, sysroot, names), self.to_base(sysroot))
        # Linear: every count lies on the line through the smallest and largest (within the ±20% noise band
        # used for the base), and that line does not fall. Minima, as for the base sizes below.
        first, last = counts[0], counts[-1]
        slope = (times[last].min - times[first].min) / (last - first)
        off_line = max(abs(times[n].min / (times[first].min + slope * (n - first)) - 1) for n in counts)
        row.notes.append("layered " + ", ".join(f"{n}: {times[n].min:.2f} / {times[n].median:.2f} s" for n in counts))
        layer = self.data.layer_names[:1]
        fractions = self.data.all_bases  # the bench bases, then the Fedora-sized one
        others = {f: self.sysroot(f) for f in fractions}  # fresh sysroots alike (this replaces `sysroot`)
        for f, other in others.items():
            self.apply(other, layer, f)
        by_base = {f: Series() for f in fractions}
        # Round-robin over the bases: a slow phase of the disk then hits every base, not just one.
        for _ in range(self.reps + 2):
            for f, other in others.items():
                sample = repeat(1, partial(self.up_to_commit, other, layer, f), self.to_base(other, f))
                by_base[f].seconds += sample.seconds
        for other in others.values():
            exampleos.teardown_sysroot(other)
        # The disk here is noisy (syncfs can take 0.1 s or 0.3 s); the minimum is the steadiest estimate of cost.
        smallest = by_base[fractions[0]].min
        spread = max(abs(s.min / smallest - 1) for s in by_base.values())
        row.notes.append(
            "base "
            + ", ".join(
                f"{self.data.base_files(f):,} files{' (Fedora-sized)' if f == FEDORA else ''}: "
                f"{s.min:.2f} / {s.median:.2f} s"
                for f, s in by_base.items()
            )
            + " (min / median)"
        )
        linear = slope >= 0 and off_line <= 0.2
        row.target = "linear in layered content; flat (±20%) in base size"
        row.ratio, row.met = spread, linear and spread <= 0.2
        row.notes.append(
            f"per added package: {slope * 1000:.1f} ms; layered counts off that line by at most {off_line:.0%}; "
            f"base spread ±{spread:.0%} (of the minima)"
        )
        return row

    def p8_remote_update(self) -> Row:
        # A whole pull of the largest base over a Python HTTP server takes minutes: two samples are enough here.
        costs = update_comparison(self.data, self.work, self.empty_sysroot, min(self.reps, 2))
        largest = costs[-1]
        row = Row("P8", "`plan --update` of a remote base: bytes and time, by base size", "`ostree pull` of the commit")
        row.ours, row.baseline = largest.plan, largest.pull
        row.ratio = largest.plan_bytes / max(1, largest.pull_bytes)
        growth = largest.plan_bytes / max(1, costs[0].plan_bytes)
        row.target = (
            "fetches the commit and the files planning reads (the rpmdb), not the tree: ≤ 1.1× their weight + 64 kB"
        )
        row.met = all(c.plan_bytes <= 1.1 * c.read_bytes + 65536 for c in costs)
        row.notes.append(
            "by base size: "
            + "; ".join(
                f"{c.files:,} files: plan {c.plan_bytes / 1e6:.2f} MB in {c.plan.median:.2f} s "
                f"(the files it reads weigh {c.read_bytes / 1e6:.2f} MB), "
                f"pull {c.pull_bytes / 1e6:.2f} MB in {c.pull.median:.2f} s"
                for c in costs
            )
            + " (medians)"
        )
        row.notes.append(
            f"the ratio is the plan's bytes over the pull's, at the largest base; from the smallest to the largest "
            f"base the plan's bytes grow "
            f"{growth:.1f}× (the rpmdb grows with the base's file lists)"
        )
        return row

    def p7_fetch(self) -> Row:
        fraction = min(self.data.size.base_fractions)
        sysroot = self.sysroot(fraction, "p7")
        origin = self.origin(self.data.layer_names[:COUNT], fraction)
        t = fetch_comparison(self.data, self.work, sysroot, origin, self.reps)
        exampleos.teardown_sysroot(sysroot)
        row = Row("P7", f"fetch {t.count} packages, +{DELAY * 1000:.0f} ms per response, cold", "`dnf download`")
        row.ours, row.baseline, row.target = t.ours, t.dnf, "≤ 1.0× baseline"
        row.ratio = t.ours.median / t.dnf.median
        row.met = row.ratio <= 1.0
        row.notes.append(
            "`reconcile apply --download-only` (plan: metadata, resolution, signature and pre-flight checks, then "
            "the downloads) against `dnf download` of the same names; both with 3 parallel downloads, cache emptied "
            "before every sample, samples alternating"
        )
        row.notes.append(
            f"fetching 1 package: {t.ours_one.median:.3f} s against dnf's {t.dnf_one.median:.3f} s; so the part that "
            f"grows with the packages ({t.count} minus 1) is {t.marginal_ratio:.2f}× dnf's (medians)"
        )
        return row


def compile_bytecode() -> None:
    """reconcile's modules as bytecode, so no sample compiles them from source (PYTHONDONTWRITEBYTECODE, or a
    checkout nothing has run from yet, would otherwise have every run pay ~0.1 s for it)."""
    places = [Path(reconcile.__file__).parent, Path(sys.prefix) / "distro-bindings"]  # the latter: `import solv`
    run([sys.executable, "-m", "compileall", "-q", *(str(p) for p in places if p.exists())])


def _timed_any(argv: list[str]) -> float:
    """dnf --assumeno exits 1 by design: time it whatever it returns."""
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=exampleos.sysroot_env(), check=False)
    return time.perf_counter() - start


def extract_size(rpm: Path) -> int:
    from reconcile.rpm import header as h

    with open(rpm, "rb") as f:
        return sum(fe.size for fe in h.file_entries(h.read_rpm_headers(f).header))


def rpm_payload_mib(size: int) -> float:
    return size / (1 << 20)

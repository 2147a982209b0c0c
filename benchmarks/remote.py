"""P8: `plan --update` of a base on an HTTP remote, by base size, against `ostree pull` of the same new commit.

The host runs an old, small base (ExampleOS alone) from the remote ref; the remote's newest commit of that ref
is a bench base of 10k-100k files. The plan must fetch the commit and the paths it reads (the rpmdb above
all), not the tree; the whole pull is what apply (or `ostree admin upgrade`) would fetch. Every sample starts
cold: the new commit's objects are pruned from the host's repo first."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.data import RECONCILE, BenchData, exampleos
from benchmarks.fetch import delayed_server
from benchmarks.measure import Series, run, timed
from reconcile.base import PLAN_PATHS

REMOTE = "bench-remote"
REF = "bench/remote"
PLAIN_REF = "bench/base-plain"
_TRANSFERRED = re.compile(r"([\d.]+)\s*(bytes|kB|MB|GB|KiB|MiB|GiB)\s+transferred")  # `ostree pull`'s last line
_UNITS = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass
class UpdateCost:
    """Per base size: our plan's time and bytes, and the whole pull's."""

    files: int
    plan: Series = field(default_factory=Series)
    pull: Series = field(default_factory=Series)
    plan_bytes: int = 0
    pull_bytes: int = 0
    read_bytes: int = 0  # what the files planning reads weigh on the remote (compressed objects)


def update_comparison(data: BenchData, work: Path, sysroot_for: Callable[[str], Path], reps: int) -> list[UpdateCost]:
    """`sysroot_for(name)`: an empty sysroot with the stateroot `bench` (the caller tears it down)."""
    _compose_plain(data)
    costs = []
    for fraction in data.size.base_fractions:
        remote = work / f"p8-remote-{int(fraction * 100)}"
        old, new = _publish(data, remote, fraction)
        with delayed_server(remote, delay=0) as url:
            sysroot = sysroot_for(f"p8-{int(fraction * 100)}")
            repo = _host_on_remote(sysroot, remote, old, url)
            origin = work / "p8-origin.toml"
            origin.write_text(f'[origin]\nbaserefspec = "{REMOTE}:{REF}"\n')
            cost = UpdateCost(data.base_files(fraction), read_bytes=_weight_of_plan_paths(remote, new))
            argv = [RECONCILE, "plan", "--update", "--json", "--sysroot", str(sysroot), "--origin", str(origin)]
            argv += ["--reposdir", str(data.reposdir)]
            for _ in range(reps):  # alternating, each from the same cold state
                _forget(repo, old)
                seconds, proc = timed(argv)
                doc = json.loads(proc.stdout)
                if doc["base"]["after"] != new:
                    raise RuntimeError(f"the plan did not move to the new commit: {doc['base']}")
                cost.plan.seconds.append(seconds)
                cost.plan_bytes = doc["base"]["fetched_bytes"]
                _forget(repo, old)
                seconds, proc = timed(["ostree", f"--repo={repo}", "pull", REMOTE, REF])
                cost.pull.seconds.append(seconds)
                cost.pull_bytes = _transferred(proc.stdout + proc.stderr)
            _forget(repo, old)
            costs.append(cost)
    return costs


def _compose_plain(data: BenchData) -> None:
    """The old base: ExampleOS alone (composed once, kept with the benchmark data)."""
    probe = run(["ostree", f"--repo={data.compose_repo}", "refs", "--list"])
    if PLAIN_REF not in probe.stdout.split():
        argv = [RECONCILE, "compose", "--repo", str(data.compose_repo), "--ref", PLAIN_REF]
        run([*argv, "--reposdir", str(data.reposdir), *exampleos.BASE_PACKAGES])


def _publish(data: BenchData, remote: Path, fraction: float) -> tuple[str, str]:
    """An archive repo whose REF has two commits: the plain base, then the bench base of `fraction`."""
    run(["ostree", f"--repo={remote}", "init", "--mode=archive"])
    commits = []
    for version, source in (("1", PLAIN_REF), ("2", data.base_ref(fraction))):
        run(["ostree", f"--repo={remote}", "pull-local", str(data.compose_repo), source])
        argv = ["ostree", f"--repo={remote}", "commit", f"--branch={REF}", f"--tree=ref={source}"]
        commits.append(run([*argv, f"--add-metadata-string=version={version}"]).stdout.strip())
    run(["ostree", f"--repo={remote}", "summary", "-u"])
    return commits[0], commits[1]


def _host_on_remote(sysroot: Path, remote: Path, old: str, url: str) -> Path:
    """The sysroot's default deployment is the old commit, with `REMOTE:REF` as its origin."""
    repo = sysroot / "ostree" / "repo"
    run(["ostree", f"--repo={repo}", "remote", "add", "--no-gpg-verify", REMOTE, url])
    run(["ostree", f"--repo={repo}", "pull-local", "--remote", REMOTE, str(remote), old])
    run(["ostree", f"--repo={repo}", "refs", f"--create={REMOTE}:{REF}", old])
    run(["ostree", "admin", f"--sysroot={sysroot}", "deploy", "--os=bench", "--karg=root=LABEL=x", f"{REMOTE}:{REF}"])
    return repo


def _weight_of_plan_paths(remote: Path, commit: str) -> int:
    """The archive objects of the files under PLAN_PATHS in `commit`: what a plan must fetch, at least."""
    total = 0
    for path in PLAN_PATHS:
        listing = subprocess.run(
            ["ostree", f"--repo={remote}", "ls", "-R", "-C", commit, path], capture_output=True, text=True, check=False
        )
        for line in listing.stdout.splitlines():
            fields = line.split()
            if fields and fields[0].startswith("-"):  # a regular file: mode uid gid size checksum path
                checksum = fields[4]
                total += (remote / "objects" / checksum[:2] / f"{checksum[2:]}.filez").stat().st_size
    return total


def _forget(repo: Path, old: str) -> None:
    """Back to the cold state: the tracking ref at the old commit, the new commit's objects pruned."""
    run(["ostree", f"--repo={repo}", "reset", f"{REMOTE}:{REF}", old])
    run(["ostree", f"--repo={repo}", "prune", "--refs-only"])


def _transferred(output: str) -> int:
    found = _TRANSFERRED.findall(output)
    if not found:
        raise RuntimeError(f"`ostree pull` did not say how much it transferred:\n{output}")
    number, unit = found[-1]
    return int(float(number) * _UNITS[unit])

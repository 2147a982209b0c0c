"""What killed applies leave in the repo's tmp: the scripts' overlay (perhaps still mounted) and rpmdb work
directories. Only an apply holding the sysroot lock makes them, so under that lock every one found is an
earlier run's, and the next apply removes it."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from reconcile.process import dies_with_us

log = logging.getLogger("reconcile.leftovers")
PREFIXES = ("reconcile-scripts-", "reconcile-rpmdb-")


def mounts_below(directory: Path) -> list[Path]:
    """Mount points at or below `directory`, deepest first (/proc/self/mountinfo escapes spaces as \\040)."""
    inside = []
    prefix = str(directory).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            inside.append(Path(point))
    return sorted(inside, key=lambda p: len(p.parts), reverse=True)


def remove_earlier_runs(repo: Path) -> list[str]:
    """Unmount and remove what killed applies left; returns what could not be removed, in words."""
    tmp = repo / "tmp"
    if not tmp.is_dir():
        return []
    left = [d for d in sorted(tmp.iterdir()) if d.name.startswith(PREFIXES) and d.is_dir() and not d.is_symlink()]
    problems = []
    for directory in left:
        stuck = []
        for point in mounts_below(directory):
            try:
                umount = dies_with_us(["umount", str(point)])
                done = subprocess.run(umount, capture_output=True, text=True, check=False, timeout=60)
            except subprocess.TimeoutExpired:
                stuck.append(f"{point} (umount did not finish within 60 s)")
                continue
            if done.returncode != 0:
                stuck.append(f"{point} ({done.stderr.strip() or 'umount failed'})")
        if stuck:  # never delete through a mount: the overlay's lower layer is a checkout of repo objects
            problems.append(f"{directory} stays: {', '.join(stuck)} could not be unmounted")
            continue
        log.debug("removing %s, left by an earlier apply", directory)
        shutil.rmtree(directory, ignore_errors=True)
    return problems

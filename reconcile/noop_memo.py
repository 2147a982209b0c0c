"""The no-op `plan`, answered without planning: a converged plan is recorded with every file it was read from, and
the next identical command whose files all still hold the same bytes prints it again (DESIGN §3, decisions.md).

Standard library only: this runs before anything else is imported, on the path a config-management run takes
every few minutes. Any doubt (an option it does not know, a file that changed, a record it cannot read) means
"plan for real"; the record is only ever written by a real plan that found nothing to do.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib

TYPE_CHECKING = False  # not typing's: importing typing (or collections) would cost this path more than its work
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

RECORD_DIR = "noop-plans"
KEEP_RECORDS = 16
CREATED = "\x00created\x00"  # the plan's timestamp in a recorded output, filled in when it is printed again
DEFAULT_SYSROOT = "/"
# `plan` options that cannot change what a converged plan prints beyond being part of the command (the key):
_VALUED = {"--sysroot", "--origin", "--reposdir", "--stateroot", "--cachedir", "--transfer-deadline", "--format"}
_FLAGS = {"--json", "--detailed-exitcode", "-C", "--cache-only", "--refresh"}
_ENV_PREFIXES = ("OSTREE_", "RECONCILE_", "LC_", "LANG", "NO_COLOR", "TERM", "COLUMNS")
_ABSENT = "-"
Inputs = list[tuple[str, str]]


def options(argv: list[str]) -> dict[str, str] | None:
    """The options of `plan ARGS` when every one of them is known here; None for anything else."""
    if not argv or argv[0] != "plan":
        return None
    found: dict[str, str] = {}
    rest = iter(argv[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            found[name] = value if eq else next(rest, "")
        elif arg in _FLAGS:
            found[arg] = ""
        else:
            return None
    return found


def command(argv: list[str]) -> str:
    """What names a record: the command, where it ran and what in its environment reaches reconcile."""
    from reconcile import __version__

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES))
    return json.dumps([__version__, sys.version, argv, os.getcwd(), env, os.geteuid()])


def answer(argv: list[str]) -> int | None:
    """Print the recorded plan and return its exit code when it still holds; None: plan for real."""
    try:
        opts = options(argv)
        if opts is None or sys.stdout.isatty() or "JOURNAL_STREAM" in os.environ:
            return None
        cmd = command(argv)
        record = _find(opts, _name(cmd))
        if record is None or record["command"] != cmd:
            return None
        if any(_content(kind, path) != held for kind, path, held in record["inputs"]):
            return None
        sys.stdout.write(record["stdout"].replace(CREATED, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())))
        sys.stdout.flush()
        return int(record["exit"])
    except Exception:  # a record in doubt is a record not used
        return None


def remember(argv: list[str], cachedir: str, inputs: Inputs, stdout: str, created: str, code: int) -> None:
    """Record a converged plan's output with every input it was made from, as it was read (best effort)."""
    if options(argv) is None:
        return
    cmd = command(argv)
    record = {
        "command": cmd,
        "inputs": [[kind, path, _content(kind, path)] for kind, path in inputs],
        "stdout": stdout.replace(created, CREATED),
        "exit": code,
    }
    where = os.path.join(cachedir, RECORD_DIR)
    try:
        os.makedirs(where, exist_ok=True)
        tmp = os.path.join(where, f".{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(where, _name(cmd)))
        _prune(where)
    except OSError:  # a read-only or foreign cache: the next plan is planned for real, as before
        pass


def inputs(sysroot: str, origin: str, fragments: Iterable[str], refspec: str | None) -> Inputs:
    """Every file a converged plan depends on: the origin and its fragments, the deployments (boot entries and
    origin files), what marks the booted one, the repo's config and the base ref, and reconcile's own code."""
    j = os.path.join
    repo, entries, deploy = (
        j(sysroot, "ostree", "repo"),
        j(sysroot, "boot", "loader", "entries"),
        j(sysroot, "ostree", "deploy"),
    )
    found: Inputs = [("file", origin), ("dir", j(os.path.dirname(origin), "origin.d"))]
    found += [("file", p) for p in fragments]
    found += [("file", "/proc/cmdline"), ("file", "/run/ostree/staged-deployment"), ("file", "/run/ostree-booted")]
    found += [("link", j(sysroot, "boot", "loader")), ("dir", entries)]
    found += [("file", j(entries, n)) for n in _listed(entries)]
    found.append(("dir", deploy))
    for stateroot in _listed(deploy):
        where = j(deploy, stateroot, "deploy")
        found.append(("dir", where))
        found += [("file", j(where, n)) for n in _listed(where) if n.endswith(".origin")]
    found.append(("file", j(repo, "config")))
    if refspec:
        remote, _, ref = refspec.rpartition(":")
        refs = [f"remotes/{remote}/{ref}"] if remote else [f"heads/{ref}", f"remotes/{ref}"]
        found += [("file", j(repo, "refs", r)) for r in [*refs, f"mirrors/{ref}"]]
    found.append(("code", os.path.dirname(os.path.abspath(__file__))))
    return found


def _name(cmd: str) -> str:
    return f"{zlib.crc32(cmd.encode()):08x}.json"  # the record holds the whole command, compared on reading


def _find(opts: dict[str, str], name: str) -> dict[str, Any] | None:
    if "--cachedir" in opts:
        places = [opts["--cachedir"]]
    else:
        deploy = os.path.join(opts.get("--sysroot", DEFAULT_SYSROOT), "ostree", "deploy")
        roots = [opts["--stateroot"]] if "--stateroot" in opts else _listed(deploy)
        places = [os.path.join(deploy, r, "var", "cache", "reconcile") for r in roots]
    for place in places:
        path = os.path.join(place, RECORD_DIR, name)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:  # only what its owner could write
                    return None
                record: dict[str, Any] = json.loads(f.read())
                return record
        except FileNotFoundError:
            continue
    return None


def _content(kind: str, path: str) -> str:
    """A file's bytes (origin files, boot entries and refs are small), a listing, a link, or the code's age."""
    try:
        if kind == "file":
            with open(path, "rb") as f:
                return f.read().decode("latin-1")
        if kind == "dir":
            return "\0".join(sorted(os.listdir(path)))
        if kind == "link":
            return os.readlink(path)
        if kind == "code":
            return str(max(_mtimes(path)))
    except FileNotFoundError:
        return _ABSENT
    except OSError as e:
        return f"error {e.errno}"
    raise ValueError(kind)


def _mtimes(top: str) -> Iterator[int]:
    """Every module's mtime: an upgraded or edited reconcile plans for real."""
    for entry in os.scandir(top):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(("_", ".")):
            yield from _mtimes(entry.path)
        elif entry.name.endswith(".py"):
            yield entry.stat().st_mtime_ns


def _listed(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _prune(where: str) -> None:
    records = [e for e in os.scandir(where) if e.name.endswith(".json")]
    for old in sorted(records, key=lambda e: e.stat().st_mtime_ns)[:-KEEP_RECORDS]:
        os.unlink(old.path)

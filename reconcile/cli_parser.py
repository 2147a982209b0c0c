"""The argument parser: the one definition of every subcommand and option (the man page and the bash completion
are generated from it by reconcile.cli_docs). Handlers are named, not imported: `reconcile.cli` maps them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from reconcile import __version__
from reconcile.errors import UsageError

DEFAULT_ORIGIN = Path("/etc/reconcile/origin.toml")
FORMATS = ("text", "json", "markdown")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(UsageError.exit_code)


def _debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="log every external call and show tracebacks")


def _sysroot(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sysroot", type=Path, default=Path("/"), help="OSTree sysroot (default: /)")
    _debug(p)


def _origin(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--origin", type=Path, default=DEFAULT_ORIGIN, help=f"desired origin file (default: {DEFAULT_ORIGIN})"
    )


def _plan_options(p: argparse.ArgumentParser, outputs: bool = True) -> None:
    _sysroot(p)
    _origin(p)
    p.add_argument(
        "--reposdir", type=Path, help="directory of yum .repo files (default: the deployment's /etc/yum.repos.d)"
    )
    p.add_argument("--stateroot", help="stateroot (OS name) to act on, when the sysroot has several")
    p.add_argument("--cachedir", type=Path, help="metadata cache (default: the stateroot's /var/cache/reconcile)")
    p.add_argument("--update", action="store_true", help="move layered packages to the newest versions the repos offer")
    p.add_argument(
        "-C", "--cache-only", action="store_true", help="no network: metadata, keys and packages from the cache only"
    )
    p.add_argument("--refresh", action="store_true", help="fetch repo metadata even when it has not expired")
    p.add_argument(
        "--transfer-deadline",
        type=_positive_seconds,
        metavar="SECONDS",
        help="the most one file's download may take, however fast it still moves (default 1800)",
    )
    if not outputs:  # export prints a Containerfile, not a plan
        return
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when there are changes (plan) or were changes (apply)"
    )


def _lifecycle_options(p: argparse.ArgumentParser) -> None:
    _sysroot(p)
    p.add_argument("--stateroot", help="stateroot (OS name) to act on, when the sysroot has several")
    p.add_argument("--cachedir", type=Path, help="metadata cache (default: the stateroot's /var/cache/reconcile)")
    p.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for the sysroot lock (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


_EDIT_LISTS = (  # `edit`: flag, what it edits, metavar
    ("--present", "have PKG in packages.requested (a spec for the same name is replaced)", "PKG"),
    ("--absent", "drop PKG (any spec for that name) from packages.requested", "PKG"),
    ("--local", "have PATH in packages.local", "PATH"),
    ("--absent-local", "drop PATH from packages.local", "PATH"),
    ("--remove-base", "have NAME in overrides.remove (drop the base package)", "NAME"),
    ("--replace-base", "have SPEC in overrides.replace (take the base package from the repos)", "SPEC"),
    ("--restore-base", "drop NAME from overrides.remove and overrides.replace (the base's own package)", "NAME"),
)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reconcile", description="Declarative package layering for OSTree systems.")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plan", help="show what apply would change, and why")
    _plan_options(p)
    p.add_argument("-o", "--out", type=Path, help="also save the plan to this file, for `reconcile apply FILE`")
    p.add_argument("--format", choices=FORMATS, help="output format (default text; --json means json)")
    p.add_argument(
        "--bundle",
        type=Path,
        metavar="DIR",
        help="also write every package and key the plan needs into DIR, for an offline apply (-o defaults to "
        "DIR/plan.json)",
    )
    p.set_defaults(handler="plan")

    p = sub.add_parser("apply", help="make the next boot match the origin file, or apply a saved plan exactly")
    p.add_argument("plan_file", nargs="?", type=Path, metavar="PLAN", help="a plan saved with `plan -o`")
    _plan_options(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for the sysroot lock (default 60)")
    p.add_argument(
        "--download-only", action="store_true", help="fetch and verify every package the plan needs; deploy nothing"
    )
    p.add_argument(
        "--unchanged-exit-77",
        action="store_true",
        help="exit 77 when nothing was changed, 0 when something was (as rpm-ostree install --unchanged-exit-77)",
    )
    p.add_argument(
        "--bundle",
        type=Path,
        metavar="DIR",
        help="take the packages and keys from this bundle (`plan --bundle`), not the repos (PLAN defaults to "
        "DIR/plan.json)",
    )
    p.set_defaults(handler="apply")

    for name, verb in (("add", "add packages to"), ("remove", "remove packages from")):
        p = sub.add_parser(name, help=f"{verb} packages.requested (keeping comments), then show the plan")
        p.add_argument("specs", nargs="+", metavar="PKG")
        _plan_options(p)
        p.add_argument(
            "--lock-timeout", type=float, default=60.0, help="seconds to wait for another edit of the file (default 60)"
        )
        p.set_defaults(handler="add_remove")

    p = sub.add_parser("edit", help="make the origin file say what the options ask (comments kept); no plan")
    _origin(p)
    p.add_argument("--set-base", metavar="REF", help="[origin] baserefspec (replaces a container-image base)")
    for flag, where, what in _EDIT_LISTS:
        p.add_argument(flag, action="append", default=[], metavar=what, help=where)
    p.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE", help="[options] NAME = VALUE (a TOML value)"
    )
    p.add_argument("--unset-option", action="append", default=[], metavar="NAME", help="drop [options] NAME")
    p.add_argument("--output", type=Path, help="write the result to this file; the origin file is not touched")
    p.add_argument("--expect-sha256", metavar="HEX", help="refuse (exit 3) unless the file's sha256 is still this")
    p.add_argument(
        "--lock-timeout", type=float, default=60.0, help="seconds to wait for another edit of the file (default 60)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout (before and after)")
    _debug(p)
    p.set_defaults(handler="edit")

    p = sub.add_parser("show", help="render a saved plan")
    p.add_argument("plan_file", type=Path, metavar="PLAN")
    p.add_argument("--format", choices=FORMATS, default="text")
    _debug(p)
    p.set_defaults(handler="show")

    p = sub.add_parser("export", help="write a Containerfile that builds the declaration onto a bootc image")
    _plan_options(p, outputs=False)
    p.add_argument("--format", choices=("containerfile",), default="containerfile", help="output format")
    p.add_argument(
        "--from", dest="from_image", metavar="IMAGE", help="the image to build on (default: [origin] container-image)"
    )
    p.add_argument("-o", "--out", type=Path, help="write it to this file (default: stdout)")
    p.add_argument(
        "--context", type=Path, metavar="DIR", help="copy the files the build needs (.repo files, local RPMs) into DIR"
    )
    p.set_defaults(handler="export")

    p = sub.add_parser("validate", help="check an origin file and nothing else")
    _origin(p)
    _debug(p)
    p.set_defaults(handler="validate")

    p = sub.add_parser("status", help="list deployments with their requested and layered packages")
    _sysroot(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(handler="status")

    p = sub.add_parser("rollback", help="make the rollback deployment the default, as rpm-ostree rollback")
    _lifecycle_options(p)
    _origin(p)
    p.add_argument(
        "--update-origin",
        action="store_true",
        help="rewrite the origin file to ask for the new default (comments kept)",
    )
    p.set_defaults(handler="rollback")

    p = sub.add_parser("cleanup", help="remove the rollback or pending deployment, or cached data; then prune")
    _lifecycle_options(p)
    p.add_argument("-r", "--rollback", action="store_true", help="remove the rollback deployment(s)")
    p.add_argument("-p", "--pending", action="store_true", help="remove the pending deployment(s)")
    p.add_argument(
        "-m", "--cache", action="store_true", help="remove cached repo metadata, headers and downloaded packages"
    )
    p.set_defaults(handler="cleanup")

    p = sub.add_parser("init", help="write the origin file from the default deployment, so `plan` is a no-op")
    _sysroot(p)
    _origin(p)
    p.add_argument("--stateroot", help="stateroot (OS name) to act on, when the sysroot has several")
    p.add_argument("--force", action="store_true", help="replace an existing origin file")
    p.set_defaults(handler="init")

    p = sub.add_parser("compose", help="compose a base commit from RPMs")
    p.add_argument("--repo", type=Path, required=True, help="OSTree repo (created, mode bare, if missing)")
    p.add_argument("--ref", required=True, help="ref to point at the new commit")
    p.add_argument("--reposdir", type=Path, required=True, help="directory of yum .repo files")
    p.add_argument("--version", dest="commit_version", help="value of the commit's `version` metadata")
    p.add_argument("--releasever", help="the $releasever of the repo files")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    _debug(p)
    p.add_argument("packages", nargs="+", metavar="PKG", help="packages to compose (with their dependencies)")
    p.set_defaults(handler="compose")
    return parser

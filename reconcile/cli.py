"""The `reconcile` command line: one handler maps every error to a documented exit code (DESIGN §5)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from reconcile import __version__
from reconcile.errors import ReconcileError, ResolutionError, UsageError

EXIT_CHANGES = 2
DEFAULT_ORIGIN = Path("/etc/reconcile/origin.toml")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(UsageError.exit_code)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sysroot", type=Path, default=Path("/"), help="OSTree sysroot (default: /)")
    p.add_argument("--debug", action="store_true", help="log every external call and show tracebacks")


def _plan_options(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "--origin", type=Path, default=DEFAULT_ORIGIN, help=f"desired origin file (default: {DEFAULT_ORIGIN})"
    )
    p.add_argument(
        "--reposdir",
        type=Path,
        help="directory of yum .repo files (default: the deployment's /etc/yum.repos.d)",
    )
    p.add_argument("--stateroot", help="stateroot (OS name) to act on, when the sysroot has several")
    p.add_argument("--cachedir", type=Path, help="metadata cache (default: the stateroot's /var/cache/reconcile)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes (plan) or were changes (apply)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reconcile", description="Declarative package layering for OSTree systems.")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plan", help="show what apply would change, and why")
    _plan_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="make the next boot match the origin file")
    _plan_options(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for the sysroot lock (default 60)")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("status", help="list deployments with their requested and layered packages")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("compose", help="compose a base commit from RPMs")
    p.add_argument("--repo", type=Path, required=True, help="OSTree repo (created, mode bare, if missing)")
    p.add_argument("--ref", required=True, help="ref to point at the new commit")
    p.add_argument("--reposdir", type=Path, required=True, help="directory of yum .repo files")
    p.add_argument("--version", dest="commit_version", help="value of the commit's `version` metadata")
    p.add_argument("--debug", action="store_true", help="log every external call and show tracebacks")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("packages", nargs="+", metavar="PKG", help="packages to compose (with their dependencies)")
    p.set_defaults(func=cmd_compose)
    return parser


def _reporter(args: argparse.Namespace) -> Any:
    from reconcile.report import Reporter

    return Reporter()


def _context(args: argparse.Namespace) -> Any:
    from reconcile.context import Context

    return Context.open(args.sysroot, _reporter(args), args.cachedir)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def cmd_plan(args: argparse.Namespace) -> int:
    from reconcile.origin import load_origin
    from reconcile.planner.plan import make_plan
    from reconcile.planner.render import render_json, render_text

    loaded = load_origin(args.origin)
    ctx = _context(args)
    plan = make_plan(ctx, loaded, args.reposdir, args.stateroot)
    _out(render_json(plan) if args.json else render_text(plan))
    return EXIT_CHANGES if (args.detailed_exitcode and plan.has_changes) else 0


def cmd_apply(args: argparse.Namespace) -> int:
    from reconcile.apply import apply_plan
    from reconcile.origin import load_origin
    from reconcile.planner.plan import make_plan
    from reconcile.planner.render import render_text

    loaded = load_origin(args.origin)
    ctx = _context(args)
    ctx.sysroot.lock(args.lock_timeout, lambda: ctx.reporter.info(f"Waiting for the lock of {args.sysroot}…"))
    try:
        ctx.reload()
        plan = make_plan(ctx, loaded, args.reposdir, args.stateroot)
        if not args.json and plan.has_changes:
            _out(render_text(plan))
        if plan.has_changes and not args.yes and sys.stdin.isatty() and not _confirm():
            ctx.reporter.info("Aborted; nothing was changed.")
            return 1
        result = apply_plan(ctx, plan, loaded)
    finally:
        ctx.sysroot.unlock()
    if args.json:
        doc = {
            "plan": json.loads(plan.model_dump_json()),
            "result": {"changed": result.changed, "deployment": result.deployed, "message": result.message},
        }
        _out(json.dumps(doc, indent=2))
    else:
        _out(result.message)
    return EXIT_CHANGES if (args.detailed_exitcode and result.changed) else 0


def _confirm() -> bool:
    try:
        answer = input("Apply this plan? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_status(args: argparse.Namespace) -> int:
    from reconcile.status import render_status_json, render_status_text, status_document

    ctx = _context(argparse.Namespace(**vars(args), cachedir=None))
    doc = status_document(ctx)
    _out(render_status_json(doc) if args.json else render_status_text(doc))
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from reconcile.compose import compose

    result = compose(args.repo, args.ref, args.reposdir, args.packages, _reporter(args), args.commit_version)
    if args.json:
        _out(
            json.dumps(
                {"commit": result.commit, "ref": args.ref, "packages": [str(n) for n in result.packages]},
                indent=2,
            )
        )
    else:
        _out(f"Composed {args.ref} = {result.commit} from {len(result.packages)} packages.")
    return 0


def _report_error(e: ReconcileError, json_mode: bool) -> None:
    problems = getattr(e, "problems", [])
    lines = [f"error: {e.message}"]
    if problems and not (isinstance(e, ResolutionError) and len(problems) == 1 and problems[0] in e.message):
        lines += [f"  {p}" for p in problems]
    if e.hint:
        lines.append(f"hint: {e.hint}")
    print("\n".join(lines), file=sys.stderr)
    if json_mode:
        _out(json.dumps({"error": {"message": e.message, "problems": problems, "exit_code": e.exit_code}}, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    func: Callable[[argparse.Namespace], int] = args.func
    json_mode = bool(getattr(args, "json", False))
    try:
        return func(args)
    except ReconcileError as e:
        if args.debug:
            traceback.print_exc()
        _report_error(e, json_mode)
        return e.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        err = ReconcileError(
            f"internal error: {type(e).__name__}: {e}", hint="Run again with --debug for the traceback."
        )
        _report_error(err, json_mode)
        return 1

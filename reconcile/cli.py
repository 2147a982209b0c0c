"""The `reconcile` command line: one handler maps every error to a documented exit code (DESIGN §5)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from reconcile import stopping
from reconcile.cli_parser import build_parser
from reconcile.errors import ReconcileError, ResolutionError, UsageError

if TYPE_CHECKING:
    from reconcile.context import Context
    from reconcile.journal import Journal
    from reconcile.origin import LoadedOrigin
    from reconcile.planner.model import Plan

EXIT_CHANGES = 2
EXIT_UNCHANGED = 77  # rpm-ostree's RPM_OSTREE_EXIT_UNCHANGED, for tools written against it


def _context(args: argparse.Namespace) -> Context:
    from reconcile.context import Context
    from reconcile.report import Reporter
    from reconcile.repos.config import FetchMode

    mode = FetchMode(
        cache_only=getattr(args, "cache_only", False),
        refresh=getattr(args, "refresh", False),
    )
    if getattr(args, "transfer_deadline", None):
        mode = dataclasses.replace(mode, deadline=args.transfer_deadline)
    return Context.open(args.sysroot, Reporter(journal=_journal(args)), getattr(args, "cachedir", None), mode)


def _journal(args: argparse.Namespace) -> Journal | None:
    if "JOURNAL_STREAM" not in os.environ:  # the usual case: not even the import
        return None
    from reconcile.journal import Journal

    return Journal.from_environment(args.command)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _show(plan: Plan, fmt: str) -> str | None:
    """Print the plan; return the text printed, unless it went to a terminal (coloured there)."""
    from reconcile.planner import render

    if fmt == "text" and sys.stdout.isatty():
        render.print_text(plan, sys.stdout)
        return None
    if fmt == "text":
        text = render.render_text(plan) + "\n"  # as print_text writes it to a file or pipe
    else:
        text = render.render_json(plan) if fmt == "json" else render.render_markdown(plan)
        text = text if text.endswith("\n") else text + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()
    return text


def _plan_exit(args: argparse.Namespace, plan: Plan) -> int:
    if not plan.applyable:
        print("\n".join(f"error: {e}" for e in plan.errors), file=sys.stderr)
        return 1
    return EXIT_CHANGES if (args.detailed_exitcode and plan.has_changes) else 0


def _make_plan(args: argparse.Namespace, ctx: Context, loaded: LoadedOrigin) -> Plan:
    """make_plan for an origin already loaded: add/remove plan the edited text before writing it."""
    from reconcile.planner.plan import make_plan

    return make_plan(ctx, loaded, args.reposdir, args.stateroot, update=args.update)


def cmd_plan(args: argparse.Namespace) -> int:
    from reconcile.origin import load_origin
    from reconcile.planner.saved import write_plan

    if args.bundle is not None:
        from reconcile.apply.bundle import require_createrepo

        require_createrepo()  # before planning: a host without it cannot make the bundle at all
    loaded = load_origin(args.origin)
    ctx = _context(args)
    plan = _make_plan(args, ctx, loaded)
    if args.bundle is not None and plan.applyable:
        _write_bundle(args, ctx, plan, loaded)
    elif args.bundle is not None:
        _say(f"No bundle was written to {args.bundle}: the plan has errors.")
    if args.out:
        write_plan(plan, args.out)
    text = _show(plan, "json" if args.json else args.format or "text")
    code = _plan_exit(args, plan)
    if text is not None:
        _remember_noop(args, ctx, loaded, plan, text, code)
    return code


def _remember_noop(
    args: argparse.Namespace, ctx: Context, loaded: LoadedOrigin, plan: Plan, text: str, code: int
) -> None:
    """A converged plan is recorded for the next identical command (noop_memo), unless something it was made
    from is outside the files that record covers: packages from RPM files, a container image, a fetched base."""
    from reconcile import noop_memo

    if plan.has_changes or not plan.applyable or plan.warnings or (plan.base and plan.base.fetched_bytes):
        return
    if plan.target.local or plan.target.replace_local or plan.origin.desired.get("container_image"):
        return
    if b"parent=" in (ctx.repo.path / "config").read_bytes():  # refs can come from another repo
        return
    fragments = [str(p.absolute()) for p, _sha in loaded.fragments]
    sysroot, origin = str(args.sysroot.absolute()), str(loaded.path.absolute())
    inputs = noop_memo.inputs(sysroot, origin, fragments, plan.target.base_refspec)
    noop_memo.remember(args.argv, str(ctx.cachedir(plan.prior.stateroot)), inputs, text, plan.created, code)


def _write_bundle(args: argparse.Namespace, ctx: Context, plan: Plan, loaded: LoadedOrigin) -> None:
    from reconcile.apply.bundle import write_bundle

    args.out = args.out or args.bundle / "plan.json"
    manifest = write_bundle(ctx, plan, loaded, args.reposdir, args.bundle)
    _say(
        f"Wrote the bundle {args.bundle}: {len(manifest.packages)} package(s) from {len(manifest.repos)} repo(s), "
        f"{len(manifest.keys)} key(s). Apply it offline with `reconcile apply {args.out} --bundle {args.bundle}`."
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_add_remove(args: argparse.Namespace) -> int:
    """Edit in memory, plan with the result, and write the file only when that plan could be made."""
    from reconcile.files import locked, write_atomically
    from reconcile.origin import decode_origin, read_origin
    from reconcile.origin_edit import edit_requested
    from reconcile.origin_fragments import with_fragments

    add = args.specs if args.command == "add" else []
    remove = args.specs if args.command == "remove" else []
    # Read, edit and write under one lock: concurrent edits of the file land one after the other, none lost.
    lock = args.origin.parent / f".{args.origin.name}.lock"
    with locked(lock, f"the origin file {args.origin}", _say, timeout=args.lock_timeout):
        text = decode_origin(args.origin, read_origin(args.origin))
        new_text, done = edit_requested(args.origin, text, add, remove)
        loaded = with_fragments(args.origin, new_text.encode())  # only --origin is edited; fragments still count
        plan = _make_plan(args, _context(args), loaded)
        if done:
            write_atomically(args.origin, new_text)
    print(f"{args.origin}: " + (", ".join(done) if done else "already as asked; not changed"), file=sys.stderr)
    for spec in remove:
        if where := loaded.source_of("packages.requested", spec):
            _say(f"warning: {spec} stays requested by {where}; `remove` edits only {args.origin}")
    _show(plan, "json" if args.json else "text")
    return _plan_exit(args, plan)


def cmd_edit(args: argparse.Namespace) -> int:
    from reconcile.origin_edit import OriginEdits, edit_origin_file, parse_option

    edits = OriginEdits(
        base=args.set_base,
        present={
            "requested": args.present,
            "local": args.local,
            "remove-base": args.remove_base,
            "replace-base": args.replace_base,
        },
        absent={"requested": args.absent, "local": args.absent_local},
        restore_base=args.restore_base,
        options=dict(parse_option(o) for o in args.option) | dict.fromkeys(args.unset_option),
    )
    edited = edit_origin_file(args.origin, edits, args.output, args.expect_sha256, args.lock_timeout, _say)
    done = ", ".join(edited.changes) or "already as asked; not changed"
    _out(json.dumps(edited.document(), indent=2) if args.json else f"{args.origin}: {done}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from reconcile import api

    if args.unchanged_exit_77 and args.detailed_exitcode:  # exit 0 means "no change" to one, "changed" to the other
        raise UsageError("--unchanged-exit-77 and --detailed-exitcode cannot be used together; pick one.")
    saved = None
    if args.plan_file is None and args.bundle is not None:
        args.plan_file = args.bundle / "plan.json"
    if args.plan_file is not None:
        from reconcile.planner.saved import read_plan

        saved = read_plan(args.plan_file)
    request = api.ApplyRequest(
        origin=args.origin,
        saved=saved,
        reposdir=args.reposdir,
        stateroot=args.stateroot,
        update=args.update,
        download_only=args.download_only,
        lock_timeout=args.lock_timeout,
        bundle=args.bundle,
    )

    def review(plan: Plan) -> bool:
        if not args.json:
            _show(plan, "text")
        if not plan.applyable or args.download_only or args.yes or not sys.stdin.isatty():
            return True
        return _confirm()

    ctx = _context(args)
    report = api.apply(ctx, request, review)
    if report.aborted:
        ctx.reporter.info(report.result.message)
        return 1
    _out(report.model_dump_json(indent=2) if args.json else report.result.message)
    if args.unchanged_exit_77 and not report.result.changed:
        return EXIT_UNCHANGED
    return EXIT_CHANGES if (args.detailed_exitcode and report.result.changed) else 0


def _confirm() -> bool:
    try:
        answer = input("Apply this plan? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_show(args: argparse.Namespace) -> int:
    from reconcile.planner.saved import read_plan

    _show(read_plan(args.plan_file), args.format)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import shutil

    from reconcile.export import from_image, render_containerfile
    from reconcile.files import write_atomically
    from reconcile.origin import load_origin
    from reconcile.planner.plan import make_plan

    loaded = load_origin(args.origin)
    image = from_image(loaded, args.from_image)  # before planning: a missing image is a usage error
    plan = make_plan(_context(args), loaded, args.reposdir, args.stateroot, update=args.update, reuse_deployed=False)
    if not plan.applyable:
        return _plan_exit(args, plan)
    export = render_containerfile(plan, loaded, image, str(args.origin))
    for warning in export.warnings:
        _say(f"warning: {warning}")
    for item in export.context if args.context else []:
        try:
            (args.context / item.name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.source, args.context / item.name)
        except OSError as e:
            raise ReconcileError(f"Cannot copy {item.source} into the build context {args.context}: {e}.") from None
    if not args.context and export.context:
        _say("The build context needs: " + ", ".join(c.name for c in export.context) + " (see --context).")
    if args.out:
        write_atomically(args.out, export.text)
    else:
        _out(export.text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from reconcile.origin import load_origin

    loaded = load_origin(args.origin)
    d = loaded.desired
    merged = f" with {len(loaded.fragments)} fragment(s) ({', '.join(p.name for p, _ in loaded.fragments)})"
    _out(
        f"{args.origin}{merged if loaded.fragments else ''} is valid: base {d.origin.base}, "
        f"{len(d.packages.requested)} requested, "
        f"{len(d.packages.local)} local, {len(d.overrides.remove)} base removals."
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from reconcile import api
    from reconcile.status import render_status_json, render_status_text

    doc = api.status(_context(args))
    _out(render_status_json(doc) if args.json else render_status_text(doc))
    if not args.json:  # the document carries them as reconcile.warnings
        for warning in doc.reconcile.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from reconcile import api

    report = api.rollback(
        _context(args),
        args.origin,
        update_origin=args.update_origin,
        stateroot=args.stateroot,
        lock_timeout=args.lock_timeout,
    )
    _out(report.model_dump_json(indent=2) if args.json else report.message)
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from reconcile import api

    request = api.CleanupRequest(args.rollback, args.pending, args.cache, args.stateroot, args.lock_timeout)
    report = api.cleanup(_context(args), request)
    _out(report.model_dump_json(indent=2) if args.json else report.message)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from reconcile.migrate import init_origin

    result = init_origin(_context(args), args.origin, args.stateroot, force=args.force)
    for warning in result.warnings:
        _say(f"warning: {warning}")
    outcome = "see the warnings" if result.warnings else f"`reconcile plan --origin {result.path}` has nothing to do"
    _out(f"Wrote {result.path} ({result.keys} keys) from deployment {result.deployment}; {outcome}.")
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from reconcile.compose import compose
    from reconcile.report import Reporter

    result = compose(
        args.repo, args.ref, args.reposdir, args.packages, Reporter(), args.commit_version, args.releasever
    )
    if args.json:
        doc = {"commit": result.commit, "ref": args.ref, "packages": [str(n) for n in result.packages]}
        _out(json.dumps(doc, indent=2))
    else:
        _out(f"Composed {args.ref} = {result.commit} from {len(result.packages)} packages.")
    return 0


MAX_PROBLEMS_SHOWN = 50


def _report_error(e: ReconcileError, json_mode: bool) -> None:
    problems = getattr(e, "problems", [])
    lines = [f"error: {e.message}"]
    if problems and not (isinstance(e, ResolutionError) and len(problems) == 1 and problems[0] in e.message):
        lines += [f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:  # the JSON error document lists them all
            lines.append(f"  … and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    if e.hint:
        lines.append(f"hint: {e.hint}")
    print("\n".join(lines), file=sys.stderr)
    if json_mode:
        _out(json.dumps({"error": {"message": e.message, "problems": problems, "exit_code": e.exit_code}}, indent=2))


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "plan": cmd_plan,
    "apply": cmd_apply,
    "add_remove": cmd_add_remove,
    "edit": cmd_edit,
    "show": cmd_show,
    "export": cmd_export,
    "validate": cmd_validate,
    "status": cmd_status,
    "rollback": cmd_rollback,
    "cleanup": cmd_cleanup,
    "init": cmd_init,
    "compose": cmd_compose,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    stopping.install()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr
    )
    func = HANDLERS[args.handler]
    json_mode = bool(getattr(args, "json", False)) or getattr(args, "format", None) == "json"
    try:
        try:
            return func(args)
        finally:
            stopping.finished()
    except ReconcileError as e:
        if args.debug:
            traceback.print_exc()
        if stopping.requested():  # e.g. a transfer ended for the signal and came out as a failed download
            return _stopped(stopping.requested())
        _report_error(e, json_mode)
        _journal_failure(args, e)
        return e.exit_code
    except KeyboardInterrupt:
        return _stopped(signal.SIGINT)
    except stopping.Terminated as e:
        return _stopped(e.signum)
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        if stopping.requested():  # the signal came out of a C library as its own error
            return _stopped(stopping.requested())
        err = ReconcileError(
            f"internal error: {type(e).__name__}: {e}", hint="Run again with --debug for the traceback."
        )
        _report_error(err, json_mode)
        _journal_failure(args, err, 1)
        return 1


def _journal_failure(args: argparse.Namespace, e: ReconcileError, code: int | None = None) -> None:
    journal = _journal(args)
    if journal is not None:
        from reconcile import journal as j

        status = e.exit_code if code is None else code
        journal.send(f"error: {e.message}", j.ERR, MESSAGE_ID=j.FAILED, EXIT_STATUS=status, HINT=e.hint or None)


def _stopped(signum: int) -> int:
    print("Interrupted." if signum == signal.SIGINT else f"Stopped by {signal.Signals(signum).name}.", file=sys.stderr)
    return 128 + signum

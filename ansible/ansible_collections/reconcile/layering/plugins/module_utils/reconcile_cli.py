"""Running `reconcile` on the managed host: the modules never import reconcile (it is a separate program there,
possibly under another Python), they run it and read its one JSON document."""

from __future__ import annotations

import contextlib
import json

# Exit codes with a meaning the task failure should spell out (reconcile(8), EXIT STATUS).
EXIT_STALE = 3
EXIT_LOCK_TIMEOUT = 4
EXIT_INVALID = 65


class ReconcileCli:
    def __init__(self, module, executable):
        self.module = module
        self.executable = module.get_bin_path(executable, required=True) if "/" not in executable else executable

    def json(self, args, result=None, so_far="nothing was changed"):
        """The JSON document a `reconcile ... --json` printed; any non-zero exit fails the task (`so_far` says
        what the task had done by then)."""
        rc, out, err = self.module.run_command([self.executable, *args], check_rc=False)
        if rc != 0:
            self.fail(args, rc, out, err, result or {}, so_far)
        try:
            return json.loads(out)
        except ValueError:
            self.module.fail_json(msg=f"reconcile {args[0]} printed no JSON document", stdout=out, stderr=err)

    def text(self, args):
        rc, out, err = self.module.run_command([self.executable, *args], check_rc=False)
        if rc != 0:
            self.fail(args, rc, out, err, {}, "nothing was changed")
        return out

    def fail(self, args, rc, out, err, result, so_far):
        said = reconcile_message(err)
        if rc == EXIT_STALE:
            msg = f"reconcile {args[0]}: the plan (or the origin file) became stale; {so_far}. {said}"
        elif rc == EXIT_LOCK_TIMEOUT:
            msg = f"reconcile {args[0]}: the lock was not free within lock_timeout; {so_far}. {said}"
        else:
            msg = f"reconcile {args[0]} failed (exit {rc}; {so_far}): {said}"
        document = None
        with contextlib.suppress(ValueError):
            document = json.loads(out)
        if isinstance(document, dict) and "has_changes" in document:
            result = dict(result, plan=document)  # a plan with errors: the errors are in it too
        self.module.fail_json(msg=msg, rc=rc, cmd=[self.executable, *args], stdout=out, stderr=err, **result)


def reconcile_message(stderr):
    """reconcile's error paragraph (`error:` and the lines after it), without the progress lines before it."""
    lines = stderr.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    return "\n".join(lines[starts[0] :] if starts else lines[-5:]).strip() or "(no message on stderr)"

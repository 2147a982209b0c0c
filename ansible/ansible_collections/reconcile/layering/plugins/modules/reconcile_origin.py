"""Ansible module: the reconcile origin file of an OSTree host, edited through reconcile and applied."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reconcile_origin
short_description: Declare the layered packages of an OSTree host and apply them with reconcile
version_added: "0.1.0"
description:
  - Makes the reconcile origin file (the declaration of the base and the RPM packages layered on it) say what
    the options ask, keeping its comments and layout, and applies it.
  - The edit is made by C(reconcile edit) into a temporary copy; C(reconcile plan -o) plans that copy and saves
    the plan, and C(reconcile apply PLAN) applies exactly that plan. The origin file itself is rewritten only
    after the plan was applied (or, with O(apply=false), after it could be made), so a bad request or a failed
    apply leaves the file as it was and it never claims a state that was not applied.
  - C(changed) comes from the plan (C(has_changes)) and from the text of the origin file, never from newer
    packages in the repos; a second run of the same task is C(ok). Packages are upgraded only with O(update=true).
  - Options not given leave their part of the file alone; lists are ensured to hold (or not to hold) the
    entries named, other entries stay.
options:
  origin_path:
    description: The origin file (TOML). It is created when missing and O(base) is given.
    type: path
    default: /etc/reconcile/origin.toml
  base:
    description: The base, C([origin] baserefspec) (a ref of the sysroot's repo, or V(REMOTE:REF)).
    type: str
  packages:
    description:
      - Packages to have in C(packages.requested) (a name, V(name.arch), V(name >= version), a capability or a
        path). A new spec for a name already requested replaces that entry.
    type: list
    elements: str
    default: []
  absent_packages:
    description: Packages not to request; every spec for the name is dropped from C(packages.requested).
    type: list
    elements: str
    default: []
  local_packages:
    description: Local RPM files (or V(<sha256>:<nevra>) pins) to have in C(packages.local).
    type: list
    elements: str
    default: []
  absent_local_packages:
    description: Entries to drop from C(packages.local).
    type: list
    elements: str
    default: []
  remove_base:
    description: Base packages to drop (C(overrides.remove)).
    type: list
    elements: str
    default: []
  replace_base:
    description: Base packages to take from the repos instead (C(overrides.replace), V(NAME) or V(NAME OP VERSION)).
    type: list
    elements: str
    default: []
  restore_base:
    description:
      - Base packages to get back as the base has them (dropped from C(overrides.remove) and C(overrides.replace)).
    type: list
    elements: str
    default: []
  options:
    description:
      - Keys of the C([options]) table (V(recommends), V(ignore_scripts), V(releasever), V(localpkg_gpgcheck)).
        A null value drops the key (its default applies).
    type: dict
  apply:
    description: Apply the plan (a new deployment for the next boot). With V(false) only the origin file is edited,
      once a plan of it could be made.
    type: bool
    default: true
  update:
    description: Move layered packages to the newest versions the repos offer (C(reconcile plan --update)).
    type: bool
    default: false
  reposdir:
    description: Directory of yum C(.repo) files (default the deployment's C(/etc/yum.repos.d)).
    type: path
  stateroot:
    description: The stateroot to act on, when the sysroot has several.
    type: str
  lock_timeout:
    description: Seconds to wait for the sysroot lock (and the origin file's), instead of retrying the task.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details: Plans the edited copy of the origin file; nothing is written, fetched into a deployment or staged.
  diff_mode:
    support: full
    details: The origin file before and after, and the plan as text (every package added, removed or changed).
notes:
  - Exit 3 of reconcile (the plan became stale because the host or the origin file changed meanwhile) and exit 4
    (the lock was not free within O(lock_timeout)) fail the task with reconcile's message; nothing was changed.
  - A reboot is needed for a new deployment; see RV(reboot_required).
seealso:
  - module: reconcile.layering.reconcile_facts
extends_documentation_fragment:
  - reconcile.layering.reconcile
author:
  - reconcile developers
"""

EXAMPLES = r"""
- name: Layer htop and drop the base's nano
  reconcile.layering.reconcile_origin:
    packages: [htop, "vim-enhanced >= 9"]
    absent_packages: [emacs]
    remove_base: [nano]
  register: layering
  notify: Reboot for the new deployment

- name: Only declare it (the next apply, or a timer, deploys it)
  reconcile.layering.reconcile_origin:
    packages: [htop]
    apply: false

- name: Rebase and take newer packages, without weak dependencies
  reconcile.layering.reconcile_origin:
    base: fedora:fedora/41/x86_64/silverblue
    update: true
    options:
      recommends: false

# A handler:
# - name: Reboot for the new deployment
#   ansible.builtin.reboot:
#   when: layering.reboot_required
"""

RETURN = r"""
plan:
  description: The plan that was checked (and, unless check mode or O(apply=false), applied), as
    C(reconcile plan --json) prints it (docs/plan-format.md).
  returned: success
  type: dict
  sample: {"has_changes": true, "applyable": true, "summary": {"text": "1 to add, ..."}}
origin_changed:
  description: The text of the origin file changed (or would, in check mode).
  returned: success
  type: bool
  sample: true
origin_changes:
  description: The edits made to the origin file, in words.
  returned: success
  type: list
  elements: str
  sample: ["+ packages.requested htop"]
reboot_required:
  description: A new deployment was made for the next boot (in check mode, would be made).
  returned: always
  type: bool
  sample: true
deployment:
  description: The new deployment, V(<checksum>.<serial>), from C(reconcile apply --json).
  returned: when a new deployment was made
  type: str
  sample: 3f2a...e1.0
deploy_method:
  description: V(staged) (a booted host, finalized at shutdown) or V(written) (a sysroot that is not booted).
  returned: when a new deployment was made
  type: str
  sample: staged
message:
  description: What reconcile said it did.
  returned: when the plan was applied
  type: str
  sample: Staged 3f2a9b1c0d2e for the next boot.
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.reconcile.layering.plugins.module_utils.reconcile_cli import ReconcileCli

# module list option -> `reconcile edit` flag
EDIT_FLAGS = (
    ("packages", "--present"),
    ("absent_packages", "--absent"),
    ("local_packages", "--local"),
    ("absent_local_packages", "--absent-local"),
    ("remove_base", "--remove-base"),
    ("replace_base", "--replace-base"),
    ("restore_base", "--restore-base"),
)
LIST = {"type": "list", "elements": "str", "default": []}
ARGUMENT_SPEC = {
    "origin_path": {"type": "path", "default": "/etc/reconcile/origin.toml"},
    "base": {"type": "str"},
    **{name: dict(LIST) for name, _flag in EDIT_FLAGS},
    "options": {"type": "dict"},
    "apply": {"type": "bool", "default": True},
    "update": {"type": "bool", "default": False},
    "sysroot": {"type": "path", "default": "/"},
    "reposdir": {"type": "path"},
    "stateroot": {"type": "str"},
    "lock_timeout": {"type": "float", "default": 60.0},
    "reconcile": {"type": "str", "default": "reconcile"},
}


def edit_args(params):
    """The `reconcile edit` flags for what the task declares."""
    args = ["--origin", params["origin_path"], "--lock-timeout", str(params["lock_timeout"])]
    if params["base"] is not None:
        args += ["--set-base", params["base"]]
    for name, flag in EDIT_FLAGS:
        for entry in params[name]:
            args.append(f"{flag}={entry}")  # `=`: an entry starting with a dash stays a value
    for key, value in sorted((params["options"] or {}).items()):
        args += ["--unset-option", key] if value is None else ["--option", f"{key}={toml_value(value)}"]
    return args


def toml_value(value):
    """A Python value from the task as TOML (JSON's strings, booleans and lists of strings are TOML's too)."""
    return json.dumps(value)


def plan_args(params):
    args = ["--sysroot", params["sysroot"]]
    if params["reposdir"]:
        args += ["--reposdir", params["reposdir"]]
    if params["stateroot"]:
        args += ["--stateroot", params["stateroot"]]
    return args


def converge(module, cli, workdir):
    params = module.params
    edited_copy = os.path.join(workdir, os.path.basename(params["origin_path"]))  # the name keeps its suffix
    fragments = os.path.join(os.path.dirname(os.path.abspath(params["origin_path"])), "origin.d")
    if os.path.isdir(fragments):  # the copy is planned with the real file's origin.d fragments, as reconcile reads them
        os.symlink(fragments, os.path.join(workdir, "origin.d"))
    saved_plan = os.path.join(workdir, "plan.json")
    edited = cli.json(["edit", *edit_args(params), "--output", edited_copy, "--json"])
    update = ["--update"] if params["update"] else []
    plan = cli.json(["plan", *plan_args(params), "--origin", edited_copy, *update, "-o", saved_plan, "--json"])
    deploys = params["apply"] and plan["has_changes"]
    result = {
        "changed": edited["changed"] or deploys,
        "plan": plan,
        "origin_changed": edited["changed"],
        "origin_changes": edited["changes"],
        "reboot_required": bool(deploys and module.check_mode and needs_reboot(plan)),
    }
    if module._diff:
        origin = params["origin_path"]
        result["diff"] = [
            {"before": edited["before"], "after": edited["after"], "before_header": origin, "after_header": origin},
            {"prepared": cli.text(["show", "--format", "text", saved_plan])},
        ]
    if module.check_mode or not result["changed"]:
        return result
    if deploys:
        lock = ["--lock-timeout", str(params["lock_timeout"])]
        applied = cli.json(["apply", saved_plan, *plan_args(params), *lock, "--json", "-y"], result)
        outcome = applied["result"]
        result.update(message=outcome["message"], reboot_required=outcome["deployment"] is not None)
        if outcome["deployment"] is not None:
            result.update(deployment=outcome["deployment"], deploy_method=outcome["deploy_method"])
    if edited["changed"]:
        # The same edit in place, refused if anyone changed the file since it was read: the file then says
        # exactly what was planned (and applied).
        expect = ["--expect-sha256", edited["sha256"]["before"]]
        so_far = "the plan was applied but the origin file not rewritten (run the task again)" if deploys else ""
        cli.json(["edit", *edit_args(params), *expect, "--json"], result, so_far or "nothing was changed")
    return result


def needs_reboot(plan):
    """Whether applying the plan makes a new deployment (check mode has no apply result to say so)."""
    target = plan["target"]
    return bool(target["needs_deployment"] or target.get("kernel_args") is not None)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    cli = ReconcileCli(module, module.params["reconcile"])
    workdir = tempfile.mkdtemp(prefix="reconcile-", dir=module.tmpdir)
    try:
        result = converge(module, cli, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

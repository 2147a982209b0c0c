"""Ansible module: the deployments of an OSTree host as reconcile sees them, as facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reconcile_facts
short_description: Gather the deployments of an OSTree host from reconcile status
version_added: "0.1.0"
description:
  - Runs C(reconcile status --json) on the managed host and returns its document as the fact C(reconcile).
  - The document has rpm-ostree's keys (C(deployments), each with C(checksum), C(booted), C(staged), C(pinned),
    C(packages), and so on) and reconcile's own under C(reconcile) (docs/status.schema.json in reconcile).
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  facts:
    support: full
seealso:
  - module: reconcile.layering.reconcile_origin
extends_documentation_fragment:
  - reconcile.layering.reconcile
author:
  - reconcile developers
"""

EXAMPLES = r"""
- name: Read the deployments
  reconcile.layering.reconcile_facts:

- name: Show what the next boot layers
  ansible.builtin.debug:
    msg: "{{ ansible_facts.reconcile.deployments[0].reconcile.layered_packages }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    reconcile:
      description: The document C(reconcile status --json) prints, deployments in boot order.
      returned: always
      type: dict
      sample: {"deployments": [{"osname": "example", "checksum": "3f2a...", "booted": false, "packages": ["htop"]}]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.reconcile.layering.plugins.module_utils.reconcile_cli import ReconcileCli


def main():
    module = AnsibleModule(
        argument_spec={
            "sysroot": {"type": "path", "default": "/"},
            "reconcile": {"type": "str", "default": "reconcile"},
        },
        supports_check_mode=True,
    )
    status = ReconcileCli(module, module.params["reconcile"]).json(
        ["status", "--sysroot", module.params["sysroot"], "--json"]
    )
    module.exit_json(changed=False, ansible_facts={"reconcile": status})


if __name__ == "__main__":
    main()

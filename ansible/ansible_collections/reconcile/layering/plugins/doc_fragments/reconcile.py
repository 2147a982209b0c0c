"""Options every reconcile.layering module shares (extends_documentation_fragment: reconcile.layering.reconcile)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  sysroot:
    description: The OSTree sysroot.
    type: path
    default: /
  reconcile:
    description: The reconcile executable on the managed host (a name looked up in PATH, or a path).
    type: str
    default: reconcile
requirements:
  - reconcile on the managed host (O(reconcile) names the executable)
attributes:
  platform:
    support: full
    platforms: posix
"""

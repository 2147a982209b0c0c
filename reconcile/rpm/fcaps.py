"""File capabilities: rpm's textual form (cap_to_text, e.g. `cap_net_raw,cap_net_admin=ep`) to the
`security.capability` xattr the kernel reads (struct vfs_cap_data, revision 2)."""

from __future__ import annotations

import re
import struct

# Capability numbers from linux/capability.h, in order.
CAPABILITIES = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
]
_NUMBER = {f"cap_{name}": i for i, name in enumerate(CAPABILITIES)}
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
_CLAUSE = re.compile(r"^(?P<caps>[a-z_0-9,]*)(?P<actions>([=+-][eip]*)+)$")


class CapabilityError(ValueError):
    pass


def parse_caps(text: str) -> tuple[int, int, bool]:
    """(permitted, inheritable, effective) bitmasks from libcap's text form."""
    permitted = inheritable = effective = 0
    for clause in text.split():
        m = _CLAUSE.match(clause.lower())
        if not m:
            raise CapabilityError(f"{text!r} is not a capability set")
        names = [n for n in m.group("caps").split(",") if n]
        if not names or names == ["all"]:
            mask = (1 << len(CAPABILITIES)) - 1
        else:
            mask = 0
            for name in names:
                if name not in _NUMBER:
                    raise CapabilityError(f"unknown capability {name!r} in {text!r}")
                mask |= 1 << _NUMBER[name]
        for op, flags in re.findall(r"([=+-])([eip]*)", m.group("actions")):
            if op == "=":
                permitted &= ~mask
                inheritable &= ~mask
                effective &= ~mask
            sets = {"p": "permitted", "i": "inheritable", "e": "effective"}
            for flag in flags:
                value = {"permitted": permitted, "inheritable": inheritable, "effective": effective}[sets[flag]]
                value = value & ~mask if op == "-" else value | mask
                if flag == "p":
                    permitted = value
                elif flag == "i":
                    inheritable = value
                else:
                    effective = value
    return permitted, inheritable, effective != 0


def capability_xattr(text: str) -> bytes:
    """The value of `security.capability` for rpm's FILECAPS text (empty text: no capabilities)."""
    permitted, inheritable, effective = parse_caps(text)
    magic = VFS_CAP_REVISION_2 | (VFS_CAP_FLAGS_EFFECTIVE if effective else 0)
    return struct.pack(
        "<IIIII", magic, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF, permitted >> 32, inheritable >> 32
    )

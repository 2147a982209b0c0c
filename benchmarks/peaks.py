"""Per-process peak memory: VmHWM of every process in a command's tree, read at each one's exit."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from dataclasses import dataclass, field

_PTRACE_TRACEME, _PTRACE_CONT, _PTRACE_SETOPTIONS, _PTRACE_GETEVENTMSG = 0, 7, 0x4200, 0x4201
_O_TRACEFORK, _O_TRACEVFORK, _O_TRACECLONE, _O_TRACEEXEC, _O_TRACEEXIT = 0x02, 0x04, 0x08, 0x10, 0x40
_EVENT_FORK, _EVENT_EXEC, _EVENT_EXIT = 1, 4, 6
_WALL = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


@dataclass
class TreePeaks:
    """`own_kib`: the command's own VmHWM; `children`: (program, VmHWM KiB) of every descendant with memory of
    its own. A fork that never exec'd is named "fork of <program>": its VmHWM counts the pages it shares
    copy-on-write with its parent, so it is no memory of its own (libostree forks one to watch fsfreeze)."""

    own_kib: int = 0
    children: list[tuple[str, int]] = field(default_factory=list)
    returncode: int = 0


def _ptrace(request: int, pid: int, data: int = 0, addr: object = None) -> None:
    if _libc.ptrace(request, pid, addr, data) == -1:
        err = ctypes.get_errno()
        if err != 3:  # ESRCH: the tracee was killed meanwhile
            raise OSError(err, os.strerror(err))


def _vmhwm(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None
    if "VmHWM" not in fields:
        return None
    return exe, int(fields["VmHWM"].split()[0])


def tree_peaks(argv: list[str], **popen: object) -> TreePeaks:
    """Run `argv` traced (fork, clone, exec and exit events only) and read each process's VmHWM at its exit
    stop, before its memory is released. VmHWM belongs to the process's own address space after exec,
    unlike wait4's ru_maxrss, which also holds the spawning process's peak (vfork shares its mm up to exec)
    and the peak of every descendant."""
    proc = subprocess.Popen(argv, preexec_fn=lambda: _ptrace(_PTRACE_TRACEME, 0), **popen)  # type: ignore[call-overload]
    root, peaks = proc.pid, TreePeaks()
    options = _O_TRACEFORK | _O_TRACEVFORK | _O_TRACECLONE | _O_TRACEEXEC | _O_TRACEEXIT
    own_mm, exec_ed = {root}, {root}  # a vfork child shares its parent's memory until exec, a thread always
    started: set[int] = set()
    while True:
        try:
            pid, status = os.waitpid(-1, _WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if pid == root:
                peaks.returncode = os.waitstatus_to_exitcode(status)
            continue
        if not os.WIFSTOPPED(status):
            continue
        sig, event = os.WSTOPSIG(status), status >> 16
        deliver = 0
        if pid == root and pid not in started:
            _ptrace(_PTRACE_SETOPTIONS, pid, options)  # the exec's SIGTRAP after TRACEME
        elif event == _EVENT_FORK:  # a fork copies the address space; vfork and clone share it
            child = ctypes.c_ulong()
            _ptrace(_PTRACE_GETEVENTMSG, pid, ctypes.addressof(child))
            own_mm.add(child.value)
        elif event == _EVENT_EXEC:
            own_mm.add(pid)
            exec_ed.add(pid)
        elif event == _EVENT_EXIT:
            if pid in own_mm and (found := _vmhwm(pid)) is not None:  # threads and unexec'd vfork children are not
                if pid == root:
                    peaks.own_kib = found[1]
                else:
                    peaks.children.append(found if pid in exec_ed else (f"fork of {found[0]}", found[1]))
        elif event == 0 and not (sig == signal.SIGSTOP and pid not in started):
            deliver = sig  # a real signal for the tracee; the first SIGSTOP of a new tracee is ptrace's
        started.add(pid)
        _ptrace(_PTRACE_CONT, pid, deliver)
    return peaks

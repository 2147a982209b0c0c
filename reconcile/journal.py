"""Structured journal entries when systemd runs reconcile (JOURNAL_STREAM names our stderr or stdout).

The native protocol (systemd.journal-fields(7), "Native Journal Protocol"): one datagram of FIELD=value lines,
a value with a newline sent as FIELD, newline, its length as 64-bit little endian, the bytes. A datagram too
large for the socket goes as a sealed memfd instead. Sending never fails a run: the journal is a witness.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import socket
import struct
import sys

log = logging.getLogger("reconcile.journal")

SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "reconcile"
# Our own message catalog IDs, so `journalctl MESSAGE_ID=…` finds one kind of entry (field names as rpm-ostree's).
PLAN_APPLIED = "5b1d0d6c3f7e4a4f9f6a3f2f0c9d1e01"
SCRIPT_RAN = "5b1d0d6c3f7e4a4f9f6a3f2f0c9d1e02"
RESULT = "5b1d0d6c3f7e4a4f9f6a3f2f0c9d1e03"
FAILED = "5b1d0d6c3f7e4a4f9f6a3f2f0c9d1e04"

ERR, WARNING, INFO = 3, 4, 6


def stream_is_ours() -> bool:
    """JOURNAL_STREAM is inherited by children whose output went elsewhere: trust it only for our own fds."""
    try:
        dev, ino = (int(x) for x in os.environ.get("JOURNAL_STREAM", "").split(":"))
    except ValueError:
        return False
    for stream in (sys.stderr, sys.stdout):
        try:
            st = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):
            continue
        if (st.st_dev, st.st_ino) == (dev, ino):
            return True
    return False


def encode(fields: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class Journal:
    def __init__(self, path: str = SOCKET, command: str = "") -> None:
        self.path = path
        self.command = command
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, command: str = "") -> Journal | None:
        """A journal when systemd connected our output to it; None otherwise (plain stderr lines suffice)."""
        return cls(command=command) if stream_is_ours() and os.path.exists(SOCKET) else None

    def send(self, message: str, priority: int = INFO, /, **fields: object) -> None:
        entry = {"MESSAGE": message, "PRIORITY": str(priority), "SYSLOG_IDENTIFIER": IDENTIFIER}
        if self.command:
            entry["RECONCILE_COMMAND"] = self.command
        entry.update({k: str(v) for k, v in fields.items() if v is not None})
        try:
            self._send(encode(entry))
        except OSError as e:
            log.debug("could not write to the journal at %s: %s", self.path, e)

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(data, self.path)
        except OSError as e:
            if e.errno not in (90, 105):  # EMSGSIZE, ENOBUFS: too large for a datagram
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("reconcile-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
            assert self._sock is not None
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
            self._sock.sendmsg([], rights, 0, self.path)
        finally:
            os.close(fd)

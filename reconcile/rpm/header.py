"""A strict reader for RPM headers: the lead, signature and main header of a `.rpm`, or an rpmdb blob.

Values are decoded lazily, so reading a base rpmdb of thousands of headers only pays for the tags used.
Every count, offset and size is bounds-checked against rpm's own limits before use: a hostile header
gets a `HeaderError`, never an IndexError or a huge allocation.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

LEAD_SIZE = 96
LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
# rpm's limits (lib/header.c): tag count and data size of one header; the signature header is small.
MAX_TAGS = 0xFFFF
MAX_DATA = 0x0FFFFFFF
MAX_SIG_TAGS = 64
MAX_SIG_DATA = 64 * 1024 * 1024

# Tag numbers, from rpmtag.h.
NAME, VERSION, RELEASE, EPOCH, SUMMARY, BUILDTIME, ARCH, SIZE = 1000, 1001, 1002, 1003, 1004, 1006, 1022, 1009
SOURCERPM = 1044
FILESIZES, FILEMODES, FILERDEVS, FILEDIGESTS, FILELINKTOS, FILEFLAGS = 1028, 1030, 1033, 1035, 1036, 1037
FILEUSERNAME, FILEGROUPNAME, FILEDEVICES, FILEINODES = 1039, 1040, 1095, 1096
DIRINDEXES, BASENAMES, DIRNAMES, OLDFILENAMES = 1116, 1117, 1118, 1027
LONGFILESIZES, FILECAPS, FILEDIGESTALGO = 5008, 5010, 5011
PROVIDENAME, PROVIDEFLAGS, PROVIDEVERSION = 1047, 1112, 1113
REQUIRENAME, REQUIREFLAGS, REQUIREVERSION = 1049, 1048, 1050
CONFLICTNAME, CONFLICTFLAGS, CONFLICTVERSION = 1054, 1053, 1055
OBSOLETENAME, OBSOLETEFLAGS, OBSOLETEVERSION = 1090, 1114, 1115
RECOMMENDNAME, RECOMMENDVERSION, RECOMMENDFLAGS = 5046, 5047, 5048
SUGGESTNAME, SUGGESTVERSION, SUGGESTFLAGS = 5049, 5050, 5051
SUPPLEMENTNAME, SUPPLEMENTVERSION, SUPPLEMENTFLAGS = 5052, 5053, 5054
ENHANCENAME, ENHANCEVERSION, ENHANCEFLAGS = 5055, 5056, 5057
PAYLOADFORMAT, PAYLOADCOMPRESSOR = 1124, 1125
PAYLOADDIGEST, PAYLOADDIGESTALGO = 5092, 5093
# Signature header tags.
SIG_SHA1, SIG_SHA256 = 269, 273

# Script tags: body tag -> (interpreter tag, name as rpm's spec syntax spells it).
SCRIPT_TAGS: dict[int, tuple[int, str]] = {
    1151: (1153, "%pretrans"),
    1023: (1085, "%pre"),
    1024: (1086, "%post"),
    1025: (1087, "%preun"),
    1026: (1088, "%postun"),
    1152: (1154, "%posttrans"),
    1079: (1091, "%verifyscript"),
    1065: (1092, "%trigger"),
    5066: (5067, "%filetrigger"),
    5076: (5077, "%transfiletrigger"),
}

# Dependency sense flags (rpmds.h).
SENSE_LESS, SENSE_GREATER, SENSE_EQUAL = 2, 4, 8
SENSE_RPMLIB = 1 << 24
# File flags (rpmfiles.h).
FILE_CONFIG, FILE_DOC, FILE_GHOST = 1, 2, 64

_T_NULL, _T_CHAR, _T_INT8, _T_INT16, _T_INT32, _T_INT64 = 0, 1, 2, 3, 4, 5
_T_STRING, _T_BIN, _T_STRING_ARRAY, _T_I18NSTRING = 6, 7, 8, 9
_INT_FORMATS = {_T_CHAR: "B", _T_INT8: "B", _T_INT16: "H", _T_INT32: "I", _T_INT64: "Q"}
_ALIGN = {_T_INT16: 2, _T_INT32: 4, _T_INT64: 8}
_STRING_TYPES = (_T_STRING, _T_STRING_ARRAY, _T_I18NSTRING)


class HeaderError(ValueError):
    """The bytes are not a well-formed RPM header."""


@dataclass(frozen=True, slots=True)
class _Entry:
    type: int
    offset: int
    count: int


class Header:
    """One header structure; `blob` is the index+store (without the 8-byte magic)."""

    def __init__(self, blob: bytes, *, max_tags: int = MAX_TAGS, max_data: int = MAX_DATA) -> None:
        if len(blob) < 8:
            raise HeaderError("header is truncated before its index")
        il, dl = struct.unpack_from(">II", blob, 0)
        if il < 1 or il > max_tags:
            raise HeaderError(f"header declares {il} tags (the limit is {max_tags})")
        if dl > max_data:
            raise HeaderError(f"header declares {dl} bytes of data (the limit is {max_data})")
        store_start = 8 + 16 * il
        if len(blob) < store_start + dl:
            raise HeaderError("header is truncated: its index and data are longer than the bytes given")
        self.blob = bytes(blob[: store_start + dl])
        self._store_start = store_start
        self._entries: dict[int, _Entry] = {}
        for i in range(il):
            tag, typ, offset, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
            if typ > _T_I18NSTRING or offset < 0 or offset > dl or count < 1 or count > dl + 1:
                raise HeaderError(f"header tag {tag} has an invalid type, offset or count")
            if typ in _ALIGN and offset % _ALIGN[typ]:
                raise HeaderError(f"header tag {tag} is misaligned")
            if typ in _INT_FORMATS and offset + count * struct.calcsize(_INT_FORMATS[typ]) > dl:
                raise HeaderError(f"header tag {tag} runs past the end of the data")
            if typ == _T_BIN and offset + count > dl:
                raise HeaderError(f"header tag {tag} runs past the end of the data")
            self._entries[tag] = _Entry(typ, offset, count)

    @property
    def size(self) -> int:
        return len(self.blob)

    def __contains__(self, tag: int) -> bool:
        return tag in self._entries

    def _strings(self, e: _Entry, tag: int) -> list[str]:
        out: list[str] = []
        blob, pos, end = self.blob, self._store_start + e.offset, len(self.blob)
        for _ in range(1 if e.type == _T_STRING else e.count):
            nul = blob.find(b"\0", pos, end)
            if nul < 0:
                raise HeaderError(f"header tag {tag} has an unterminated string")
            out.append(blob[pos:nul].decode("utf-8", "surrogateescape"))
            pos = nul + 1
        return out

    def strings(self, tag: int) -> list[str]:
        e = self._entries.get(tag)
        if e is None:
            return []
        if e.type not in _STRING_TYPES:
            raise HeaderError(f"header tag {tag} is not a string")
        return self._strings(e, tag)

    def string(self, tag: int, default: str = "") -> str:
        values = self.strings(tag)
        return values[0] if values else default

    def integers(self, tag: int) -> list[int]:
        e = self._entries.get(tag)
        if e is None:
            return []
        fmt = _INT_FORMATS.get(e.type)
        if fmt is None:
            raise HeaderError(f"header tag {tag} is not an integer")
        return list(struct.unpack_from(f">{e.count}{fmt}", self.blob, self._store_start + e.offset))

    def integer(self, tag: int, default: int | None = None) -> int | None:
        values = self.integers(tag)
        return values[0] if values else default

    def binary(self, tag: int) -> bytes:
        e = self._entries.get(tag)
        if e is None:
            return b""
        if e.type != _T_BIN:
            raise HeaderError(f"header tag {tag} is not binary")
        start = self._store_start + e.offset
        return self.blob[start : start + e.count]


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise HeaderError(f"file is truncated in the {what}")
    return data


def _read_header(f: BinaryIO, what: str, max_tags: int, max_data: int) -> tuple[Header, bytes]:
    intro = _read_exact(f, 16, what)
    if intro[:4] != HEADER_MAGIC:
        raise HeaderError(f"bad magic at the start of the {what}")
    il, dl = struct.unpack_from(">II", intro, 8)
    if il < 1 or il > max_tags:
        raise HeaderError(f"the {what} declares {il} tags (the limit is {max_tags})")
    if dl > max_data:
        raise HeaderError(f"the {what} declares {dl} bytes of data (the limit is {max_data})")
    rest = _read_exact(f, 16 * il + dl, what)
    return Header(intro[8:] + rest, max_tags=max_tags, max_data=max_data), intro + rest


@dataclass(frozen=True)
class RpmHeaders:
    """What precedes the payload of a `.rpm`: raw bytes for the rpmdb and the parsed headers."""

    signature: Header
    header: Header
    raw: bytes
    payload_offset: int

    def verify_header_digest(self) -> None:
        """Check the signature header's SHA-256 (or SHA-1) of the main header, as rpm does."""
        main = self.raw[self.payload_offset - self.header.size - 8 : self.payload_offset]
        want = self.signature.string(SIG_SHA256)
        if want:
            if hashlib.sha256(main).hexdigest() != want:
                raise HeaderError("the header's SHA-256 digest does not match its signature header")
            return
        want = self.signature.string(SIG_SHA1)
        if want and hashlib.sha1(main).hexdigest() != want:
            raise HeaderError("the header's SHA-1 digest does not match its signature header")


def read_rpm_headers(f: BinaryIO) -> RpmHeaders:
    """Read lead, signature and main header from a `.rpm` stream positioned at its start."""
    lead = _read_exact(f, LEAD_SIZE, "lead")
    if lead[:4] != LEAD_MAGIC:
        raise HeaderError("not an RPM file (bad lead magic)")
    signature, sig_raw = _read_header(f, "signature header", MAX_SIG_TAGS, MAX_SIG_DATA)
    padding = (8 - len(sig_raw) % 8) % 8
    pad = _read_exact(f, padding, "signature padding")
    header, hdr_raw = _read_header(f, "header", MAX_TAGS, MAX_DATA)
    raw = lead + sig_raw + pad + hdr_raw
    return RpmHeaders(signature=signature, header=header, raw=raw, payload_offset=len(raw))


def header_from_blob(blob: bytes) -> Header:
    """Parse an rpmdb blob (a header without its magic)."""
    return Header(blob)


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    flags: int
    version: str

    def __str__(self) -> str:
        op = sense_to_operator(self.flags)
        return f"{self.name} {op} {self.version}" if op and self.version else self.name


def sense_to_operator(flags: int) -> str:
    return {
        SENSE_LESS: "<",
        SENSE_LESS | SENSE_EQUAL: "<=",
        SENSE_EQUAL: "=",
        SENSE_GREATER | SENSE_EQUAL: ">=",
        SENSE_GREATER: ">",
    }.get(flags & (SENSE_LESS | SENSE_GREATER | SENSE_EQUAL), "")


DEPENDENCY_TAGS = {
    "provides": (PROVIDENAME, PROVIDEFLAGS, PROVIDEVERSION),
    "requires": (REQUIRENAME, REQUIREFLAGS, REQUIREVERSION),
    "conflicts": (CONFLICTNAME, CONFLICTFLAGS, CONFLICTVERSION),
    "obsoletes": (OBSOLETENAME, OBSOLETEFLAGS, OBSOLETEVERSION),
    "recommends": (RECOMMENDNAME, RECOMMENDFLAGS, RECOMMENDVERSION),
    "suggests": (SUGGESTNAME, SUGGESTFLAGS, SUGGESTVERSION),
    "supplements": (SUPPLEMENTNAME, SUPPLEMENTFLAGS, SUPPLEMENTVERSION),
    "enhances": (ENHANCENAME, ENHANCEFLAGS, ENHANCEVERSION),
}


def dependencies(h: Header, kind: str) -> list[Dependency]:
    name_tag, flags_tag, version_tag = DEPENDENCY_TAGS[kind]
    names = h.strings(name_tag)
    flags = h.integers(flags_tag) or [0] * len(names)
    versions = h.strings(version_tag) or [""] * len(names)
    if not (len(names) == len(flags) == len(versions)):
        raise HeaderError(f"the {kind} of the header have inconsistent lengths")
    return [Dependency(n, f, v) for n, f, v in zip(names, flags, versions, strict=True)]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a package as its header describes it."""

    path: str
    mode: int
    size: int
    user: str
    group: str
    flags: int
    digest: str
    linkto: str
    device: int
    inode: int
    caps: str

    @property
    def is_ghost(self) -> bool:
        return bool(self.flags & FILE_GHOST)


def file_paths(h: Header) -> list[str]:
    basenames = h.strings(BASENAMES)
    if not basenames:
        return h.strings(OLDFILENAMES)
    dirnames = h.strings(DIRNAMES)
    indexes = h.integers(DIRINDEXES)
    if len(indexes) != len(basenames) or any(i >= len(dirnames) for i in indexes):
        raise HeaderError("the header's file list is inconsistent (dirindexes)")
    return [dirnames[i] + b for i, b in zip(indexes, basenames, strict=True)]


def file_entries(h: Header) -> list[FileEntry]:
    paths = file_paths(h)
    n = len(paths)
    if n == 0:
        return []

    def column(values: list, default: object, what: str) -> list:
        if not values:
            return [default] * n
        if len(values) != n:
            raise HeaderError(f"the header's file {what} list has {len(values)} entries for {n} files")
        return values

    sizes = column(h.integers(LONGFILESIZES) or h.integers(FILESIZES), 0, "size")
    modes = column(h.integers(FILEMODES), 0o100644, "mode")
    users = column(h.strings(FILEUSERNAME), "root", "user")
    groups = column(h.strings(FILEGROUPNAME), "root", "group")
    flags = column(h.integers(FILEFLAGS), 0, "flags")
    digests = column(h.strings(FILEDIGESTS), "", "digest")
    links = column(h.strings(FILELINKTOS), "", "link target")
    devices = column(h.integers(FILEDEVICES), 0, "device")
    inodes = column(h.integers(FILEINODES), 0, "inode")
    caps = column(h.strings(FILECAPS), "", "capability")
    return [
        FileEntry(p, m, s, u, g, fl, d, lk, dv, ino, c)
        for p, m, s, u, g, fl, d, lk, dv, ino, c in zip(
            paths, modes, sizes, users, groups, flags, digests, links, devices, inodes, caps, strict=True
        )
    ]


def scripts(h: Header) -> Iterator[tuple[str, str]]:
    """Yield (script type, interpreter) for every scriptlet the header carries."""
    for body_tag, (prog_tag, label) in SCRIPT_TAGS.items():
        if body_tag in h or prog_tag in h:
            progs = h.strings(prog_tag) if prog_tag in h else []
            yield label, (progs[0] if progs else "/bin/sh")

"""The strict header reader, cross-checked against rpm itself and rpmfile, and against hostile input."""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pytest
import rpmfile
from support import Dir, File, Package, RpmFactory, Symlink

from reconcile.rpm import header as h
from reconcile.rpm.nevra import Nevra

SAMPLE = Package(
    "sample",
    version="2.0",
    release="3",
    epoch=1,
    requires=("/bin/sh", "libfoo.so.1()(64bit)", "bar >= 1.2"),
    provides=("sample-virtual = 9",),
    files=(
        File("/usr/bin/sample", "#!/bin/sh\n", mode=0o4755),
        Dir("/usr/share/sample", mode=0o750, user="daemon"),
        Symlink("/usr/share/sample/link", "../x"),
        File("/etc/sample.conf", "x=1\n", config=True),
    ),
)


@pytest.fixture(scope="module")
def sample(rpms: RpmFactory) -> Path:
    return rpms.build(SAMPLE)


def rpm_query(path: Path, fmt: str) -> str:
    return subprocess.run(["rpm", "-qp", "--qf", fmt, str(path)], capture_output=True, text=True, check=True).stdout


def test_matches_rpm_and_rpmfile(sample: Path) -> None:
    with open(sample, "rb") as f:
        parsed = h.read_rpm_headers(f)
    parsed.verify_header_digest()
    hdr = parsed.header
    assert str(Nevra.from_header(hdr)) == rpm_query(sample, "%{NAME}-%{EPOCH}:%{VERSION}-%{RELEASE}.%{ARCH}")
    files = h.file_entries(hdr)
    assert [f.path for f in files] == rpm_query(sample, "[%{FILENAMES}\n]").split()
    assert [f.mode for f in files] == [int(x) for x in rpm_query(sample, "[%{FILEMODES}\n]").split()]
    assert [f.user for f in files] == rpm_query(sample, "[%{FILEUSERNAME}\n]").split()
    requires = [str(d) for d in h.dependencies(hdr, "requires") if not d.name.startswith("rpmlib(")]
    assert requires == [line for line in rpm_query(sample, "[%{REQUIRENEVRS}\n]").splitlines() if "rpmlib(" not in line]
    with rpmfile.open(sample) as rf:
        assert rf.headers["name"] == b"sample"
        assert rf.headers["version"] == b"2.0"
    assert parsed.payload_offset == len(parsed.raw)


def test_tampered_header_fails_its_digest(sample: Path) -> None:
    data = bytearray(sample.read_bytes())
    with open(sample, "rb") as f:
        parsed = h.read_rpm_headers(f)
    at = parsed.raw.find(b"sample", parsed.payload_offset - parsed.header.size)
    data[at] = ord("S")
    tampered = h.read_rpm_headers(io.BytesIO(bytes(data)))
    with pytest.raises(h.HeaderError, match="SHA-256 digest does not match"):
        tampered.verify_header_digest()


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (struct.pack(">II", 0x10000, 0), "declares 65536 tags"),
        (struct.pack(">II", 1, 0x10000000), "bytes of data"),
        (struct.pack(">II", 2, 4) + b"\0" * 16, "truncated"),
        (struct.pack(">II", 1, 4) + struct.pack(">iIiI", 1000, 6, 0, 1) + b"abcd", "unterminated"),
        (struct.pack(">II", 1, 4) + struct.pack(">iIiI", 1000, 4, 0, 2) + b"\0" * 4, "runs past"),
        (struct.pack(">II", 1, 4) + struct.pack(">iIiI", 1000, 4, 2, 1) + b"\0" * 4, "misaligned"),
        (struct.pack(">II", 1, 4) + struct.pack(">iIiI", 1000, 99, 0, 1) + b"\0" * 4, "invalid type"),
    ],
)
def test_hostile_headers_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(h.HeaderError, match=message):
        hdr = h.header_from_blob(blob)
        hdr.strings(1000)


def test_not_an_rpm() -> None:
    with pytest.raises(h.HeaderError, match="lead magic"):
        h.read_rpm_headers(io.BytesIO(b"\0" * 200))
    with pytest.raises(h.HeaderError, match="truncated"):
        h.read_rpm_headers(io.BytesIO(b"\xed\xab\xee\xdb" + b"\0" * 20))

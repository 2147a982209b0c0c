"""Real repo servers on 127.0.0.1 for the tests: HTTP and HTTPS (a CA made in the test, optionally requiring a
client certificate), byte ranges, and faults on request: a delay on every response, a connection dropped
mid-file (every time) or reset, a body that never comes, a trickle below any sane minrate, missing files, an
error status, damaged bytes; plus an HTTP proxy with credentials."""

from __future__ import annotations

import base64
import http.server
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Faults:
    delay: float = 0.0  # seconds added before every response
    drop_after: dict[str, int] = field(default_factory=dict)  # path suffix -> bytes sent before every drop
    trickle: dict[str, float] = field(default_factory=dict)  # path suffix -> bytes per second
    missing: set[str] = field(default_factory=set)  # path suffixes answered with 404
    corrupt: set[str] = field(default_factory=set)  # path suffixes served with bytes flipped, the length kept
    status: dict[str, int] = field(default_factory=dict)  # path suffix -> an HTTP error status, every time
    reset_after: dict[str, int] = field(default_factory=dict)  # path suffix -> bytes sent before a TCP reset
    stall: set[str] = field(default_factory=set)  # path suffixes whose body never comes (headers only)
    fail_first: dict[str, int] = field(default_factory=dict)  # path suffix -> how many requests get a 503 first
    log: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header or "")
    concurrency: list[int] = field(default_factory=list)  # requests in flight when each one started
    active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def match(self, table: dict | set, path: str) -> str | None:
        return next((k for k in table if path.endswith(k)), None)


class _Handler(http.server.SimpleHTTPRequestHandler):
    faults: Faults
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        faults = self.faults
        with faults.lock:
            faults.active += 1
            faults.concurrency.append(faults.active)
        try:
            self._get(faults)
        finally:
            with faults.lock:
                faults.active -= 1

    def _get(self, faults: Faults) -> None:
        faults.log.append((self.path, self.headers.get("Range", "")))
        if faults.delay:
            time.sleep(faults.delay)
        if faults.match(faults.missing, self.path):
            self.send_error(404)
            return
        erring = faults.match(faults.status, self.path)
        if erring:
            self.send_error(faults.status[erring])
            return
        failing = faults.match(faults.fail_first, self.path)
        if failing and faults.fail_first[failing] > 0:
            faults.fail_first[failing] -= 1
            self.send_error(503)
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if faults.match(faults.corrupt, self.path):
            data = bytes(b ^ 0x5A if 16 <= i < len(data) - 16 else b for i, b in enumerate(data))
        start, end = 0, len(data) - 1
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            start = int(first) if first else 0
            end = min(int(last), len(data) - 1) if last else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start : end + 1]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        drop = faults.match(faults.drop_after, self.path)
        if drop and len(body) > faults.drop_after[drop]:
            self.wfile.write(body[: faults.drop_after[drop]])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        reset = faults.match(faults.reset_after, self.path)
        if reset:
            self.wfile.write(body[: faults.reset_after[reset]])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # with linger 0: a RST, not a FIN
            self.close_connection = True
            return
        if faults.match(faults.stall, self.path):
            self.wfile.flush()
            time.sleep(120)  # the client gives up first (its timeout); the server thread is a daemon
            return
        slow = faults.match(faults.trickle, self.path)
        if slow:
            for i in range(len(body)):
                try:
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1 / faults.trickle[slow])
            return
        self.wfile.write(body)


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    client_ca: Path | None = None  # require a client certificate signed by this CA


@dataclass
class Server:
    url: str
    faults: Faults
    port: int


@contextmanager
def serve(root: Path, faults: Faults | None = None, tls: Tls | None = None, port: int = 0) -> Iterator[Server]:
    """Serve `root` until the block ends (on `port`, to come back at the same URL)."""
    faults = faults or Faults()
    handler = type("Handler", (_Handler,), {"faults": faults})

    def factory(*args: object) -> http.server.BaseHTTPRequestHandler:
        return handler(*args, directory=str(root))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), factory)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        if tls.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(tls.client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield Server(f"{scheme}://127.0.0.1:{port}", faults, port)
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL on which nothing listens (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


# -- a forward proxy ------------------------------------------------------------------------------------
@dataclass
class Proxy:
    url: str
    seen: list[str]


@contextmanager
def forward_proxy(user: str, password: str) -> Iterator[Proxy]:
    """An HTTP proxy that demands Basic credentials and forwards plain-HTTP GETs."""
    seen: list[str] = []
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class ProxyHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Proxy-Authorization") != expected:
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seen.append(self.path)
            try:
                with urllib.request.urlopen(self.path, timeout=10) as upstream:
                    body = upstream.read()
                    status = upstream.status
            except urllib.error.HTTPError as e:
                body, status = b"", e.code
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Proxy(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


# -- certificates ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here

    def tls(self, *, require_client: bool = False) -> Tls:
        return Tls(self.server_cert, self.server_key, self.ca if require_client else None)


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-subj",
            f"/CN=reconcile test {ca}",
            "-days",
            "2",
        )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=127.0.0.1 {name}",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        )
    for key in directory.glob("*.key"):
        os.chmod(key, 0o600)
    d = directory
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key", d / "other-ca.crt")

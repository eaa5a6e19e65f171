"""The worker-side HTTP(S) proxy a networked sandbox talks to: the only way out of its network
namespace. It listens on a Unix socket bind-mounted into the sandbox (the launcher bridges it to
``127.0.0.1:<port>`` there and points ``http_proxy``/``https_proxy`` at it) and asks
``allow(host, port)`` before every connection.

Understood: ``CONNECT host:port`` (HTTPS and any other TLS or TCP a client tunnels) and
absolute-form requests (``GET http://host:port/path``), sent on as one request with
``Connection: close``. Anything else — an ambiguous authority (user-info, backslash, control
characters, a bad port), a refused destination, an upstream that cannot be reached — gets an
HTTP error and is closed. DNS is resolved here, by ``connect`` (default
``socket.create_connection``): pass the http action's resolve-check-connect function to hold
the sandbox to the same SSRF rules."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from errors import SandboxError

logger = logging.getLogger(__name__)

Allow = Callable[[str, int], bool]
Connect = Callable[[str, int], socket.socket]

HEAD_LIMIT = 16 * 1024
CHUNK = 65536
HOP_BY_HOP = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


class ProxyRefusal(SandboxError):
    """Why a request from the sandbox is answered with an error instead of being passed on."""

    code = "proxy_refused"

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SandboxProxy:
    def __init__(self, path: Path, allow: Allow, *, connect: Connect | None = None,
                 owner: tuple[int, int] | None = None, connect_timeout_s: float = 10.0) -> None:
        self.path = path
        self.allow = allow
        self.connect = connect or (lambda host, port: socket.create_connection(
            (host, port), timeout=connect_timeout_s))
        self.owner = owner
        self.decisions: list[tuple[str, int, bool]] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> SandboxProxy:
        self._server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        if self.owner is not None:
            os.chown(self.path, *self.owner)
        self._server.listen(64)
        self._thread = threading.Thread(target=self._accept_loop, name="sandbox-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), name="sandbox-proxy-conn",
                             daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            head, rest = _read_head(client)
            method, target, version, headers = _parse_head(head)
            host, port = _destination(method, target, headers)
            allowed = bool(self.allow(host, port))
            self.decisions.append((host, port, allowed))
            if not allowed:
                raise ProxyRefusal(403, f"{host}:{port} is not an allowed destination")
            try:
                upstream = self.connect(host, port)
            except OSError as exc:
                raise ProxyRefusal(502, f"cannot reach {host}:{port}: {exc.strerror or exc}") from exc
            upstream.settimeout(None)
            self._track(upstream)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                upstream.sendall(_origin_form(method, target, version, headers) + rest)
            _relay(client, upstream)
        except ProxyRefusal as refusal:
            _answer(client, refusal.status, refusal.reason)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._untrack(sock)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()


def _read_head(client: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_LIMIT:
            raise ProxyRefusal(431, "request head too large")
        chunk = client.recv(CHUNK)
        if not chunk:
            raise ProxyRefusal(400, "connection closed before the request head ended")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProxyRefusal(400, "request head is not ASCII") from exc
    request_line, *header_lines = text.split("\r\n")
    pieces = request_line.split(" ")
    if len(pieces) != 3 or not pieces[2].startswith("HTTP/1."):
        raise ProxyRefusal(400, "malformed request line")
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProxyRefusal(400, "malformed header line")
        headers.append((name, value.strip()))
    return pieces[0], pieces[1], pieces[2], headers


def _destination(method: str, target: str, headers: list[tuple[str, str]]) -> tuple[str, int]:
    if method == "CONNECT":
        return parse_authority(target, default_port=None)
    scheme, sep, remainder = target.partition("://")
    if not sep or scheme.lower() != "http":
        raise ProxyRefusal(400, "only CONNECT and absolute http:// requests are proxied")
    authority = remainder.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return parse_authority(authority, default_port=80)


def parse_authority(authority: str, *, default_port: int | None) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (lower-cased host, port); anything a second parser
    could read differently is refused."""
    if not authority or any(c in authority for c in "@\\/ %") or any(
            ord(c) < 0x21 or ord(c) > 0x7e for c in authority):
        raise ProxyRefusal(400, "ambiguous destination")
    if authority.startswith("["):
        host, bracket, tail = authority[1:].partition("]")
        if not bracket or not host or (tail and not tail.startswith(":")):
            raise ProxyRefusal(400, "malformed IPv6 destination")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = authority.partition(":")
        port_text = port_text_raw if colon else None
        if not host or ":" in port_text_raw:
            raise ProxyRefusal(400, "malformed destination")
    if port_text is None:
        if default_port is None:
            raise ProxyRefusal(400, "CONNECT needs host:port")
        return host.lower(), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ProxyRefusal(400, "bad port")
    return host.lower(), int(port_text)


def _origin_form(method: str, target: str, version: str, headers: list[tuple[str, str]]) -> bytes:
    path = "/" + target.partition("://")[2].partition("/")[2]
    kept = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    lines = [f"{method} {path} {version}", *(f"{n}: {v}" for n, v in kept), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _answer(client: socket.socket, status: int, reason: str) -> None:
    body = f"jct sandbox proxy: {reason}\n".encode()
    phrase = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large",
              502: "Bad Gateway"}.get(status, "Error")
    with contextlib.suppress(OSError):
        client.sendall(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
                       f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def _relay(left: socket.socket, right: socket.socket) -> None:
    """Both directions until both have ended; one thread per direction."""
    other = threading.Thread(target=_pump, args=(right, left), daemon=True)
    other.start()
    _pump(left, right)
    other.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)

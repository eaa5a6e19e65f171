"""A real downstream HTTP server for tests: records every request it gets.

``/status/<code>`` answers with that code; ``/slow/<seconds>`` sleeps first; ``/bytes/<n>``
streams an ``n``-byte body (``/stream/<n>``: the same without Content-Length);
``/drip/<n>/<seconds>`` sends ``n`` body bytes one at a time, ``seconds`` apart;
``/redirect`` answers 302 to ``/landed``; ``/echo`` answers with the request's headers and
body as JSON (and a ``Set-Cookie``); anything else 200.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Downstream:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CHUNK = b"x" * (1024 * 1024)


def start_downstream(host: str = "127.0.0.1", port: int = 0) -> Downstream:
    holder: list[Downstream] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            holder[0].requests.append(Received(self.command, self.path, dict(self.headers.items()),
                                               body))
            status = 200
            parts = self.path.partition("?")[0].strip("/").split("/")
            streams = {"bytes": self._bytes, "stream": self._stream, "drip": self._drip,
                       "redirect": self._redirect, "echo": self._echo}
            if parts[0] in streams:
                # the client may stop reading: what the size-cap and deadline tests do
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    streams[parts[0]](parts[1:], body)
                return
            if parts[0] == "status" and len(parts) > 1:
                status = int(parts[1])
            if parts[0] == "slow" and len(parts) > 1:
                time.sleep(float(parts[1]))
            payload = json.dumps({"ok": status < 400, "path": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _bytes(self, args: list[str], body: bytes) -> None:
            size = int(args[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while size > 0:
                chunk = CHUNK[:size]
                self.wfile.write(chunk)
                size -= len(chunk)

        def _stream(self, args: list[str], body: bytes) -> None:
            """Like /bytes, with no Content-Length: the body ends when the connection closes."""
            size = int(args[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            while size > 0:
                chunk = CHUNK[:size]
                self.wfile.write(chunk)
                size -= len(chunk)

        def _drip(self, args: list[str], body: bytes) -> None:
            count, every = int(args[0]), float(args[1])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            for _ in range(count):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(every)

        def _redirect(self, args: list[str], body: bytes) -> None:
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _echo(self, args: list[str], body: bytes) -> None:
            payload = json.dumps({"headers": dict(self.headers.items()),
                                  "body": body.decode("utf-8", "replace")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "session=downstream-cookie")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    downstream = Downstream(server)
    holder.append(downstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return downstream

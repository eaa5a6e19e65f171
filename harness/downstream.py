"""A real downstream HTTP server for tests: records every request it gets.

``/status/<code>`` answers with that code; ``/slow/<seconds>`` sleeps first; anything else 200.
"""

from __future__ import annotations

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


def start_downstream() -> Downstream:
    holder: list[Downstream] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            holder[0].requests.append(Received(self.command, self.path, dict(self.headers.items()),
                                               body))
            status = 200
            parts = self.path.strip("/").split("/")
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

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    downstream = Downstream(server)
    holder.append(downstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return downstream

"""The API's gunicorn worker: gunicorn's threaded worker (``gthread``) with a deadline on each
request's head.

gunicorn's ``sync`` worker reads a request inside its only thread, with no time limit: two
clients that open a connection and drip header bytes stall two sync workers until the arbiter
kills them (``timeout``), and nothing else is answered meanwhile. ``gthread`` waits for idle
connections in one poller, so a connection costs a thread only while bytes arrive; a client
dripping its head still holds one for as long as it drips. This worker gives every request
``head_timeout_s`` from the moment a thread takes the connection until its head (request line
and headers) is read; past that the connection is answered 408 and closed, and the thread is
free again. The body, the application and the response are not limited here (docs/security.md:
a buffering reverse proxy in front bounds slow bodies too).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

_TIMEOUT_BODY = b'{"error": "request_timeout", "detail": "the request head took too long to arrive"}\n'
TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


class HeadDeadlineWorker(ThreadWorker):
    """``gthread`` that closes connections whose request head is not read in ``head_timeout_s``."""

    head_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads: dict[Any, float] = {}  # connection -> deadline, while its head is read
        self._heads_lock = threading.Lock()

    def handle(self, conn: Any) -> Any:
        """Runs in a pool thread, from taking the connection to the end of its request."""
        with self._heads_lock:
            self._heads[conn] = time.monotonic() + self.head_timeout_s
        try:
            return super().handle(conn)
        finally:
            self._head_done(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        self._head_done(conn)  # the head is in: from here the application has the request
        return super().handle_request(req, conn)

    def murder_pending(self) -> None:
        """Called by the main loop on every turn (at least once a second)."""
        super().murder_pending()
        self._cut_late_heads()

    def _head_done(self, conn: Any) -> None:
        with self._heads_lock:
            self._heads.pop(conn, None)

    def _cut_late_heads(self) -> None:
        now = time.monotonic()
        with self._heads_lock:
            late = [conn for conn, deadline in self._heads.items() if deadline <= now]
            for conn in late:
                del self._heads[conn]
                self._answer_timeout(conn.sock)
        for conn in late:
            self.log.warning("request head not read within %.0fs from %s; connection closed",
                             self.head_timeout_s, _peer(conn))

    @staticmethod
    def _answer_timeout(sock: socket.socket) -> None:
        """408 without blocking (the client may not be reading), then shut the socket: the pool
        thread blocked reading it wakes up and ends the connection."""
        with contextlib.suppress(OSError, ValueError):
            sock.send(TIMEOUT_ANSWER, socket.MSG_DONTWAIT)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def head_deadline_worker(head_timeout_s: float) -> type[HeadDeadlineWorker]:
    """The worker class with its deadline (gunicorn's ``worker_class`` may be a class)."""
    return type("HeadDeadlineWorker", (HeadDeadlineWorker,), {"head_timeout_s": head_timeout_s})


def _peer(conn: Any) -> str:
    client = getattr(conn, "client", None)
    return f"{client[0]}:{client[1]}" if isinstance(client, tuple) and len(client) >= 2 else "?"

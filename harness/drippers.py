"""Slow clients: connections that send a request line, then drip one header byte a second and
never finish — what the API's request-head deadline and threaded workers are for. Used by the
edge tests and ``python -m bench.slow_clients``."""

from __future__ import annotations

import contextlib
import socket
import threading


class Drippers:
    """Connections that send a request line, then one header byte a second, never finishing."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.sockets = [socket.create_connection(address) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stopping.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def held_open(self) -> int:
        """How many the server still holds: open, nothing answered."""
        held = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                held += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return held

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()

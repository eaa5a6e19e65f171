"""How a peer's no-op job tells the bench it started: one UDP datagram to the bench process.

The job body is ``started(sent_at)``: a single ``sendto`` of ``"<sent_at> <now> <pid>"`` (a few
microseconds), the same for every peer. The bench counts datagrams for the end-to-end burn-down
and reads enqueue→start delays from them. Loopback UDP with a large receive buffer does not
drop at these rates; a run reports any shortfall instead of hiding it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field

ENV = "BENCH_PROBE_ADDR"  # host:port of the listener, in the workers' environment

_sock: socket.socket | None = None
_target: tuple[str, int] | None = None


def started(sent_at: float) -> None:
    """Job side: report that the job sent at ``sent_at`` (epoch seconds) starts now."""
    global _sock, _target
    if _sock is None or _target is None:
        host, port = os.environ[ENV].rsplit(":", 1)
        _target = (host, int(port))
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _sock.sendto(f"{sent_at!r} {time.time()!r} {os.getpid()}".encode(), _target)


@dataclass(frozen=True)
class Start:
    sent_at: float
    started_at: float
    pid: int
    arrived: float  # time.time() when the bench received it


@dataclass
class ProbeListener:
    """Bench side: receives every datagram on a thread and keeps them in order."""

    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    starts: list[Start] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def start(self) -> str:
        """Listen; returns the address for ``BENCH_PROBE_ADDR``."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        with contextlib.suppress(OSError, AttributeError):  # root may exceed rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, 16 << 20)  # type: ignore[attr-defined]
        self.sock.bind(("127.0.0.1", 0))
        threading.Thread(target=self._receive, name="probe", daemon=True).start()
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(256)
            except OSError:
                return
            arrived = time.time()
            sent, began, pid = data.decode().split()
            with self._arrived:
                self.starts.append(Start(float(sent), float(began), int(pid), arrived))
                self._arrived.notify_all()

    def mark(self) -> int:
        """A position: ``since(mark)`` returns what arrives after it."""
        with self._lock:
            return len(self.starts)

    def since(self, mark: int) -> list[Start]:
        with self._lock:
            return self.starts[mark:]

    def wait_count(self, mark: int, count: int, timeout: float) -> list[Start]:
        """Wait until ``count`` starts arrived after ``mark`` (or ``timeout``); returns them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.starts) - mark < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(min(left, 1.0))
            return self.starts[mark:]

    def close(self) -> None:
        self.sock.close()

"""The egress policy as the sandbox's proxy asks it: ``allow(host, port)`` for every connection
a command (or a ``checkout`` over http(s)) opens, and ``connect(host, port)`` to exactly the
addresses that were checked, so DNS is asked once and cannot answer differently in between.

The same rules as the ``http`` action (``egress.policy``): ``JCT_HTTP_ALLOWED_HOSTS``, the
tower's own endpoints refused, non-public addresses only by an explicit entry."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from egress.policy import Destination, EgressPolicy, check_url
from errors import JctError

CONNECT_TIMEOUT_S = 10.0


@dataclass
class SandboxGate:
    policy: EgressPolicy
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # host, port, why
    _checked: dict[tuple[str, int], Destination] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, host: str, port: int) -> bool:
        authority = f"[{host}]" if ":" in host else host
        try:
            dest = check_url(f"http://{authority}:{port}/", self.policy)
        except JctError as exc:
            with self._guard:
                self.refused.append((host, port, str(exc)))
            return False
        with self._guard:
            self._checked[(host, port)] = dest
        return True

    def connect(self, host: str, port: int) -> socket.socket:
        with self._guard:
            dest = self._checked.get((host, port))
        if dest is None:
            raise OSError(f"{host}:{port} was not checked")
        last: OSError | None = None
        for address in dest.addresses:
            try:
                return socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                last = exc
        raise last or OSError(f"{host}:{port} has no address")

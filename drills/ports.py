"""Ports for servers a drill stops and starts again on the same port."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def steady_port() -> int:
    """A free loopback port BELOW the ephemeral range. While a server is down the stack keeps
    trying to connect, each attempt from a new ephemeral port; a port picked from that range
    (``bind(0)``) can be taken as a source port meanwhile, and the server then cannot listen
    on it again (RabbitMQ: ``dist_port_already_used``, ``eaddrinuse``)."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = random.sample(range(10000, max(10001, low)), k=min(200, max(1, low - 10000)))
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 10000 and {low}")

"""``network=True``: the worker's proxy is the only way out, and ``allow(host, port)`` decides
every connection (plain HTTP requests and CONNECT tunnels alike)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from errors import SandboxError
from harness.downstream import Downstream, start_downstream
from sandbox.host import SandboxHost
from sandbox.process import SandboxCommand, run
from sandbox.workspace import Workspace


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


GET = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode().strip())
"""

TUNNEL = """
import os, socket, sys
proxy = os.environ["https_proxy"].rsplit(":", 1)
sock = socket.create_connection((proxy[0].split("//")[1], int(proxy[1])), timeout=10)
sock.sendall(f"CONNECT {sys.argv[1]} HTTP/1.1\\r\\nHost: {sys.argv[1]}\\r\\n\\r\\n".encode())
answer = sock.recv(4096).decode()
print(answer.split("\\r\\n")[0])
if " 200 " in answer:
    sock.sendall(b"GET /through-the-tunnel HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    print(data.split(b"\\r\\n")[0].decode())
"""


def test_an_allowed_destination_is_reached_through_the_proxy(
        workspace: Workspace, host: SandboxHost, downstream: Downstream) -> None:
    port = int(downstream.url.rsplit(":", 1)[1])
    asked: list[tuple[str, int]] = []

    def allow(host_name: str, port_number: int) -> bool:
        asked.append((host_name, port_number))
        return (host_name, port_number) == ("127.0.0.1", port)

    result = run(SandboxCommand(argv=["python3", "-c", GET, f"{downstream.url}/from-sandbox?x=1"],
                                network=True), workspace, host=host, allow=allow)
    assert result.output.startswith(b"200"), result
    assert asked == [("127.0.0.1", port)]
    assert result.proxy_decisions == [("127.0.0.1", port, True)]
    [received] = downstream.received("/from-sandbox?x=1")
    assert received.headers.get("Connection") == "close"
    assert not any(name.lower().startswith("proxy-") for name in received.headers)


def test_a_refused_destination_gets_403_and_nothing_is_sent(
        workspace: Workspace, host: SandboxHost, downstream: Downstream) -> None:
    result = run(SandboxCommand(argv=["python3", "-c", GET, f"{downstream.url}/refused"],
                                network=True), workspace, host=host, allow=lambda h, p: False)
    assert result.output.startswith(b"403 jct sandbox proxy:"), result
    assert downstream.requests == []


def test_a_connect_tunnel_is_checked_too(workspace: Workspace, host: SandboxHost,
                                         downstream: Downstream) -> None:
    authority = downstream.url.split("//")[1]
    allowed = run(SandboxCommand(argv=["python3", "-c", TUNNEL, authority], network=True),
                  workspace, host=host, allow=lambda h, p: True)
    assert allowed.output.decode().splitlines() == ["HTTP/1.1 200 Connection established",
                                                    "HTTP/1.0 200 OK"]
    assert len(downstream.received("/through-the-tunnel")) == 1
    refused = run(SandboxCommand(argv=["python3", "-c", TUNNEL, authority], network=True),
                  workspace, host=host, allow=lambda h, p: False)
    assert refused.output.decode().splitlines() == ["HTTP/1.1 403 Forbidden"]
    assert len(downstream.received("/through-the-tunnel")) == 1


def test_names_are_resolved_by_the_proxy_not_in_the_sandbox(
        workspace: Workspace, host: SandboxHost, downstream: Downstream) -> None:
    """``localhost`` is handed to ``allow`` as written; the sandbox has no resolver of its own
    to ask (its network namespace has nothing but loopback)."""
    port = downstream.url.rsplit(":", 1)[1]
    result = run(SandboxCommand(argv=["python3", "-c", GET, f"http://localhost:{port}/by-name"],
                                network=True), workspace, host=host,
                 allow=lambda h, p: h == "localhost")
    assert result.output.startswith(b"200"), result
    assert result.proxy_decisions == [("localhost", int(port), True)]


def test_network_needs_a_policy(workspace: Workspace, host: SandboxHost) -> None:
    with pytest.raises(SandboxError, match="allow"):
        run(SandboxCommand(argv=["true"], network=True), workspace, host=host)

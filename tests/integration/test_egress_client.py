"""The egress client against real local servers (no database): it connects to the checked
address only, streams bodies with bounded memory, and stops at the deadline or on a stop
reason while a response drips in."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from egress.client import KEEP_BYTES, request
from egress.policy import Destination, EgressPolicy, check_url
from errors import (
    ActionTimeout,
    AttemptInterrupted,
    PermanentActionError,
    ResponseTooLarge,
    RetryableActionError,
    TaskCancelled,
)
from harness.downstream import Downstream, start_downstream

ROOT = Path(__file__).resolve().parents[2]
LOCAL = EgressPolicy(allowed=("127.0.0.1",))
MiB = 1024 * 1024


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


def checked(url: str, policy: EgressPolicy = LOCAL, **kwargs: Any) -> Destination:
    return check_url(url, policy, **kwargs)


def far() -> float:
    return time.monotonic() + 120


def test_a_get_goes_to_the_checked_host_with_its_host_header(downstream: Downstream) -> None:
    dest = checked(downstream.url + "/echo?x=1")
    response = request(dest, "GET", {"X-Custom": "yes"}, None, deadline=far(),
                       max_body_bytes=MiB)
    assert response.status == 200
    assert response.headers["Set-Cookie"] == "session=downstream-cookie"
    (received,) = downstream.received("/echo?x=1")
    assert received.headers["Host"] == dest.host_header
    assert received.headers["X-Custom"] == "yes"
    assert received.headers["User-Agent"] == "jct"
    assert json.loads(response.body_head)["headers"]["X-Custom"] == "yes"
    assert response.body_size == len(response.body_head) and not response.truncated


def test_a_body_is_sent_with_its_length(downstream: Downstream) -> None:
    dest = checked(downstream.url + "/hook")
    request(dest, "POST", {"Content-Type": "text/plain"}, b"hello body", deadline=far(),
            max_body_bytes=MiB)
    (received,) = downstream.received("/hook")
    assert received.body == b"hello body"
    assert received.headers["Content-Length"] == "10"


def test_redirects_are_not_followed(downstream: Downstream) -> None:
    response = request(checked(downstream.url + "/redirect"), "GET", {}, None, deadline=far(),
                       max_body_bytes=MiB)
    assert response.status == 302
    assert response.headers["Location"] == "/landed"
    assert downstream.received("/landed") == []


@pytest.mark.parametrize("name", ["Host", "host", "Content-Length", "Transfer-Encoding",
                                  "Connection"])
def test_a_caller_cannot_set_host_or_framing_headers(downstream: Downstream, name: str) -> None:
    with pytest.raises(PermanentActionError, match="set by JCT"):
        request(checked(downstream.url + "/x"), "GET", {name: "internal.example"}, None,
                deadline=far(), max_body_bytes=MiB)
    assert downstream.requests == []


def test_a_header_value_cannot_smuggle_a_second_header(downstream: Downstream) -> None:
    with pytest.raises(PermanentActionError, match="control characters") as caught:
        request(checked(downstream.url + "/x"), "GET", {"X-A": "v\r\nHost: evil"}, None,
                deadline=far(), max_body_bytes=MiB)
    assert "evil" not in str(caught.value)  # a value may be a secret: never quoted
    assert downstream.requests == []


def test_a_closed_port_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableActionError, match="downstream unreachable"):
        request(checked(f"http://127.0.0.1:{port}/"), "GET", {}, None, deadline=far(),
                max_body_bytes=MiB)


# --- DNS rebinding ---------------------------------------------------------------------------

def _second_server_on(port: int) -> Downstream | None:
    try:
        return start_downstream("127.0.0.1", port)
    except OSError:
        return None


@pytest.fixture
def rebinding_pair() -> Iterator[tuple[Downstream, Downstream]]:
    """``checked`` on 127.0.0.2 and ``internal`` on 127.0.0.1, on the same port."""
    for _ in range(20):
        checked_server = start_downstream("127.0.0.2")
        internal = _second_server_on(checked_server.server.server_address[1])
        if internal is not None:
            break
        checked_server.stop()
    else:
        pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")
    yield checked_server, internal
    checked_server.stop()
    internal.stop()


class RebindingResolver:
    """Answers 127.0.0.2 (allowed) to the first lookup and 127.0.0.1 (not allowed) after."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = socket.getaddrinfo

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return self.real(host, port, *args, **kwargs)
        self.calls += 1
        address = "127.0.0.2" if self.calls == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]


def test_a_name_that_rebinds_after_the_check_is_still_called_at_the_checked_address(
        rebinding_pair: tuple[Downstream, Downstream], monkeypatch: pytest.MonkeyPatch) -> None:
    good, internal = rebinding_pair
    port = good.server.server_address[1]
    url = f"http://rebind.test:{port}/hook"
    policy = EgressPolicy(allowed=("127.0.0.2",))

    # The premise: a client that checks and then lets its library resolve again is steered.
    naive = RebindingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", naive)
    assert check_url(url, policy, resolve=naive).addresses == ("127.0.0.2",)
    requests.get(url, timeout=10)
    assert len(internal.received("/hook")) == 1 and good.received("/hook") == []

    # The egress client: one lookup, at check time; the connection goes to that address.
    resolver = RebindingResolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    dest = check_url(url, policy, resolve=resolver)
    response = request(dest, "GET", {}, None, deadline=far(), max_body_bytes=MiB)
    assert response.status == 200
    assert resolver.calls == 1
    (received,) = good.received("/hook")
    assert received.headers["Host"] == f"rebind.test:{port}"
    assert len(internal.received("/hook")) == 1  # still only the naive client's call


# --- bounded memory --------------------------------------------------------------------------

CHILD = """
import json, resource, sys, time
from egress.client import request
from egress.policy import EgressPolicy, check_url

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

dest = check_url(sys.argv[1], EgressPolicy(allowed=("127.0.0.1",)))
before = peak()
response = request(dest, "GET", {}, None, deadline=time.monotonic() + 600,
                   max_body_bytes=int(sys.argv[2]))
print(json.dumps({"before": before, "after": peak(), "size": response.body_size,
                  "kept": len(response.body_head), "truncated": response.truncated}))
"""


def test_a_1_gib_response_is_read_with_bounded_memory(downstream: Downstream) -> None:
    """The client runs in its own process so its peak RSS is its own; the server is here."""
    gib = 1024 * MiB
    done = subprocess.run([sys.executable, "-c", CHILD, f"{downstream.url}/bytes/{gib}",
                           str(2 * gib)], cwd=ROOT, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["size"] == gib
    assert figures["kept"] == KEEP_BYTES and figures["truncated"]
    growth = figures["after"] - figures["before"]
    print(f"1 GiB response: peak RSS {figures['before'] / MiB:.1f} MiB before, "
          f"{figures['after'] / MiB:.1f} MiB after (+{growth / MiB:.1f} MiB)")
    assert growth < 64 * MiB


@pytest.mark.parametrize("route", ["bytes", "stream"])  # declared length, and close-delimited
def test_a_body_past_the_cap_stops_the_call(downstream: Downstream, route: str) -> None:
    with pytest.raises(ResponseTooLarge, match="10485760-byte limit") as caught:
        request(checked(f"{downstream.url}/{route}/{100 * MiB}"), "GET", {}, None,
                deadline=far(), max_body_bytes=10 * MiB)
    partial = caught.value.response
    assert partial.status == 200 and partial.truncated
    if route == "stream":  # read up to the cap, kept only the head
        assert 10 * MiB < partial.body_size <= 10 * MiB + 64 * 1024
        assert len(partial.body_head) == KEEP_BYTES


# --- one deadline, and a stop reason, for a call in flight -------------------------------------

ENDLESS_DRIP = "/drip/100000/0.1"  # 100,000 bytes, one every 0.1 s: hours if nothing stops it


def test_a_drip_is_stopped_by_the_deadline(downstream: Downstream) -> None:
    with pytest.raises(ActionTimeout):
        request(checked(downstream.url + ENDLESS_DRIP), "GET", {}, None,
                deadline=time.monotonic() + 1.0, max_body_bytes=MiB, poll_s=0.05)


@pytest.mark.parametrize(("reason", "error"), [("cancelled", TaskCancelled),
                                               ("worker_shutdown", AttemptInterrupted),
                                               ("lease_lost", AttemptInterrupted)])
def test_a_drip_is_stopped_by_a_stop_reason(downstream: Downstream, reason: str,
                                            error: type[Exception]) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(error) as caught:
        request(checked(downstream.url + ENDLESS_DRIP), "GET", {}, None, deadline=far(),
                max_body_bytes=MiB, should_stop=lambda: reason if stop.is_set() else None,
                poll_s=0.05)
    if isinstance(caught.value, AttemptInterrupted):
        assert caught.value.reason == reason


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """Accepts TCP connections (the kernel does) and never says anything."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("scheme", ["http", "https"])  # waiting for headers / in the handshake
def test_a_silent_peer_is_stopped_by_the_deadline_and_by_cancel(silent_peer: str,
                                                                scheme: str) -> None:
    dest = checked(f"{scheme}://{silent_peer}/")
    with pytest.raises(ActionTimeout):
        request(dest, "GET", {}, None, deadline=time.monotonic() + 0.5, max_body_bytes=MiB,
                poll_s=0.05)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(TaskCancelled):
        request(dest, "GET", {}, None, deadline=far(), max_body_bytes=MiB, poll_s=0.05,
                should_stop=lambda: "cancelled" if stop.is_set() else None)


# --- TLS: the name is used for SNI and the certificate, the checked address for the socket ----

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=tls.test", "-addext", "subjectAltName=DNS:tls.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, list[str | None]]]:
    server_names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = json.dumps({"host": self.headers["Host"]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment,misc]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], server_names
    server.shutdown()
    server.server_close()


def _resolving(names: dict[str, str]) -> Any:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
    return resolve


def test_tls_checks_the_certificate_against_the_name_not_the_address(
        tls_server: tuple[int, list[str | None]], certificate: tuple[Path, Path]) -> None:
    port, server_names = tls_server
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    resolve = _resolving({"tls.test": "127.0.0.1", "other.test": "127.0.0.1"})
    dest = check_url(f"https://tls.test:{port}/", EgressPolicy(allowed=("tls.test", "other.test")),
                     resolve=resolve)
    response = request(dest, "GET", {}, None, deadline=far(), max_body_bytes=MiB,
                       ssl_context=trust)
    assert response.status == 200
    assert json.loads(response.body_head) == {"host": f"tls.test:{port}"}
    assert server_names == ["tls.test"]

    wrong = check_url(f"https://other.test:{port}/", EgressPolicy(allowed=("other.test",)),
                      resolve=resolve)
    with pytest.raises(RetryableActionError, match=r"TLS with other\.test failed"):
        request(wrong, "GET", {}, None, deadline=far(), max_body_bytes=MiB, ssl_context=trust)
    assert server_names == ["tls.test", "other.test"]  # SNI is the URL's name, not the address
    with pytest.raises(RetryableActionError, match=r"TLS with tls\.test failed"):
        request(dest, "GET", {}, None, deadline=far(), max_body_bytes=MiB)  # not a trusted CA

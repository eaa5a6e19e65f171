"""One outgoing HTTP/1.1 call to a destination the egress policy checked.

- It connects to the checked addresses only (``Destination.addresses``): no second DNS lookup,
  so a name cannot be re-pointed between check and use. TLS uses the *name* for SNI and for
  the certificate check. ``Host`` is the checked host; callers cannot override it.
- One deadline bounds the whole call (connect, TLS, send, headers, body). The socket is
  non-blocking and every wait is a short ``select`` slice, after which the deadline and
  ``should_stop()`` are checked again, so neither a slow drip nor a stalled peer outlives the
  deadline, and a cancel or shutdown interrupts a call in flight.
- The body is streamed: the first ``keep_bytes`` are kept, the rest only counted, and past
  ``max_body_bytes`` the call stops with ``ResponseTooLarge``: memory stays bounded whatever
  the response. Redirects are not followed; content is not decoded (no decompression bombs).

HTTP/1.1 framing is ``h11``'s (sans-I/O), so this module owns every socket operation, which
``http.client``/urllib3 do not allow: their buffered reader cannot be resumed after a socket
timeout.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import certifi
import h11

from egress.policy import Destination
from errors import (
    ActionTimeout,
    PermanentActionError,
    ResponseTooLarge,
    RetryableActionError,
    stop_error,
)

KEEP_BYTES = 256 * 1024
RECV_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
# Set from the checked destination and the body; a caller's value would make the request
# differ from what was checked (Host) or desynchronise its framing (the others).
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_T = TypeVar("_T")


@dataclass(frozen=True)
class EgressResponse:
    """What came back. ``body_head`` is the first ``keep_bytes`` of the body, ``body_size``
    the bytes received in all, ``truncated`` whether ``body_head`` is shorter than the body."""

    status: int
    headers: dict[str, str]
    body_head: bytes
    body_size: int
    truncated: bool
    elapsed_ms: int


def header_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` cannot be sent (never quoting the value), or None."""
    if not _TOKEN.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP token"
    if name.lower() in RESERVED_HEADERS:
        return f"header {name!r} is set by JCT and cannot be given"
    if _BAD_VALUE.search(value) or value != value.strip(" \t"):
        return f"header {name!r} has control characters or surrounding spaces in its value"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"header {name!r} has characters outside Latin-1 in its value"
    return None


def default_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def request(dest: Destination, method: str, headers: Mapping[str, str], body: bytes | None, *,
            deadline: float, max_body_bytes: int, keep_bytes: int = KEEP_BYTES,
            should_stop: Callable[[], str | None] = lambda: None, poll_s: float = 0.25,
            ssl_context: ssl.SSLContext | None = None) -> EgressResponse:
    """Send one request to ``dest`` and read the response within ``deadline``
    (``time.monotonic()`` based). Raises ``ActionTimeout`` at the deadline, ``TaskCancelled``
    / ``AttemptInterrupted`` when ``should_stop()`` gives a reason, ``ResponseTooLarge`` past
    ``max_body_bytes``, ``RetryableActionError`` when the peer is unreachable or breaks the
    exchange, ``PermanentActionError`` for a request that cannot be sent."""
    started = time.monotonic()
    clock = _Clock(deadline, should_stop, poll_s)
    clock.check()
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    wire = _encode_request(connection, dest, method, headers, body)
    channel = _connect(dest, clock)
    try:
        if dest.scheme == "https":
            channel.start_tls(ssl_context or default_ssl_context(), dest.host)
        channel.send_all(wire)
        return _read_response(channel, connection, max_body_bytes=max_body_bytes,
                              keep_bytes=keep_bytes, started=started)
    except h11.RemoteProtocolError as exc:
        raise RetryableActionError(f"downstream broke the HTTP exchange: {exc}") from None
    except ssl.SSLError as exc:
        raise RetryableActionError(f"TLS with {dest.host} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise RetryableActionError(f"downstream connection failed: {type(exc).__name__}: "
                                   f"{exc.strerror or exc}") from None
    finally:
        channel.close()


class _Clock:
    """The call's deadline and stop probe; ``should_stop`` is asked at most every ``poll_s``."""

    def __init__(self, deadline: float, should_stop: Callable[[], str | None],
                 poll_s: float) -> None:
        self.deadline = deadline
        self.should_stop = should_stop
        self.poll_s = poll_s
        self._asked = float("-inf")

    def check(self) -> None:
        now = time.monotonic()
        if now >= self.deadline:
            raise ActionTimeout("timeout: the downstream call ran past its deadline")
        if now - self._asked >= self.poll_s:
            self._asked = now
            reason = self.should_stop()
            if reason is not None:
                raise stop_error(reason)

    def slice(self) -> float:
        return max(0.0, min(self.poll_s, self.deadline - time.monotonic()))


class _Channel:
    """A non-blocking socket whose every operation waits in clock slices."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock = sock
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.fd = sock.fileno()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def wait(self, events: int) -> bool:
        """Wait one clock slice for ``events``; True if the socket became ready."""
        self.selector.modify(self.fd, events)
        return bool(self.selector.select(self.clock.slice()))

    def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        tls = context.wrap_socket(self.sock, server_hostname=server_name,
                                  do_handshake_on_connect=False)
        self.sock = tls
        self._retry(tls.do_handshake, selectors.EVENT_READ)

    def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = self._retry(functools.partial(self.sock.send, view), selectors.EVENT_WRITE)
            view = view[sent:]

    def recv(self) -> bytes:
        return self._retry(lambda: self.sock.recv(RECV_BYTES), selectors.EVENT_READ)

    def _retry(self, operation: Callable[[], _T], events: int) -> _T:
        while True:
            self.clock.check()
            try:
                return operation()
            except ssl.SSLWantReadError:
                self.wait(selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                self.wait(selectors.EVENT_WRITE)
            except BlockingIOError:
                self.wait(events)

    def close(self) -> None:
        self.selector.close()
        self.sock.close()


def _encode_request(connection: h11.Connection, dest: Destination, method: str,
                    headers: Mapping[str, str], body: bytes | None) -> bytes:
    fields: list[tuple[bytes, bytes]] = [(b"Host", dest.host_header.encode("ascii"))]
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise PermanentActionError(problem)
        fields.append((name.encode("ascii"), value.encode("latin-1")))
    given = {name.lower() for name, _ in fields}
    for default_name, default_value in ((b"User-Agent", b"jct"), (b"Accept", b"*/*")):
        if default_name.lower() not in given:
            fields.append((default_name, default_value))
    fields.append((b"Connection", b"close"))
    if body is not None:
        fields.append((b"Content-Length", str(len(body)).encode()))
    try:
        wire = connection.send(h11.Request(method=method, target=dest.target, headers=fields))
        if body:
            wire += connection.send(h11.Data(data=body))
        wire += connection.send(h11.EndOfMessage())
    except h11.LocalProtocolError as exc:
        raise PermanentActionError(f"the request cannot be sent: {exc}") from None
    return wire or b""


def _connect(dest: Destination, clock: _Clock) -> _Channel:
    failures = []
    for address in dest.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            channel = _Channel(sock, clock)
        except BaseException:
            sock.close()
            raise
        try:
            _connect_one(channel, (address, dest.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return channel
        except OSError as exc:
            channel.close()
            failures.append(f"{address}: {exc.strerror or exc}")
        except BaseException:
            channel.close()
            raise
    raise RetryableActionError(f"downstream unreachable: {dest.host}:{dest.port} "
                               f"({'; '.join(failures)})")


def _connect_one(channel: _Channel, address: tuple[str, int]) -> None:
    sock = channel.sock
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        raise OSError(code, os.strerror(code))
    if code == 0:
        return
    while True:
        channel.clock.check()
        if channel.wait(selectors.EVENT_WRITE):
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code != 0:
                raise OSError(code, os.strerror(code))
            return


def _read_response(channel: _Channel, connection: h11.Connection, *, max_body_bytes: int,
                   keep_bytes: int, started: float) -> EgressResponse:
    status = 0
    headers: dict[str, str] = {}
    head = bytearray()
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(channel.recv())
        elif isinstance(event, h11.Response):
            status, headers = event.status_code, _headers(event)
            declared = headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_body_bytes:
                raise _too_large(max_body_bytes, EgressResponse(
                    status=status, headers=headers, body_head=b"", body_size=0, truncated=True,
                    elapsed_ms=_elapsed_ms(started)))
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if len(head) < keep_bytes:
                head += event.data[:keep_bytes - len(head)]
            if size > max_body_bytes:
                raise _too_large(max_body_bytes, EgressResponse(
                    status=status, headers=headers, body_head=bytes(head), body_size=size,
                    truncated=True, elapsed_ms=_elapsed_ms(started)))
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return EgressResponse(status=status, headers=headers, body_head=bytes(head),
                                  body_size=size, truncated=size > len(head),
                                  elapsed_ms=_elapsed_ms(started))
        # InformationalResponse (1xx) and anything else: keep reading


def _headers(event: h11.Response) -> dict[str, str]:
    """Header names as the server wrote them; repeated headers joined with ', '."""
    found: dict[str, str] = {}
    by_lower: dict[str, str] = {}
    for raw_name, raw_value in event.headers.raw_items():
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        key = by_lower.setdefault(name.lower(), name)
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def _too_large(limit: int, partial: EgressResponse) -> ResponseTooLarge:
    error = ResponseTooLarge(f"the response body is larger than the {limit}-byte limit "
                             f"(JCT_HTTP_MAX_RESPONSE_BYTES); reading stopped")
    error.response = partial
    return error


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

"""Which ``Host`` the API answers to (``JCT_ALLOWED_HOSTS``).

A page on another site cannot read the API's answers (the browser's same-origin policy) unless
it makes the browser believe the API *is* that site: DNS rebinding points the attacker's own
name at 127.0.0.1, and the browser then sends ``Host: attacker.example``. With no token set the
API is open to whatever reaches it, so answering only to the names it is known by is what stops
such a page from reading tasks or enqueueing through an operator's browser.

An entry is a host name or address (any port), ``host:port`` or ``[v6]:port`` (that port only),
or ``*`` (any Host: behind a proxy that checks it). Names compare case-insensitively without a
trailing dot; IPv6 addresses compare in their canonical form, with or without brackets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from errors import ConfigError

SETTING = "JCT_ALLOWED_HOSTS"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class AllowedHost:
    """One entry: ``host`` normalised (``*`` for any), ``port`` ``None`` for any port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int | None) -> bool:
        return self.host == "*" or (self.host == host and self.port in (None, port))

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port is None else f"{shown}:{self.port}"


def split_host_port(text: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a Host header, or an entry) as the
    normalised host and the port; ``None`` when it is none of those."""
    text = text.strip()
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
        ipv6 = _ipv6(host)
        return None if ipv6 is None else _with_port(ipv6, port_text)
    if text.count(":") > 1:  # a bare IPv6 address (an entry may be written so)
        ipv6 = _ipv6(text)
        return None if ipv6 is None else (ipv6, None)
    host, _, port_text = text.partition(":")
    host = host.lower().removesuffix(".")
    if not _NAME.fullmatch(host):
        return None
    return _with_port(host, port_text)


def parse_allowed_hosts(raw: str | None, *, bind_host: str) -> tuple[AllowedHost, ...]:
    """The entries of ``JCT_ALLOWED_HOSTS``; unset, the loopback names and the bind address
    (unless it is a wildcard address). A malformed entry raises ``ConfigError`` naming it."""
    if raw is None or not raw.strip():
        names = [*LOCAL_NAMES]
        if bind_host.strip() not in _WILDCARD_BINDS:
            names.append(bind_host)
        return tuple(dict.fromkeys(_entry(name) for name in names))
    entries = []
    for text in (part.strip() for part in raw.split(",")):
        if text:
            entries.append(_entry(text))
    return tuple(dict.fromkeys(entries))


def host_allowed(host_header: str, allowed: tuple[AllowedHost, ...], *, default_port: int) -> bool:
    """Whether a request whose ``Host`` is ``host_header`` may be answered (a Host without a
    port is on the scheme's ``default_port``)."""
    parsed = split_host_port(host_header)
    if parsed is None:
        return False
    host, port = parsed
    port = default_port if port is None else port
    return any(entry.matches(host, port) for entry in allowed)


def _entry(text: str) -> AllowedHost:
    if text == "*":
        return AllowedHost("*")
    parsed = split_host_port(text)
    if parsed is None:
        raise ConfigError(f"{SETTING} entry {text!r} is not a host name, an address, host:port "
                          "or '*'")
    return AllowedHost(*parsed)


def _ipv6(text: str) -> str | None:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _with_port(host: str, port_text: str) -> tuple[str, int | None] | None:
    if not port_text:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return None
    return host, int(port_text)

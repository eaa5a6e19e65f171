"""Where an outgoing call may go: the allowlist, the tower's own endpoints, and the address
classes that only an explicit entry opens.

``check_url`` parses the URL once (``egress.url``), resolves the host once, checks every
resolved address, and returns a ``Destination`` holding the addresses it checked, so the
client connects to one of them and never asks DNS again (no rebinding between check and use).

Allowlist entries (``EgressPolicy.allowed``):

- ``*``: any *public* destination (``ipaddress``'s ``is_global``, not multicast, no IPv4
  embedded in IPv6 that is not public itself);
- a host name (``api.example.com``): that name, whatever it resolves to — listing a name
  trusts its DNS;
- an address (``10.0.0.5``, ``::1``) or a CIDR block (``10.0.0.0/8``): destinations
  resolving there;
- ``host:port`` / ``[v6]:port``: the same, on that port only.

Loopback, link-local (169.254.0.0/16 with the cloud metadata endpoint, fe80::/10),
unspecified, multicast, private (RFC 1918, CGNAT, unique-local) and other non-public
addresses, and IPv4-mapped IPv6 addresses, are refused unless a name, address or CIDR entry
covers them: ``*`` never does. The tower's own endpoints (API, database, S3, broker) are
refused unless an entry names that host or address exactly (``*`` and CIDR blocks never
open them); an own endpoint given with a wildcard bind address (``0.0.0.0``, ``::``) stands
for every address of this machine, so its port is refused on every destination.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from egress.url import IpAddress, ParsedUrl, normalise_host, parse_port, parse_url
from errors import ConfigError, EgressRefused, RetryableActionError, SpecInvalid

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
SETTING = "JCT_HTTP_ALLOWED_HOSTS"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class EgressPolicy:
    """``allowed``: allowlist entries (see the module docstring). ``own_endpoints``: the
    tower's own ``(host, port)`` pairs. A malformed entry raises ``ConfigError`` here."""

    allowed: tuple[str, ...] = ()
    own_endpoints: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _rules(self)


@dataclass(frozen=True)
class Destination:
    """A checked call target. ``url`` is rebuilt from the parsed parts: it is what is sent;
    ``target`` is the path and query of the request line; ``addresses`` are the checked
    addresses, in resolver order, the only ones the client may connect to."""

    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]
    url: str
    host_header: str


@dataclass(frozen=True)
class _Entry:
    wildcard: bool = False
    name: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    exact: bool = False  # names one host or one address (not a block, not '*')
    port: int | None = None

    def covers(self, host: str, address: IpAddress, port: int) -> bool:
        if self.wildcard or (self.port is not None and self.port != port):
            return False
        if self.name is not None:
            return self.name == host
        network = self.network
        return network is not None and any(a in network for a in _forms(address))


@dataclass(frozen=True)
class _Endpoint:
    host: str
    address: IpAddress | None
    port: int


@dataclass(frozen=True)
class _Rules:
    entries: tuple[_Entry, ...]
    wildcard: bool
    endpoints: tuple[_Endpoint, ...]


def validate_url(url: object, where: str) -> str:
    """Spec-time check (no DNS): the URL is unambiguous and absolute http(s). Returns the URL
    rebuilt from its parts; raises ``SpecInvalid`` naming ``where``."""
    try:
        return parse_url(url).url
    except EgressRefused as exc:
        raise SpecInvalid(where, str(exc)) from None


def check_url(url: object, policy: EgressPolicy,
              resolve: Resolver = socket.getaddrinfo) -> Destination:
    """Parse ``url`` once, resolve its host once and check every address against ``policy``.
    Raises ``EgressRefused`` (permanent) or ``RetryableActionError`` (name does not resolve)."""
    parsed = parse_url(url)
    rules = _rules(policy)
    addresses = ((parsed.address,) if parsed.address is not None
                 else _resolve(parsed.host, parsed.port, resolve))
    endpoint_addresses = _endpoint_addresses(rules.endpoints, resolve)
    for address in addresses:
        _check_address(parsed, address, rules, endpoint_addresses)
    return Destination(scheme=parsed.scheme, host=parsed.host, port=parsed.port,
                       target=parsed.target, addresses=tuple(str(a) for a in addresses),
                       url=parsed.url, host_header=parsed.authority)


def address_class(address: IpAddress) -> str | None:
    """Why ``*`` does not cover ``address`` (``"loopback"``, ``"link-local"``…), or None if
    it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "IPv4-mapped IPv6"
        embedded = _embedded_ipv4(address)
        if embedded is not None and address_class(embedded) is not None:
            return f"IPv6 embedding the non-public {embedded}"
        if address.is_site_local:
            return "site-local"
    for name in ("loopback", "link_local", "unspecified", "multicast", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if not address.is_global:
        return "private (non-public)"
    return None


def _check_address(parsed: ParsedUrl, address: IpAddress, rules: _Rules,
                   endpoint_addresses: dict[_Endpoint, set[IpAddress]]) -> None:
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    shown = f"{host}:{parsed.port}" + ("" if parsed.address is not None else f" ({address})")
    matching = [e for e in rules.entries if e.covers(parsed.host, address, parsed.port)]
    for endpoint in rules.endpoints:
        if (_is_endpoint(endpoint, parsed, address, endpoint_addresses[endpoint])
                and not any(e.exact for e in matching)):
            raise EgressRefused(f"{shown} is one of the tower's own endpoints; refused unless "
                                f"{SETTING} names that host or address")
    if matching:
        return
    if not rules.wildcard:
        raise EgressRefused(f"host {parsed.host!r} is not in {SETTING}")
    reason = address_class(address)
    if reason is not None:
        raise EgressRefused(f"{shown} is refused: {reason} address; '*' in {SETTING} covers "
                            f"public addresses only, list it to allow it")


def _is_endpoint(endpoint: _Endpoint, parsed: ParsedUrl, address: IpAddress,
                 known: set[IpAddress]) -> bool:
    if endpoint.port != parsed.port:
        return False
    if endpoint.address is not None and endpoint.address.is_unspecified:
        return True
    return endpoint.host == parsed.host or any(a in known for a in _forms(address))


def _forms(address: IpAddress) -> tuple[IpAddress, ...]:
    """The address and, for an IPv4-mapped IPv6 address, the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address, address.ipv4_mapped
    return (address,)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _resolve(host: str, port: int, resolve: Resolver) -> tuple[IpAddress, ...]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RetryableActionError(f"could not resolve host {host!r}: {exc}") from None
    addresses: list[IpAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 scope id is not part of the address
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise RetryableActionError(f"host {host!r} resolved to no address")
    return tuple(addresses)


def _endpoint_addresses(endpoints: tuple[_Endpoint, ...],
                        resolve: Resolver) -> dict[_Endpoint, set[IpAddress]]:
    """The addresses each own endpoint answers on; a name that does not resolve right now
    still matches by name."""
    found: dict[_Endpoint, set[IpAddress]] = {}
    for endpoint in endpoints:
        if endpoint.address is not None:
            found[endpoint] = {endpoint.address}
            continue
        try:
            found[endpoint] = set(_resolve(endpoint.host, endpoint.port, resolve))
        except RetryableActionError:
            found[endpoint] = set()
    return found


@functools.lru_cache(maxsize=64)
def _rules(policy: EgressPolicy) -> _Rules:
    entries = tuple(_entry(text) for text in policy.allowed)
    endpoints = tuple(_endpoint(host, port) for host, port in policy.own_endpoints)
    return _Rules(entries=tuple(e for e in entries if not e.wildcard),
                  wildcard=any(e.wildcard for e in entries), endpoints=endpoints)


def _entry(text: str) -> _Entry:
    entry = text.strip()
    try:
        if entry == "*":
            return _Entry(wildcard=True)
        if "/" in entry:
            return _Entry(network=ipaddress.ip_network(entry, strict=True))
        port: int | None = None
        host = entry
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket:
                raise EgressRefused("'[' without ']'")
            if rest:
                if not rest.startswith(":"):
                    raise EgressRefused("junk after ']'")
                port = parse_port(rest[1:])
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
            port = parse_port(port_text)
        name, address = normalise_host(host)
    except (EgressRefused, ValueError) as exc:
        raise ConfigError(f"{SETTING} entry {text!r} is not a host, address, CIDR block or '*': "
                          f"{exc}") from None
    if address is not None:
        return _Entry(network=ipaddress.ip_network(address), exact=True, port=port)
    return _Entry(name=name, exact=True, port=port)


def _endpoint(host: str, port: int) -> _Endpoint:
    try:
        name, address = normalise_host(host.strip("[]"))
        if not 1 <= port <= 65535:
            raise EgressRefused(f"port {port} is not a TCP port")
    except EgressRefused as exc:
        raise ConfigError(f"own endpoint {host}:{port} is not valid: {exc}") from None
    return _Endpoint(host=name, address=address, port=port)

"""Strict parsing of outgoing ``http(s)`` URLs.

A URL is parsed once, here, and its parts are both what the egress policy checks and what the
client sends: the URL handed to the network is rebuilt from them. Anything two URL parsers
could read differently (a backslash, user-info, control characters or spaces, a
percent-encoded or empty host, an odd port, an unbracketed IPv6 address) is refused instead
of guessed. A host whose last label is a number is read the way a resolver's ``inet_aton``
reads it (``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` are all 127.0.0.1), so
the policy checks the address the connection would really reach.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import idna

from errors import EgressRefused

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)"
                  r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#.*)?")
_BRACKETED = re.compile(r"\[(?P<literal>[^\]]*)\](?::(?P<port>.*))?")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_HEX = re.compile(r"0x[0-9a-f]+")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters kept as they are in the request target; everything else is percent-encoded.
# RFC 3986 pchar (unreserved, sub-delims, ':' and '@'), '/', and '%' of escapes already checked.
_PATH_SAFE = "!$&'()*+,;=:@/%"
_QUERY_SAFE = _PATH_SAFE + "?"
# Unicode categories refused anywhere in a URL: controls, format characters (zero-width,
# bidi overrides), lone surrogates, and every kind of space.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}


@dataclass(frozen=True)
class ParsedUrl:
    """The parts of an accepted URL. ``host`` is the normalised name (IDNA, lower case, no
    trailing dot) or the canonical text of an IP address; ``address`` is set when the host is
    an address in any form a resolver accepts; ``target`` is the path and query as sent."""

    scheme: str
    host: str
    address: IpAddress | None
    port: int
    target: str

    @property
    def authority(self) -> str:
        """``host[:port]`` as written in a URL and in the ``Host`` header (IPv6 in brackets,
        the default port left out)."""
        host = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(url: object) -> ParsedUrl:
    """Parse an absolute ``http``/``https`` URL or raise ``EgressRefused`` saying why not."""
    if not isinstance(url, str):
        raise EgressRefused("the URL must be a string")
    _refuse_ambiguous_characters(url)
    match = _URL.fullmatch(url)
    if match is None:
        raise EgressRefused("must be an absolute http:// or https:// URL")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise EgressRefused(f"scheme {match['scheme']!r} is not allowed: use http or https")
    host, address, port = _authority(match["authority"], DEFAULT_PORTS[scheme])
    return ParsedUrl(scheme=scheme, host=host, address=address, port=port,
                     target=_target(match["path"], match["query"]))


def normalise_host(text: str) -> tuple[str, IpAddress | None]:
    """The normalised form of a host (name or IPv4 address in any resolver-accepted form; an
    IPv6 address without brackets) and the address it denotes, if it is one."""
    if not text:
        raise EgressRefused("the URL has no host")
    if "%" in text:
        raise EgressRefused("the host must not be percent-encoded")
    if ":" in text:
        return _ipv6(text)
    name = text.lower() if text.isascii() else _idna(text)
    name = name[:-1] if name.endswith(".") else name
    if len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise EgressRefused(f"host {text!r} is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        address = _inet_aton(name)
        if address is None:
            raise EgressRefused(f"host {text!r} ends in a number but is not an IPv4 address")
        return str(address), address
    return name, None


def parse_port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise EgressRefused(f"port {text!r} is not a TCP port (1-65535)")
    return int(text)


def _refuse_ambiguous_characters(url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise EgressRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    if "\\" in url:
        raise EgressRefused("the URL must not contain a backslash")
    for char in url:
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise EgressRefused(f"the URL must not contain control characters or spaces "
                                f"(found U+{ord(char):04X})")


def _authority(authority: str, default_port: int) -> tuple[str, IpAddress | None, int]:
    if "@" in authority:
        raise EgressRefused("the URL must not carry user-info (user:password@); send credentials "
                            "in a header from a secret reference")
    bracketed = _BRACKETED.fullmatch(authority)
    address: IpAddress | None
    if bracketed is not None:
        host, address = _ipv6(bracketed["literal"])
        port_text = bracketed["port"]
    elif authority.startswith("["):
        raise EgressRefused("the IPv6 address is not closed by ']' or is followed by junk")
    else:
        host_text, colon, port_text_ = authority.partition(":")
        if ":" in port_text_:
            raise EgressRefused("an IPv6 address must be written in brackets, and a URL has one port")
        host, address = normalise_host(host_text)
        port_text = port_text_ if colon else None
    port = default_port if port_text is None else parse_port(port_text)
    return host, address, port


def _ipv6(literal: str) -> tuple[str, IpAddress]:
    if "%" in literal:
        raise EgressRefused("IPv6 zone identifiers are not allowed")
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError:
        raise EgressRefused(f"[{literal}] is not a valid IPv6 address") from None
    return str(address), address


def _idna(text: str) -> str:
    try:
        # UTS #46 maps what a browser maps (full-width forms, upper case); STD3 rules refuse
        # anything that would map to a URL delimiter.
        return idna.encode(text, uts46=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise EgressRefused(f"host {text!r} is not a valid internationalised host name") from None


def _inet_aton(name: str) -> ipaddress.IPv4Address | None:
    """Read ``name`` as ``inet_aton`` does: 1 to 4 parts, each decimal, ``0x`` hex or
    ``0``-prefixed octal, the last part filling the remaining bytes. None if it is not one."""
    parts = name.split(".")
    if len(parts) > 4:
        return None
    values = []
    for part in parts:
        if _HEX.fullmatch(part):
            values.append(int(part[2:], 16))
        elif _OCTAL.fullmatch(part):
            values.append(int(part, 8))
        elif _DECIMAL.fullmatch(part):
            values.append(int(part))
        else:
            return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _target(path: str, query: str | None) -> str:
    for part in (path, query or ""):
        if _BAD_ESCAPE.search(part):
            raise EgressRefused("the URL has a '%' that does not start a %XX escape")
    target = quote(path or "/", safe=_PATH_SAFE)
    if query is not None:
        target += "?" + quote(query, safe=_QUERY_SAFE)
    return target

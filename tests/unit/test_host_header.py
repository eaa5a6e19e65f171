"""JCT_ALLOWED_HOSTS: the entries, the defaults, and which Host headers they let in."""

from __future__ import annotations

import pytest

from config import load_settings
from errors import ConfigError
from host_header import AllowedHost, host_allowed, parse_allowed_hosts, split_host_port

DEFAULT = parse_allowed_hosts(None, bind_host="127.0.0.1")


def test_default_is_the_loopback_names_and_the_bind_address() -> None:
    assert [str(entry) for entry in DEFAULT] == ["localhost", "127.0.0.1", "[::1]"]
    bound = parse_allowed_hosts(None, bind_host="10.1.2.3")
    assert [str(entry) for entry in bound] == ["localhost", "127.0.0.1", "[::1]", "10.1.2.3"]
    assert "0.0.0.0" not in [e.host for e in parse_allowed_hosts(None, bind_host="0.0.0.0")], \
        "a wildcard bind is no name a client would use"


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("LOCALHOST.:8000", True),
    ("[::1]:8000", True), ("[0:0::1]", True), ("127.0.0.1", True),
    ("evil.example:8000", False), ("evil.example", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io:8000", False), ("", False), ("local host", False),
    ("evil.example@localhost", False), ("localhost:0", False), ("localhost:99999", False),
    ("localhost:80a", False), ("[::1", False), ("[::2]:8000", False), ("[::1]x", False),
    ("localhost:8000/x", False), ("localhost\x00", False),
])
def test_default_hosts(host: str, allowed: bool) -> None:
    assert host_allowed(host, DEFAULT, default_port=80) is allowed


def test_an_entry_with_a_port_allows_that_port_only() -> None:
    allowed = parse_allowed_hosts("jct.example.com:443,[fd00::5]:8000,ops.example.com",
                                  bind_host="0.0.0.0")
    assert host_allowed("jct.example.com", allowed, default_port=443)
    assert host_allowed("JCT.example.com:443", allowed, default_port=80)
    assert not host_allowed("jct.example.com:8443", allowed, default_port=443)
    assert not host_allowed("jct.example.com", allowed, default_port=80)
    assert host_allowed("[fd00:0::5]:8000", allowed, default_port=80)
    assert not host_allowed("[fd00::5]:8001", allowed, default_port=80)
    assert host_allowed("ops.example.com:1234", allowed, default_port=80)
    assert not host_allowed("localhost", allowed, default_port=80), "a list replaces the defaults"


def test_star_allows_any_host() -> None:
    assert parse_allowed_hosts("*", bind_host="127.0.0.1") == (AllowedHost("*"),)
    assert host_allowed("anything.example:1", (AllowedHost("*"),), default_port=80)


def test_bare_ipv6_entries_and_headers_compare_canonically() -> None:
    assert split_host_port("::1") == ("::1", None)
    assert split_host_port("[0000:0000::0001]:9") == ("::1", 9)


@pytest.mark.parametrize("entry", ["http://x", "a b", "x:port", "[::1", "x/y", "évil"])
def test_a_malformed_entry_stops_start_up_naming_it(entry: str) -> None:
    with pytest.raises(ConfigError, match="JCT_ALLOWED_HOSTS"):
        load_settings({"JCT_ALLOWED_HOSTS": f"localhost,{entry}"})

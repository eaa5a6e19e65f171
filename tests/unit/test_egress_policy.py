"""The egress policy on a table of URL forms: what is refused, what is allowed, and what the
checked destination is (a fake resolver stands in for DNS; the client tests use real sockets)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from egress.policy import Destination, EgressPolicy, check_url, validate_url
from errors import ConfigError, EgressRefused, RetryableActionError, SpecInvalid

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07::1"
NAMES = {
    "public.example": [PUBLIC],
    "dual.example": [PUBLIC, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC, "127.0.0.1"],  # one bad address among good ones
    "metadata.example": ["169.254.169.254"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "xn--bcher-kva.example": [PUBLIC],
    "api.tower": ["10.9.9.9"],
    "alias-of-api.example": ["10.9.9.9"],
    "scoped.example": ["fe80::1%eth0"],
}


class FakeResolver:
    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = NAMES if names is None else names
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in self.names[host]]


ANY_PUBLIC = EgressPolicy(allowed=("*",))

# URL forms that must be refused with '*' (any public destination): ambiguous syntax, and
# every way of writing an address that is not public.
REFUSED_WITH_STAR = [
    # loopback, in every form a resolver accepts
    "http://127.0.0.1/", "http://127.0.0.1:8000/", "http://localhost/", "http://LOCALHOST./",
    "http://2130706433/", "http://0x7f000001/", "http://0x7F.1/", "http://0177.0.0.1/",
    "http://0177.0000.0000.0001/", "http://127.1/", "http://127.0.1/", "http://127.0.0.1.nip.io/",
    "http://①②⑦.0.0.1/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]:8080/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    # unspecified, link-local and cloud metadata
    "http://0/", "http://0.0.0.0/", "http://[::]/", "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/", "http://metadata.example/", "http://[fe80::1]/", "http://scoped.example/",
    # private, shared, unique-local, multicast, reserved
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://internal.example/", "http://[fc00::1]/", "http://[fec0::1]/", "http://224.0.0.1/",
    "http://[ff02::1]/", "http://240.0.0.1/", "http://255.255.255.255/",
    # IPv4-mapped (even of a public address) and IPv6 forms embedding a non-public IPv4
    f"http://[::ffff:{PUBLIC}]/", "http://[2002:7f00:1::1]/", "http://[64:ff9b::a9fe:a9fe]/",
    # one resolved address among several is enough to refuse
    "http://mixed.example/",
]

AMBIGUOUS = [
    "http://user:pw@public.example/", "http://public.example@127.0.0.1/",
    "http://public.example\\@127.0.0.1/", "http://127.0.0.1\\.public.example/",
    "http://public.example\\/", "http://%31%32%37.0.0.1/", "http://public.example%2F@127.0.0.1/",
    "http://public.example:80:80/", "http://public.example:/", "http://public.example:0/",
    "http://public.example:65536/", "http://public.example:8o/", "http://[::1/",
    "http://[::1]junk/", "http://[v1.fe]/", "http://[fe80::1%25eth0]/", "http://::1/",
    "http://public.example\x00.evil/", "http://public.example /", "http://public.example\t/",
    "http://public.example\n/", "http://pub\u200blic.example/", "http://public.example/\ud800",
    "http:/public.example/", "http:public.example/", "//public.example/", "public.example",
    "ftp://public.example/", "file:///etc/passwd", "gopher://public.example:70/",
    "http://", "http:///path", "http://1.2.3.4.5/", "http://256.0.0.1/", "http://foo.123/",
    "http://0x/", "http://09.0.0.1/", "http://public..example/", "http://-/x?%zz",
    "http://public.example/%zz", "http://exa_mple\u2044com/", "http://ex%61mple.com/",
]

ALLOWED_WITH_STAR = [
    ("https://public.example/", "https://public.example/", (PUBLIC,)),
    ("HTTP://PUBLIC.Example.:8080/a/b?c=d&e#frag", "http://public.example:8080/a/b?c=d&e", (PUBLIC,)),
    (f"http://{PUBLIC}/", f"http://{PUBLIC}/", (PUBLIC,)),
    ("http://1572394766/", f"http://{PUBLIC}/", (PUBLIC,)),  # the integer form of PUBLIC
    (f"http://[{PUBLIC_V6}]:81/", f"http://[{PUBLIC_V6}]:81/", (PUBLIC_V6,)),
    ("https://dual.example/", "https://dual.example/", (PUBLIC, PUBLIC_V6)),
    ("http://bücher.example/ü?q=ü", "http://xn--bcher-kva.example/%C3%BC?q=%C3%BC", (PUBLIC,)),
    ("http://ＰＵＢＬＩＣ．ｅｘａｍｐｌｅ/", "http://public.example/", (PUBLIC,)),
    ("http://public.example/a@b:c/%41?x=@/?", "http://public.example/a@b:c/%41?x=@/?", (PUBLIC,)),
    ('http://public.example/"<>`{}', "http://public.example/%22%3C%3E%60%7B%7D", (PUBLIC,)),
    ("https://public.example:443", "https://public.example/", (PUBLIC,)),
]


@pytest.mark.parametrize("url", REFUSED_WITH_STAR)
def test_star_refuses_every_non_public_destination(url: str) -> None:
    with pytest.raises(EgressRefused, match="JCT_HTTP_ALLOWED_HOSTS"):
        check_url(url, ANY_PUBLIC, resolve=FakeResolver())


@pytest.mark.parametrize("url", AMBIGUOUS)
def test_ambiguous_urls_are_refused_before_any_lookup(url: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(EgressRefused) as caught:
        check_url(url, EgressPolicy(allowed=("*", "127.0.0.0/8", "public.example")),
                  resolve=resolver)
    assert "JCT_HTTP_ALLOWED_HOSTS" not in str(caught.value)  # refused as a URL, not by policy
    assert resolver.calls == []


@pytest.mark.parametrize(("url", "sent", "addresses"), ALLOWED_WITH_STAR)
def test_star_allows_public_destinations_and_says_what_will_be_sent(
        url: str, sent: str, addresses: tuple[str, ...]) -> None:
    dest = check_url(url, ANY_PUBLIC, resolve=FakeResolver())
    assert dest.url == sent
    assert dest.addresses == addresses
    assert dest.url == f"{dest.scheme}://{dest.host_header}{dest.target}"


def test_a_name_is_resolved_once_and_an_address_never() -> None:
    resolver = FakeResolver()
    dest = check_url("http://public.example:8080/x?y=1", ANY_PUBLIC, resolve=resolver)
    assert resolver.calls == ["public.example"]
    assert dest == Destination(scheme="http", host="public.example", port=8080, target="/x?y=1",
                               addresses=(PUBLIC,), url="http://public.example:8080/x?y=1",
                               host_header="public.example:8080")
    check_url("http://0x5db8d70e/", ANY_PUBLIC, resolve=resolver)
    check_url(f"http://[{PUBLIC_V6}]/", ANY_PUBLIC, resolve=resolver)
    assert resolver.calls == ["public.example"]


@pytest.mark.parametrize(("allowed", "url"), [
    (("127.0.0.1",), "http://127.0.0.1:9000/"),
    (("127.0.0.1",), "http://2130706433:9000/"),
    (("127.0.0.1",), "http://[::ffff:127.0.0.1]/"),  # the mapped form of a listed address
    (("localhost",), "http://localhost/"),            # a listed name: its DNS is trusted
    (("::1",), "http://[::1]/"),
    (("[::1]:8080",), "http://[::1]:8080/"),
    (("10.0.0.0/8",), "http://internal.example/"),
    (("169.254.169.254",), "http://169.254.169.254/latest/"),
    (("metadata.example",), "http://metadata.example/"),
    (("public.example:443",), "https://public.example/"),
    (("127.0.0.2", "*"), "http://127.0.0.2/"),
])
def test_explicit_entries_open_what_star_does_not(allowed: tuple[str, ...], url: str) -> None:
    check_url(url, EgressPolicy(allowed=allowed), resolve=FakeResolver())


@pytest.mark.parametrize(("allowed", "url"), [
    (("public.example",), "http://dual.example/"),
    (("public.example:443",), "http://public.example/"),
    (("[::1]:8080",), "http://[::1]:8081/"),
    (("127.0.0.1",), "http://127.0.0.2/"),
    (("10.0.0.0/8",), "http://192.168.0.1/"),
    (("localhost",), "http://127.0.0.1/"),  # the name is listed, not its address
    ((), "https://public.example/"),         # an empty list allows nothing
])
def test_anything_not_listed_is_refused(allowed: tuple[str, ...], url: str) -> None:
    with pytest.raises(EgressRefused, match="not in JCT_HTTP_ALLOWED_HOSTS"):
        check_url(url, EgressPolicy(allowed=allowed), resolve=FakeResolver())


OWN = (("api.tower", 8000), ("10.9.9.9", 9000), ("127.0.0.1", 5432))


@pytest.mark.parametrize(("allowed", "url"), [
    (("*",), "http://api.tower:8000/tasks"),
    (("*", "10.0.0.0/8"), "http://api.tower:8000/tasks"),   # a CIDR block does not open it
    (("*", "10.0.0.0/8"), "http://10.9.9.9:9000/"),
    (("*", "10.0.0.0/8"), "http://alias-of-api.example:8000/"),  # another name, same address
    (("127.0.0.0/8",), "http://127.0.0.1:5432/"),
    (("127.0.0.0/8",), "http://[::ffff:127.0.0.1]:5432/"),
])
def test_the_towers_own_endpoints_are_refused(allowed: tuple[str, ...], url: str) -> None:
    policy = EgressPolicy(allowed=allowed, own_endpoints=OWN)
    with pytest.raises(EgressRefused, match="tower's own endpoints"):
        check_url(url, policy, resolve=FakeResolver())


@pytest.mark.parametrize(("allowed", "url"), [
    (("api.tower",), "http://api.tower:8000/tasks"),
    (("10.9.9.9",), "http://10.9.9.9:9000/"),
    (("127.0.0.1:5432",), "http://127.0.0.1:5432/"),
    (("10.0.0.0/8",), "http://api.tower:8001/"),  # another port of the same host
])
def test_an_own_endpoint_named_exactly_is_allowed(allowed: tuple[str, ...], url: str) -> None:
    check_url(url, EgressPolicy(allowed=allowed, own_endpoints=OWN), resolve=FakeResolver())


def test_an_own_endpoint_on_a_wildcard_address_closes_its_port_everywhere() -> None:
    policy = EgressPolicy(allowed=("*",), own_endpoints=(("0.0.0.0", 8000),))
    with pytest.raises(EgressRefused, match="tower's own endpoints"):
        check_url("http://public.example:8000/", policy, resolve=FakeResolver())
    check_url("http://public.example:8001/", policy, resolve=FakeResolver())


def test_a_name_that_does_not_resolve_is_retryable() -> None:
    with pytest.raises(RetryableActionError, match=r"could not resolve host 'nowhere\.example'"):
        check_url("http://nowhere.example/", ANY_PUBLIC, resolve=FakeResolver())


@pytest.mark.parametrize("entry", ["http://x", "10.0.0.1/8", "a b", "[::1", "[::1]x",
                                   "h:99999", "h:", "", "1.2.3.4.5", "10.0.0.0/33"])
def test_a_malformed_allowlist_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="JCT_HTTP_ALLOWED_HOSTS entry"):
        EgressPolicy(allowed=(entry,))


def test_a_malformed_own_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="own endpoint"):
        EgressPolicy(own_endpoints=(("a b", 80),))
    with pytest.raises(ConfigError, match="own endpoint"):
        EgressPolicy(own_endpoints=(("api.tower", 0),))


def test_validate_url_names_the_field_and_never_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validation must not resolve names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert validate_url("HTTP://Example.COM:80/a b".replace(" ", "%20"), "s.url") == \
        "http://example.com/a%20b"
    with pytest.raises(SpecInvalid) as caught:
        validate_url("http://[::1", "steps[0].params.url")
    assert caught.value.field == "steps[0].params.url"
    assert "IPv6" in caught.value.problem
    with pytest.raises(SpecInvalid, match="backslash"):
        validate_url("http://a\\b/", "s.url")
    with pytest.raises(SpecInvalid, match="string"):
        validate_url(None, "s.url")

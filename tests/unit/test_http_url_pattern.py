"""The http action's URL rule is one regular expression, stated in /openapi.json and enforced by
the params model: any URL the pattern admits is accepted, and the egress guard can parse it (so a step
never fails later on a URL that enqueue accepted)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actions.http import URL_PATTERN, HttpAction
from egress.url import parse_url


@settings(max_examples=300, database=None, deadline=None)
@given(st.from_regex(URL_PATTERN, fullmatch=True))
def test_every_url_the_document_admits_is_accepted_and_sendable(url: str) -> None:
    assert HttpAction().validate({"url": url}, "steps[0].params")["url"] == url
    assert parse_url(url).url  # the egress guard parses it: the step can send it


@settings(max_examples=200, database=None, deadline=None)
@given(st.ip_addresses(v=6), st.sampled_from(["", ":8080"]))
def test_every_ipv6_address_is_accepted_in_brackets(address: object, port: str) -> None:
    url = f"http://[{address}]{port}/x"
    assert HttpAction().validate({"url": url}, "s")["url"] == url

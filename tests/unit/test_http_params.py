"""The http action's URL rule is one regular expression, stated in /openapi.json and enforced by
the params model: any URL the pattern admits is accepted, and the pattern's IPv6 and host parts
are what urllib (which requests uses) can parse."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from actions.http import NFKC_DELIMITERS, URL_PATTERN, HttpAction


@settings(max_examples=300, database=None, deadline=None)
@given(st.from_regex(URL_PATTERN, fullmatch=True))
def test_every_url_the_document_admits_is_accepted(url: str) -> None:
    assert HttpAction().validate({"url": url}, "steps[0].params")["url"] == url


@settings(max_examples=200, database=None, deadline=None)
@given(st.ip_addresses(v=6), st.sampled_from(["", ":8080"]))
def test_every_ipv6_address_is_accepted_in_brackets(address: object, port: str) -> None:
    url = f"http://[{address}]{port}/x"
    assert HttpAction().validate({"url": url}, "s")["url"] == url


def test_the_nfkc_delimiters_are_those_of_this_unicode_database() -> None:
    """urllib refuses a non-ASCII host whose NFKC form holds one of /?#@:; the pattern excludes
    the same characters (recomputed here, so a Python with newer Unicode data fails loudly)."""
    found = {c for c in map(chr, range(0x80, sys.maxunicode + 1))
             if not 0xD800 <= ord(c) <= 0xDFFF
             and any(d in unicodedata.normalize("NFKC", c) for d in "/?#@:")}
    assert found == set(NFKC_DELIMITERS)

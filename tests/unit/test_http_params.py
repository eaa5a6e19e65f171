"""``http`` step params at spec time: secret references accepted where values may be secret,
and every malformed URL, header or reference a 422 naming its field (no DNS, no call)."""

from __future__ import annotations

from typing import Any

import pytest

from actions.http import HttpAction
from errors import SpecInvalid
from services.spec import validate_spec


def test_secret_references_are_accepted_where_values_may_be_secret() -> None:
    params = {"method": "POST", "url": {"secret": "hook_url"},
              "headers": {"Authorization": {"secret": "gh.token"}, "Accept": "text/plain"},
              "json": {"deep": [{"password": {"secret": "db-pass"}}]}}
    validated = HttpAction().validate(params, "s")
    assert validated["url"] == {"secret": "hook_url"}
    assert validated["headers"]["Authorization"] == {"secret": "gh.token"}
    HttpAction().validate({"url": "https://example.com/", "body": {"secret": "payload"}}, "s")


@pytest.mark.parametrize(("params", "field"), [
    ({"url": "http://[::1"}, "s.url"),
    ({"url": "http://a\\b/"}, "s.url"),
    ({"url": "http://user:pw@example.com/"}, "s.url"),
    ({"url": "http://example.com/\x00"}, "s.url"),
    ({"url": "http://example.com/\ud800"}, "s.url"),
    ({"url": "ftp://example.com/"}, "s.url"),
    ({"url": 5}, "s.url"),
    ({"url": {"secret": "bad name"}}, "s.url.secret"),
    ({"url": "https://e.com/", "headers": {"Host": "internal"}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"Content-Length": "1"}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"X-A": "v\r\nX-B: w"}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"X-A": "é€"}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"Bad Name": "v"}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"X-A": 5}}, "s.headers"),
    ({"url": "https://e.com/", "headers": {"Authorization": {"secret": ""}}},
     "s.headers.Authorization.secret"),
    ({"url": "https://e.com/", "json": {"k": {"secret": "../x"}}}, "s.json.k.secret"),
    ({"url": "https://e.com/", "body": 5}, "s.body"),
    ({"url": "https://e.com/", "timeout_s": {"secret": "t"}}, "s.timeout_s"),
])
def test_malformed_params_name_their_field(params: dict[str, Any], field: str) -> None:
    """A bad header names ``headers`` and says which header in the problem."""
    with pytest.raises(SpecInvalid) as caught:
        HttpAction().validate(params, "s")
    assert caught.value.field == field
    if field == "s.headers":
        assert next(iter(params["headers"])) in caught.value.problem


def test_a_task_spec_with_an_invalid_ipv6_url_is_a_422_naming_the_field() -> None:
    with pytest.raises(SpecInvalid) as caught:
        validate_spec({"steps": [{"action": "http", "params": {"url": "http://[::1"}}]})
    assert caught.value.status == 422
    assert caught.value.field == "steps[0].params.url"

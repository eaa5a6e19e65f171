"""Trace id and W3C traceparent rules (CONTRACT §3)."""

from __future__ import annotations

import re
import uuid

import pytest

import tracing
from errors import InvalidTraceId


def test_new_trace_id_is_canonical_uuid4() -> None:
    """A generated trace id is a lowercase 8-4-4-4-12 UUIDv4."""
    value = tracing.new_trace_id()
    assert str(uuid.UUID(value)) == value
    assert uuid.UUID(value).version == 4


@pytest.mark.parametrize("given", [
    "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    "6f9619ff8b86d011b42d00c04fc964ff",
    " 6f9619ff-8b86-d011-b42d-00c04fc964ff ",
])
def test_caller_uuid_in_any_form_is_canonicalised(given: str) -> None:
    """Any case, hyphenated or 32 hex, is adopted in canonical lowercase form."""
    assert tracing.canonical_trace_id(given) == "6f9619ff-8b86-d011-b42d-00c04fc964ff"


@pytest.mark.parametrize("given", [
    "", "abc", "6f9619ff-8b86-d011-b42d", "g" * 32, "6f9619ff8b86-d011-b42d-00c04fc964ff",
    "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
])
def test_anything_else_is_rejected(given: str) -> None:
    """A non-UUID X-Trace-Id is an error the edge turns into 400 invalid_trace_id."""
    with pytest.raises(InvalidTraceId) as caught:
        tracing.canonical_trace_id(given)
    assert caught.value.code == "invalid_trace_id"
    assert caught.value.status == 400


def test_valid_traceparent_trace_becomes_the_trace_id() -> None:
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.trace_id_from_traceparent(header) == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


@pytest.mark.parametrize("header", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extra fields
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short
    "garbage",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # uppercase hex is invalid
])
def test_invalid_traceparent_is_ignored(header: str) -> None:
    assert tracing.trace_id_from_traceparent(header) is None


def test_future_version_with_extra_fields_is_accepted() -> None:
    """W3C: a higher version may append fields; the first four still parse."""
    header = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"
    assert tracing.trace_id_from_traceparent(header) == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


def test_edge_rule_prefers_x_trace_id_then_traceparent_then_new() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    given = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert tracing.trace_id_from_headers({"X-Trace-Id": given, "traceparent": parent}) == given
    assert tracing.trace_id_from_headers({"traceparent": parent}) == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    fresh = tracing.trace_id_from_headers({"traceparent": "bogus"})
    assert uuid.UUID(fresh).version == 4


def test_format_traceparent_uses_a_new_span_each_call() -> None:
    trace_id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    first, second = tracing.format_traceparent(trace_id), tracing.format_traceparent(trace_id)
    pattern = r"^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$"
    assert re.match(pattern, first) and re.match(pattern, second)
    assert first != second
    assert tracing.trace_id_from_traceparent(first) == trace_id


def test_inject_follows_the_bound_trace() -> None:
    empty: dict[str, str] = {}
    tracing.inject(empty)
    assert empty == {}
    with tracing.bound(trace_id="4bf92f35-77b3-4da6-a3ce-929d0e0e4736", task_id="t-1"):
        headers: dict[str, str] = {}
        tracing.inject(headers)
        assert headers["X-Trace-Id"] == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
        assert tracing.trace_id_from_traceparent(headers["traceparent"]) == headers["X-Trace-Id"]
        assert tracing.current() == {"trace_id": headers["X-Trace-Id"], "task_id": "t-1"}
    assert tracing.current() == {}


def test_message_options_carry_the_trace_and_a_parent_span() -> None:
    options: dict[str, str] = {}
    tracing.inject(options, tracing.MESSAGE, trace_id="4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
                   span_id="00f067aa0ba902b7")
    assert options == {"trace_id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
                       "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    assert tracing.extract(options, tracing.MESSAGE) == tracing.TraceContext(
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "00f067aa0ba902b7")


def test_extract_validates_the_trace_id_and_ignores_a_foreign_parent() -> None:
    with pytest.raises(InvalidTraceId):
        tracing.extract({"trace_id": "not-a-uuid"}, tracing.MESSAGE)
    other_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    found = tracing.extract({"X-Trace-Id": "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736",
                             "traceparent": other_parent})
    assert found == tracing.TraceContext("4bf92f35-77b3-4da6-a3ce-929d0e0e4736", None)
    assert tracing.extract({}) is None
    assert tracing.extract({"traceparent": other_parent}) == tracing.TraceContext(
        "0af76519-16cd-43dd-8448-eb211c80319c", "b7ad6b7169203331")

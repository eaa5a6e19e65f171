"""Redaction of headers, URLs, params and text, and the log filter that scrubs the secret
values in use from real records formatted by the project's JSON formatter."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from logging_setup import JctJsonFormatter, log_event
from redaction import (
    SecretRegistry,
    SecretScrubber,
    redact_headers,
    redact_params,
    redact_text,
    redact_url,
)


def test_sensitive_headers_are_masked_and_others_kept() -> None:
    headers = {"Authorization": "Bearer abc", "cookie": "s=1", "Set-Cookie": "s=2",
               "Proxy-Authorization": "Basic x", "X-Api-Key": "k", "X-Auth-Token": "t",
               "X-Client-Secret": "s", "X-Password": "p", "Accept": "*/*", "X-Trace-Id": "t-1"}
    assert redact_headers(headers) == {
        "Authorization": "***", "cookie": "***", "Set-Cookie": "***",
        "Proxy-Authorization": "***", "X-Api-Key": "***", "X-Auth-Token": "***",
        "X-Client-Secret": "***", "X-Password": "***", "Accept": "*/*", "X-Trace-Id": "t-1"}


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pw@host/p?q=1", "https://***@host/p?q=1"),
    ("https://host/p?access_token=abc&page=2&api_key=k&sig=s", "https://host/p?access_token=***&page=2&api_key=***&sig=***"),
    ("https://host/cb#access_token=abc&state=x", "https://host/cb#access_token=***&state=x"),
    ("https://host/p?X-Amz-Signature=abc&X-Amz-Credential=c", "https://host/p?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("https://host/plain?q=token", "https://host/plain?q=token"),
    ("http://u:p@[::1/?password=x", "http://***@[::1/?password=***"),  # not parseable: textual pass
    ("not a url", "not a url"),
])
def test_urls_lose_user_info_and_credential_parameters(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_hides_values_as_written_json_escaped_and_percent_encoded() -> None:
    secret = 'p@ss "wörd"/&'
    text = (f"raw={secret} json={json.dumps({'v': secret})} "
            f"url=https://h/?x={'p%40ss%20%22w%C3%B6rd%22%2F%26'} short=ab")
    clean = redact_text(text, {secret, "ab", ""})
    assert "p@ss" not in clean and "w\\u00f6rd" not in clean and "p%40ss" not in clean
    assert "short=***" in clean
    assert redact_text("nothing here", set()) == "nothing here"


def test_redact_params_keeps_references_and_masks_inline_credentials() -> None:
    params = {
        "url": "https://bot:pw@hooks.example/x?token=abc&page=1",
        "headers": {"Authorization": "Bearer inline", "X-Api-Key": {"secret": "api"},
                    "Accept": "application/json"},
        "json": {"user": "bob", "password": "hunter2", "nested": [{"api_key": "k1"}],
                 "auth": {"user": "a", "pass": "b"},
                 "note": "see https://a:b@docs.example/?sig=z"},
        "timeout_s": 5,
    }
    assert redact_params(params) == {
        "url": "https://***@hooks.example/x?token=***&page=1",
        "headers": {"Authorization": "***", "X-Api-Key": {"secret": "api"},
                    "Accept": "application/json"},
        "json": {"user": "bob", "password": "***", "nested": [{"api_key": "***"}],
                 "auth": "***", "note": "see https://***@docs.example/?sig=***"},
        "timeout_s": 5,
    }


@pytest.fixture
def scrubbed_logger() -> Iterator[tuple[logging.Logger, io.StringIO, SecretRegistry]]:
    registry = SecretRegistry()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JctJsonFormatter())
    handler.addFilter(SecretScrubber(registry))
    parent = logging.getLogger("test_redaction")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    try:
        # records come from a child logger: the filter is on the handler, so it sees them
        yield logging.getLogger("test_redaction.child"), stream, registry
    finally:
        parent.removeHandler(handler)


def test_the_log_filter_scrubs_active_values_everywhere_in_a_record(
        scrubbed_logger: tuple[logging.Logger, io.StringIO, SecretRegistry]) -> None:
    logger, stream, registry = scrubbed_logger
    with registry.active({"s3cr3t-value"}):
        logger.info("sent %s", "Bearer s3cr3t-value")
        log_event(logger, "http_request", "call", url="https://h/?k=s3cr3t-value",
                  headers={"Authorization": ["s3cr3t-value"]})
        try:
            raise ValueError("downstream echoed s3cr3t-value")
        except ValueError:
            logger.exception("failed")
    logger.info("after s3cr3t-value")  # no longer active: not a known value any more
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "sent Bearer ***"
    assert lines[1]["url"] == "https://h/?k=***"
    assert lines[1]["headers"] == {"Authorization": ["***"]}
    assert "ValueError: downstream echoed ***" in lines[2]["exc_info"]
    assert "s3cr3t-value" not in json.dumps(lines[:3])
    assert lines[3]["message"] == "after s3cr3t-value"


def test_the_registry_counts_values_shared_by_concurrent_attempts() -> None:
    registry = SecretRegistry()
    inner_done = threading.Event()
    with registry.active({"shared", "a"}):
        def other() -> None:
            with registry.active({"shared"}):
                pass
            inner_done.set()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert inner_done.is_set()
        assert set(registry.values()) == {"shared", "a"}  # still held by the first
    assert registry.values() == ()


def test_inline_values_under_sensitive_names_are_treated_as_secrets() -> None:
    from redaction import sensitive_values

    params = {"url": "http://h/x", "headers": {"Authorization": "Bearer abcdef", "Accept": "json"},
              "json": {"user": "ops", "password": "hunter22", "items": [{"api_key": "k-123456"}],
                       "token": {"secret": "named"}, "pin": "1"}}
    assert sensitive_values(params) == {"Bearer abcdef", "hunter22", "k-123456"}


def test_an_absent_credential_stays_null() -> None:
    """``"token": null`` hides nothing: shown as ``***`` it would contradict the document
    (a reference or null), as schemathesis found."""
    assert redact_params({"url": "/srv/repo", "token": None, "password": None}) == {
        "url": "/srv/repo", "token": None, "password": None}

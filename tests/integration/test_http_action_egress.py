"""The ``http`` action through the egress guard against a real local server (no database):
secrets resolved from a directory and the environment reach the downstream and nowhere else
(report, log lines, result); refused destinations send nothing; a call in flight stops on
cancel, on the attempt's deadline and on the step's timeout; the size cap keeps evidence."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.base import ActionContext
from actions.http import HttpAction
from credentials import SecretSource
from egress.policy import EgressPolicy
from errors import (
    ActionTimeout,
    EgressRefused,
    ResponseTooLarge,
    RetryableActionError,
    SecretUnavailable,
    TaskCancelled,
)
from harness.downstream import Downstream, start_downstream
from logging_setup import JctJsonFormatter
from redaction import SecretRegistry, SecretScrubber

TOKEN = "ghp_FileSecretValue123"
API_KEY = "env-api-key-987"
PASSWORD = 'pa"ss/wörd'


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    (tmp_path / "gh.token").write_text(TOKEN + "\n")
    (tmp_path / "password").write_text(PASSWORD)
    return tmp_path


@pytest.fixture
def captured_logs() -> Iterator[tuple[io.StringIO, SecretRegistry]]:
    registry = SecretRegistry()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JctJsonFormatter())
    handler.addFilter(SecretScrubber(registry))
    actions_logger = logging.getLogger("actions")
    previous = actions_logger.level
    actions_logger.addHandler(handler)
    actions_logger.setLevel(logging.INFO)
    yield stream, registry
    actions_logger.removeHandler(handler)
    actions_logger.setLevel(previous)


def context(secrets_dir: Path | None = None, **kwargs: Any) -> ActionContext:
    source = SecretSource(secrets_dir, {"JCT_SECRET_API_KEY": API_KEY,
                                        "JCT_SECRET_HOOK_URL": kwargs.pop("hook_url", "")})
    kwargs.setdefault("egress", EgressPolicy(allowed=("127.0.0.1",)))
    return ActionContext(secrets=source, poll_s=0.05, **kwargs)


def run(params: dict[str, Any], ctx: ActionContext) -> Any:
    action = HttpAction()
    return action.run(action.validate(params, "steps[0].params"), ctx)


def test_secrets_reach_the_downstream_and_nothing_else(
        downstream: Downstream, secrets_dir: Path,
        captured_logs: tuple[io.StringIO, SecretRegistry]) -> None:
    stream, registry = captured_logs
    params = {
        "method": "POST", "url": {"secret": "hook_url"},
        "headers": {"Authorization": {"secret": "gh.token"}, "X-Api-Key": {"secret": "api_key"},
                    "X-Plain": {"secret": "api_key"}, "Accept": "application/json"},
        "json": {"user": "bot", "password": {"secret": "password"}},
    }
    ctx = context(secrets_dir, secret_registry=registry,
                  hook_url=f"{downstream.url}/echo?token=inline-query-token")
    result = run(params, ctx)

    (received,) = downstream.received("/echo?token=inline-query-token")
    assert received.headers["Authorization"] == TOKEN
    assert received.headers["X-Api-Key"] == API_KEY == received.headers["X-Plain"]
    assert json.loads(received.body) == {"user": "bot", "password": PASSWORD}

    report = json.loads(result.report)
    assert report["request"]["url"] == "***"  # the whole URL was a secret
    assert report["request"]["headers"]["Authorization"] == "***"
    assert report["request"]["headers"]["X-Plain"] == "***"
    assert report["request"]["headers"]["Accept"] == "application/json"
    assert report["response"]["headers"]["Set-Cookie"] == "***"
    assert report["response"]["status"] == 200
    assert "***" in report["response"]["body"]  # the echo quoted the secrets back
    logs = stream.getvalue()
    assert {"http_request", "http_response"} <= {json.loads(line)["event"]
                                                  for line in logs.splitlines()}
    everything = result.report.decode() + logs + json.dumps(result.output)
    for value in (TOKEN, API_KEY, "ss/w", "inline-query-token", "/echo"):
        assert value not in everything
    assert registry.values() == ()  # released when the step ended


def test_inline_credentials_are_redacted_from_the_report(downstream: Downstream) -> None:
    result = run({"url": f"{downstream.url}/echo?api_key=inline-k&page=2",
                  "headers": {"Authorization": "Bearer inline-token"}}, context())
    report = json.loads(result.report)
    assert report["request"]["url"].endswith("/echo?api_key=***&page=2")
    assert report["request"]["headers"]["Authorization"] == "***"
    assert "inline-k" not in report["request"]["url"]


def test_an_unknown_secret_fails_the_step_before_any_call(downstream: Downstream,
                                                          secrets_dir: Path) -> None:
    with pytest.raises(SecretUnavailable, match="'nope'"):
        run({"url": downstream.url + "/x", "headers": {"Authorization": {"secret": "nope"}}},
            context(secrets_dir))
    assert downstream.requests == []


@pytest.mark.parametrize("case", ["star", "legacy_allowed_hosts", "own_endpoint"])
def test_a_refused_destination_is_never_called(downstream: Downstream, case: str) -> None:
    port = downstream.server.server_address[1]
    ctx = {"star": context(egress=EgressPolicy(allowed=("*",))),
           "legacy_allowed_hosts": ActionContext(allowed_hosts=("*",)),
           "own_endpoint": context(egress=EgressPolicy(allowed=("127.0.0.0/8",),
                                                       own_endpoints=(("127.0.0.1", port),)))}[case]
    with pytest.raises(EgressRefused, match="JCT_HTTP_ALLOWED_HOSTS"):
        run({"url": f"http://127.0.0.1:{port}/x"}, ctx)
    assert downstream.requests == []


def test_a_call_in_flight_stops_on_cancel(downstream: Downstream) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    ctx = context(stop_reason=lambda: "cancelled" if stop.is_set() else None)
    with pytest.raises(TaskCancelled):
        run({"url": downstream.url + "/drip/100000/0.1"}, ctx)


def test_a_call_in_flight_stops_at_the_attempts_deadline(downstream: Downstream) -> None:
    ctx = context(deadline=time.monotonic() + 1.0)
    with pytest.raises(ActionTimeout, match="task's timeout_s"):
        run({"url": downstream.url + "/drip/100000/0.1", "timeout_s": 3600}, ctx)


def test_a_call_in_flight_stops_at_the_steps_timeout(downstream: Downstream) -> None:
    with pytest.raises(RetryableActionError, match=r"timed out after 1\.0s") as caught:
        run({"url": downstream.url + "/drip/100000/0.1", "timeout_s": 1}, context())
    assert not isinstance(caught.value, ActionTimeout)


def test_a_response_past_the_cap_fails_with_its_head_kept(downstream: Downstream) -> None:
    with pytest.raises(ResponseTooLarge) as caught:
        run({"url": f"{downstream.url}/stream/{8 * 1024 * 1024}"},
            context(max_response_bytes=1024 * 1024))
    report = json.loads(caught.value.result.report)
    assert report["response"]["status"] == 200
    assert report["response"]["body_truncated"] is True
    assert len(report["response"]["body"]) == 256 * 1024

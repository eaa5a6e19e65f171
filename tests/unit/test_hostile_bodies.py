"""Hostile request bodies are answered 400 or 422 naming the field, never 500 (issue 9): through
the real Flask app, before anything is stored (no database is configured here)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app import create_app
from config import load_settings
from runtime import build_runtime


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return create_app(build_runtime("api", load_settings({}), configure_logs=False)).test_client()


def _deep(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def _http_step(params: str) -> str:
    return '{"action": "http", "params": {"url": "http://x/", ' + params + "}}"


ECHO = '{"action": "echo", "params": {"message": "x"}}'

CASES = [
    (_deep(100_000), 400, None),
    ('{"steps": [' + _http_step('"json": ' + _deep(5000)) + "]}", 400, None),
    ('{"steps": [' + _http_step('"json": ' + _deep(900)) + "]}", 422, "steps[0].params.json"),
    ('{"steps": [' + ECHO + '], "timeout_s": NaN}', 400, None),       # not JSON at all
    ('{"steps": [' + ECHO + '], "timeout_s": Infinity}', 400, None),
    ('{"steps": [{"action": "sleep", "params": {"seconds": 1e999}}]}', 422, "steps[0].params.seconds"),
    ('{"steps": [' + _http_step('"json": {"a": -Infinity}') + "]}", 400, None),
    ('{"steps": [' + _http_step('"json": {"a": -1e400}') + "]}", 422, "steps[0].params.json"),
    ('{"steps": [{"action": "echo", "params": {"message": "a\\u0000"}}]}', 422,
     "steps[0].params.message"),
    ('{"steps": [' + ECHO + '], "labels": {"\\ud800": "x"}}', 422, "labels"),
    ('{"steps": [' + ECHO + '], "name": "\\udc00"}', 422, "name"),
    ('{"steps": [' + _http_step('"headers": {"A": "\\u0000"}') + "]}", 422, "steps[0].params.headers"),
    ('{"steps": [{"action": "http", "params": {"url": "http://[::1"}}]}', 422, "steps[0].params.url"),
]


@pytest.mark.parametrize(("body", "status", "field"), CASES)
def test_enqueue_refuses_naming_the_field(client: FlaskClient, body: str, status: int,
                                          field: str | None) -> None:
    response = client.post("/enqueue", data=body, content_type="application/json")
    assert response.status_code == status, response.get_json()
    if field is not None:
        assert response.get_json()["detail"]["field"] == field


@pytest.mark.parametrize(("body", "status", "field"), CASES)
def test_a_batch_refuses_naming_the_task_and_field(client: FlaskClient, body: str, status: int,
                                                   field: str | None) -> None:
    response = client.post("/enqueue/batch", data='{"tasks": [' + body + "]}",
                           content_type="application/json")
    assert response.status_code == status, response.get_json()
    if field is not None:
        assert response.get_json()["detail"]["field"] == f"tasks[0].{field}"

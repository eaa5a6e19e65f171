"""The HTTP edge in-process (Flask test client) on real PostgreSQL: tokens and roles, the
database outage answer, X-Trace-Id on every response."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from app import create_app
from runtime import Runtime

SPEC = {"steps": [{"action": "echo", "params": {"message": "x"}}]}


@pytest.fixture
def client_with_tokens(runtime_with: Callable[..., Runtime]) -> FlaskClient:
    current = runtime_with(JCT_API_TOKENS="viewer:read:r-secret,bot:operate:o-secret")
    return create_app(current).test_client()


def test_tokens_guard_every_endpoint_but_healthz(client_with_tokens: FlaskClient) -> None:
    client = client_with_tokens
    assert client.get("/healthz").status_code == 200
    missing = client.post("/enqueue", json=SPEC)
    assert (missing.status_code, missing.json["error"]) == (401, "unauthorized")  # type: ignore[index]
    wrong = client.get("/tasks", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    reader = {"Authorization": "Bearer r-secret"}
    assert client.get("/tasks", headers=reader).status_code == 200
    assert client.post("/enqueue", json=SPEC, headers=reader).status_code == 403
    operator = {"Authorization": "Bearer o-secret"}
    created = client.post("/enqueue", json=SPEC, headers=operator)
    assert created.status_code == 202
    task_id = created.json["task_id"]  # type: ignore[index]
    cancelled = client.post(f"/tasks/{task_id}/cancel", headers=operator)
    assert cancelled.status_code == 202
    detail = client.get(f"/tasks/{task_id}", headers=reader).json
    assert detail is not None
    assert detail["events"][-1]["attrs"]["by"] == "bot", "actions are recorded under the token's name"


def test_database_outage_answers_503_not_500(rt: Runtime,
                                             runtime_with: Callable[..., Runtime]) -> None:
    down = runtime_with(JCT_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    client = create_app(down).test_client()
    health = client.get("/healthz")
    enqueued = client.post("/enqueue", json=SPEC)
    listed = client.get("/tasks")
    assert health.status_code == 503 and health.json["ok"] is False  # type: ignore[index]
    assert (enqueued.status_code, enqueued.json["error"]) == (503, "unavailable")  # type: ignore[index]
    assert listed.status_code == 503
    for response in (health, enqueued, listed):
        assert response.headers["X-Trace-Id"]
    with rt.db.connection():
        assert rt.db.one("SELECT count(*) FROM tasks") == (0,)


def test_writes_from_another_origin_are_refused(rt: Runtime) -> None:
    """Another site's page cannot enqueue or cancel through an operator's browser."""
    client = create_app(rt).test_client()
    foreign = client.post("/enqueue", json=SPEC, headers={"Origin": "http://evil.example"})
    assert (foreign.status_code, foreign.json["error"]) == (403, "forbidden")  # type: ignore[index]
    same = client.post("/enqueue", json=SPEC, headers={"Origin": "http://localhost"})
    assert same.status_code == 202
    assert client.post("/enqueue", json=SPEC).status_code == 202, "no Origin: a program, allowed"
    with rt.db.connection():
        assert rt.db.one("SELECT count(*) FROM tasks") == (2,)

"""The HTTP edge in-process (Flask test client) on real PostgreSQL: tokens and roles, console
sessions and CSRF, allowed hosts, the database outage answer without server internals,
X-Trace-Id on every response."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

import tracing
from app import create_app
from runtime import Runtime
from services.attempt import run_task
from services.enqueue import enqueue

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


def _log_lines(rt: Runtime, trace_id: str) -> list[dict[str, object]]:
    lines = [json.loads(raw) for raw in rt.settings.log_file.read_text().splitlines()]
    return [line for line in lines if line.get("trace_id") == trace_id]


def test_a_503_names_no_server_internals_but_the_log_line_does(
        tmp_path: Path, runtime_with: Callable[..., Runtime]) -> None:
    """psycopg's message names the socket path; the client gets a generic reason, the log line
    (under the response's trace id) keeps the whole story."""
    socket_dir = tmp_path / "no-such-socket-dir"
    down = runtime_with(JCT_DATABASE_URL=f"postgresql://jct:pw-9f3@/none?host={socket_dir}"
                                         "&connect_timeout=2")
    client = create_app(down).test_client()
    health = client.get("/healthz")
    enqueued = client.post("/enqueue", json=SPEC)
    assert health.status_code == 503 and health.json["checks"] == {"db": "unreachable"}  # type: ignore[index]
    assert enqueued.status_code == 503
    for response in (health, enqueued):
        body = response.get_data(as_text=True)
        assert str(socket_dir) not in body and "pw-9f3" not in body and ".s.PGSQL" not in body
    logged = json.dumps(_log_lines(down, enqueued.headers["X-Trace-Id"]))
    assert str(socket_dir) in logged, "the detail is kept in the log line, under the trace id"


def test_a_pending_blob_answers_503_without_its_spool_path(
        rt: Runtime, runtime_with: Callable[..., Runtime]) -> None:
    s3_down = runtime_with(JCT_S3_ENDPOINT="http://127.0.0.1:1")
    trace_id = tracing.new_trace_id()
    result = enqueue(s3_down, {"steps": [{"action": "echo", "params": {"message": "kept"}}]}, trace_id)
    with tracing.bound(trace_id=trace_id, task_id=result.task_id):
        assert run_task(s3_down, result.task_id) == "done"
    client = create_app(rt).test_client()
    (log,) = client.get(f"/tasks/{result.task_id}").json["artifacts"]  # type: ignore[index]
    assert log["status"] == "pending"
    spooled = Path(log["pending_path"])
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o600, "spooled blobs are owner-only"
    content = client.get(f"/artifacts/{log['id']}/content")
    page = client.get(f"/ui/artifacts/{log['id']}")
    assert (content.status_code, content.json["error"]) == (503, "unavailable")  # type: ignore[index]
    assert page.status_code == 503
    for response in (content, page):
        assert str(spooled) not in response.get_data(as_text=True)
    assert str(spooled) in json.dumps(_log_lines(rt, content.headers["X-Trace-Id"]))


def test_every_401_says_bearer_and_a_non_ascii_token_is_just_wrong(
        client_with_tokens: FlaskClient) -> None:
    client = client_with_tokens
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"},
                    {"Authorization": "Bearer é✓".encode().decode("latin-1")},
                    {"Authorization": "Bearer \xff\xfe"}):
        response = client.get("/tasks", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="jct"'
    assert client.get("/tasks", headers={"Authorization": "Bearer r-secret"}).status_code == 200


def test_only_allowed_hosts_are_answered_but_healthz_answers_any(
        client_with_tokens: FlaskClient, runtime_with: Callable[..., Runtime]) -> None:
    reader = {"Authorization": "Bearer r-secret"}
    client = client_with_tokens
    foreign = client.get("/tasks", headers={**reader, "Host": "rebound.evil.example:8000"})
    assert (foreign.status_code, foreign.json["error"]) == (400, "invalid_host")  # type: ignore[index]
    assert client.get("/", headers={**reader, "Host": "rebound.evil.example"}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get("/tasks", headers={**reader, "Host": host}).status_code == 200, host
    assert client.get("/healthz", headers={"Host": "10.0.3.17:8000"}).status_code == 200
    listed = create_app(runtime_with(JCT_ALLOWED_HOSTS="jct.example.com")).test_client()
    assert listed.get("/tasks", headers={"Host": "jct.example.com"}).status_code == 200
    assert listed.get("/tasks", headers={"Host": "localhost"}).status_code == 400


def test_a_console_session_needs_its_csrf_token_to_act(
        client_with_tokens: FlaskClient) -> None:
    client = client_with_tokens
    operator = {"Authorization": "Bearer o-secret"}
    task_id = client.post("/enqueue", json=SPEC, headers=operator).json["task_id"]  # type: ignore[index]
    first = client.get("/")
    assert first.status_code == 302 and first.headers["Location"].startswith("/login")
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    signed_in = client.post("/login", data={"token": "o-secret", "next": "//evil.example/x"})
    assert (signed_in.status_code, signed_in.headers["Location"]) == (303, "/"), "no open redirect"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    page = client.get(f"/ui/tasks/{task_id}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert csrf is not None
    forged = client.post(f"/tasks/{task_id}/cancel")
    assert (forged.status_code, forged.json["error"]) == (403, "csrf_failed")  # type: ignore[index]
    assert client.post(f"/tasks/{task_id}/cancel", headers={"X-CSRF-Token": "x"}).status_code == 403
    done = client.post(f"/tasks/{task_id}/cancel", headers={"X-CSRF-Token": csrf.group(1)})
    assert done.status_code == 202
    assert client.get(f"/tasks/{task_id}").json["events"][-1]["attrs"]["by"] == "bot"  # type: ignore[index]
    client.post("/logout")
    assert client.get("/tasks").status_code == 401


def test_a_read_session_sees_but_cannot_act(client_with_tokens: FlaskClient) -> None:
    client = client_with_tokens
    task_id = client.post("/enqueue", json=SPEC, headers={"Authorization": "Bearer o-secret"}
                          ).json["task_id"]  # type: ignore[index]
    assert client.post("/login", data={"token": "r-secret"}).status_code == 303
    page = client.get(f"/ui/tasks/{task_id}").get_data(as_text=True)
    assert "viewer" in page and 'data-action="cancel"' not in page
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf is not None
    refused = client.post(f"/tasks/{task_id}/cancel", headers={"X-CSRF-Token": csrf.group(1)})
    assert (refused.status_code, refused.json["error"]) == (403, "forbidden")  # type: ignore[index]

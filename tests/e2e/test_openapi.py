"""``GET /openapi.json`` stays true: it is valid OpenAPI 3.1, it documents every URL rule of the
app (and nothing else), and real responses from the running system validate against it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from harness.downstream import Downstream
from harness.stack import Stack
from tests.e2e.conftest import OPERATE_TOKEN

IGNORED_METHODS = {"HEAD", "OPTIONS"}
IGNORED_ENDPOINTS = {"static"}  # Flask's stylesheet/script files for the console, not API


class Contract:
    """The document, plus a record of which documented responses real traffic produced."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, response: requests.Response, path: str, method: str) -> None:
        """The status is documented for this operation, and a JSON body matches its schema."""
        operation = self.document["paths"][path][method.lower()]
        status = str(response.status_code)
        documented = operation["responses"].get(status)
        assert documented is not None, f"{method} {path} answered {status}, which is not documented"
        self.seen.add((path, method.lower(), status))
        content = documented.get("content")
        if not content:
            return
        mime = response.headers.get("Content-Type", "").split(";")[0].strip()
        if mime in content and mime == "application/json":
            self.validate(response.json(), content[mime]["schema"], f"{method} {path} {status}")
        else:  # a blob, a page or text: its media type is what the document promises
            assert mime in content or "*/*" in content, f"{method} {path} {status}: {mime} undocumented"

    def validate(self, instance: Any, schema: dict[str, Any], where: str) -> None:
        # Local "#/components/..." references resolve against a root that carries components.
        root = {**schema, "components": self.document["components"]}
        validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in errors[:5])


@pytest.fixture(scope="module")
def contract(postgres_stack: Stack) -> Contract:
    response = postgres_stack.get("/openapi.json")
    assert response.status_code == 200
    return Contract(response.json())


def _flask_rules() -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every URL rule of the real app."""
    from app import create_app
    from config import load_settings
    from runtime import build_runtime

    app = create_app(build_runtime("api", load_settings({}), configure_logs=False))
    rules = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in IGNORED_ENDPOINTS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        rules |= {(path, method.lower()) for method in (rule.methods or set()) - IGNORED_METHODS}
    return rules


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_document_is_valid_openapi_3_1(contract: Contract) -> None:
    """The served document passes the OpenAPI 3.1 validator, and date-times are really checked."""
    assert contract.document["openapi"].startswith("3.1")
    validate_openapi(contract.document)
    assert not Draft202012Validator.FORMAT_CHECKER.conforms("yesterday", "date-time")


def test_every_url_rule_is_documented_and_nothing_else(contract: Contract) -> None:
    """Flask's URL map and the document's paths name the same operations."""
    rules, documented = _flask_rules(), _documented(contract.document)
    assert rules - documented == set(), "routes missing from /openapi.json"
    assert documented - rules == set(), "documented operations that no route serves"


def _spec(downstream: Downstream, **extra: Any) -> dict[str, Any]:
    return {"name": "openapi-check", "labels": {"suite": "openapi"}, "steps": [
        {"action": "echo", "params": {"message": "hello"}},
        {"action": "http", "params": {"method": "POST", "url": f"{downstream.url}/hook",
                                      "json": {"x": 1}}}], **extra}


def test_real_responses_validate_against_the_document(contract: Contract, postgres_stack: Stack,
                                                      downstream: Downstream) -> None:
    """Each documented operation, driven against the running system, answers as documented —
    successes and the contract's errors alike."""
    stack, check = postgres_stack, contract.check
    missing = str(uuid.uuid4())

    # enqueue: new, idempotent repeat, conflicting repeat, and the input errors
    created = stack.post("/enqueue", json=_spec(downstream))
    check(created, "/enqueue", "POST")
    task_id, trace_id = created.json()["task_id"], created.json()["trace_id"]
    key = {"Idempotency-Key": f"openapi-{uuid.uuid4()}"}
    check(stack.post("/enqueue", json=_spec(downstream), headers=key), "/enqueue", "POST")
    check(stack.post("/enqueue", json=_spec(downstream), headers=key), "/enqueue", "POST")
    check(stack.post("/enqueue", json=_spec(downstream, priority=5), headers=key), "/enqueue", "POST")
    check(stack.post("/enqueue", data="{nope", headers={"Content-Type": "application/json"}),
          "/enqueue", "POST")
    check(stack.post("/enqueue", data="x", headers={"Content-Type": "text/plain"}), "/enqueue", "POST")
    check(stack.post("/enqueue", json={"steps": []}), "/enqueue", "POST")
    check(stack.post("/enqueue", json={"steps": [{"action": "teleport"}]}), "/enqueue", "POST")
    check(stack.post("/enqueue", json=_spec(downstream), headers={"X-Trace-Id": "not-a-uuid"}),
          "/enqueue", "POST")
    too_big = {"steps": [{"action": "echo", "params": {"message": "x" * (2 * 1024 * 1024)}}]}
    check(stack.post("/enqueue", json=too_big), "/enqueue", "POST")
    check(stack.post("/enqueue/batch", json={"tasks": [_spec(downstream), _spec(downstream)]}),
          "/enqueue/batch", "POST")
    check(stack.post("/enqueue/batch", json={"tasks": [{"steps": "no"}]}), "/enqueue/batch", "POST")

    # a done task, a failed one (retried), a running one (cancelled)
    stack.wait_status(task_id)
    failed = stack.post("/enqueue", json={"max_attempts": 1, "steps": [
        {"action": "fail", "params": {"message": "drill", "retryable": False}}]}).json()["task_id"]
    stack.wait_status(failed)
    sleeper = stack.post("/enqueue", json={"steps": [
        {"action": "sleep", "params": {"seconds": 30}}]}).json()["task_id"]
    stack.wait_status(sleeper, ("running",))

    check(stack.get("/healthz"), "/healthz", "GET")
    check(stack.get(f"/tasks/{task_id}"), "/tasks/{task_id}", "GET")
    check(stack.get(f"/tasks/{failed}"), "/tasks/{task_id}", "GET")
    check(stack.get(f"/tasks/{sleeper}"), "/tasks/{task_id}", "GET")
    check(stack.get(f"/tasks/{missing}"), "/tasks/{task_id}", "GET")
    first = stack.get("/tasks", params={"limit": 1})
    check(first, "/tasks", "GET")
    check(stack.get("/tasks", params={"limit": 1, "cursor": first.json()["next_cursor"]}), "/tasks", "GET")
    check(stack.get("/tasks", params={"status": "done", "trace_id": trace_id, "name": "openapi-check",
                                      "label": "suite:openapi"}), "/tasks", "GET")
    check(stack.get("/tasks", params={"status": "sideways"}), "/tasks", "GET")
    check(stack.get(f"/traces/{trace_id}"), "/traces/{trace_id}", "GET")
    check(stack.get(f"/traces/{missing}"), "/traces/{trace_id}", "GET")

    check(stack.post(f"/tasks/{sleeper}/cancel"), "/tasks/{task_id}/cancel", "POST")
    check(stack.post(f"/tasks/{task_id}/cancel"), "/tasks/{task_id}/cancel", "POST")
    check(stack.post(f"/tasks/{missing}/cancel"), "/tasks/{task_id}/cancel", "POST")
    check(stack.post(f"/tasks/{failed}/retry"), "/tasks/{task_id}/retry", "POST")
    check(stack.post(f"/tasks/{task_id}/retry"), "/tasks/{task_id}/retry", "POST")

    artifact_id = stack.get(f"/tasks/{task_id}").json()["artifacts"][0]["id"]
    check(stack.get(f"/artifacts/{artifact_id}"), "/artifacts/{artifact_id}", "GET")
    check(stack.get(f"/artifacts/{missing}"), "/artifacts/{artifact_id}", "GET")
    check(stack.get(f"/artifacts/{artifact_id}/content"), "/artifacts/{artifact_id}/content", "GET")
    check(stack.get("/metrics"), "/metrics", "GET")
    check(stack.get("/openapi.json"), "/openapi.json", "GET")

    check(stack.get("/", params={"q": trace_id}), "/", "GET")
    check(stack.get("/", params={"q": task_id}, allow_redirects=False), "/", "GET")
    check(stack.get("/", params={"status": "sideways"}), "/", "GET")
    check(stack.get(f"/ui/tasks/{task_id}"), "/ui/tasks/{task_id}", "GET")
    check(stack.get(f"/ui/tasks/{missing}"), "/ui/tasks/{task_id}", "GET")
    check(stack.get(f"/ui/traces/{trace_id}"), "/ui/traces/{trace_id}", "GET")
    check(stack.get(f"/ui/artifacts/{artifact_id}"), "/ui/artifacts/{artifact_id}", "GET")

    # no token configured: nothing to sign in to
    check(stack.get("/login", allow_redirects=False), "/login", "GET")
    check(stack.post("/login", data={"token": "x"}, allow_redirects=False), "/login", "POST")
    check(stack.post("/logout", allow_redirects=False), "/logout", "POST")

    stack.wait_status(sleeper, ("cancelled",))
    exercised = {(path, method) for path, method, _status in contract.seen}
    assert _documented(contract.document) - exercised == set(), "documented but never exercised"


def test_token_host_and_session_answers_validate(contract: Contract, tokens_stack: Stack) -> None:
    """With tokens on: the sign-in page and its answers, the 401 with its challenge, the console's
    redirect to /login, and a Host this API does not answer to."""
    stack, check = tokens_stack, contract.check
    check(stack.get("/login"), "/login", "GET")
    refused = stack.post("/login", data={"token": "wrong"}, allow_redirects=False)
    check(refused, "/login", "POST")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Bearer realm="jct"'
    signed_in = stack.post("/login", data={"token": OPERATE_TOKEN}, allow_redirects=False)
    check(signed_in, "/login", "POST")
    assert signed_in.status_code == 303 and "jct_session=" in signed_in.headers["Set-Cookie"]
    check(stack.post("/logout", allow_redirects=False), "/logout", "POST")
    unauthorized = stack.get("/tasks")
    check(unauthorized, "/tasks", "GET")
    assert unauthorized.status_code == 401 and "WWW-Authenticate" in unauthorized.headers
    check(stack.get("/", allow_redirects=False), "/", "GET")
    check(stack.get(f"/ui/tasks/{uuid.uuid4()}", allow_redirects=False), "/ui/tasks/{task_id}", "GET")
    foreign = stack.get("/tasks", headers={"Host": "rebound.evil.example",
                                           "Authorization": f"Bearer {OPERATE_TOKEN}"})
    check(foreign, "/tasks", "GET")
    assert foreign.json()["error"] == "invalid_host"

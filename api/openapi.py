"""``GET /openapi.json``: the OpenAPI 3.1 document of this API.

The request schemas (the task spec, each action's params, the batch request) are generated from
the models that validate requests (``api/request_schemas.py``), so an action's params model
appears here by itself. Paths, responses and the error shape are written here: they say what the
API promises. ``tests/e2e/test_openapi.py`` keeps it true: every URL rule must be documented,
and real responses must validate against these schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from actions.base import Action
from api.request_schemas import request_schemas
from api.tasks import SINCE_PATTERN
from services.spec import BATCH_REQUEST, TASK_SPEC, batch_request_model, task_spec_model

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]

STATUSES = ["queued", "running", "done", "failed", "cancelled"]
DIAGNOSES = ["waiting_for_worker", "not_dispatched", "retry_scheduled", "running", "done", "failed",
             "cancelled"]


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    return jsonify(_served_document())


@cache
def _served_document() -> dict[str, Any]:
    return openapi_document()


def openapi_document(actions: Mapping[str, Action] | None = None) -> dict[str, Any]:
    """The document; with ``actions``, for that set of actions instead of the registry's."""
    spec_model = TASK_SPEC if actions is None else task_spec_model(actions)
    batch_model = BATCH_REQUEST if actions is None else batch_request_model(spec_model)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "JCT — DevOps Control Tower",
            "version": "1.0.0",
            "summary": "Tasks accepted, persisted, run and explained by trace id.",
            "description": (
                "Every response carries `X-Trace-Id`. Errors are JSON `{\"error\", \"detail\"}`. "
                "A method a path does not list is answered `405` (`method_not_allowed`, with "
                "`Allow`; see `components.responses.MethodNotAllowed`). "
                "With `JCT_API_TOKEN`/`JCT_API_TOKENS` set, every endpoint but `/healthz`, `/login` "
                "and `/logout` needs `Authorization: Bearer <token>` or a console session cookie "
                "from `/login` (whose writes also need the page's `X-CSRF-Token`); `read` tokens "
                "may only GET. A `Host` outside `JCT_ALLOWED_HOSTS` is a 400 `invalid_host` "
                "(`/healthz` answers any Host)."),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearer": []}, {}],
        "tags": [{"name": "tasks"}, {"name": "traces"}, {"name": "artifacts"},
                 {"name": "operations"}, {"name": "console"}],
        "paths": _paths(),
        "components": {
            "schemas": {**_schemas(), **request_schemas(spec_model, batch_model)},
            "parameters": _parameters(),
            "headers": {"X-Trace-Id": {"description": "The trace id this request ran under.",
                                       "schema": {"type": "string", "format": "uuid"}}},
            "responses": {"MethodNotAllowed": _method_not_allowed()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


# ── building blocks ────────────────────────────────────────────────────────────────────────


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None,
            closed: bool = True, description: str | None = None) -> Schema:
    """An object schema; ``closed`` ones reject undocumented fields, which keeps this document
    honest when a response grows a field nobody wrote down."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": list(properties) if required is None else required}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


# What ``tracing.canonical_trace_id`` accepts (tests/unit/test_openapi_document.py holds them together).
TRACE_ID_PATTERN = ("^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
                    "|[0-9A-Fa-f]{32})$")

UUID: Schema = {"type": "string", "format": "uuid"}
SINCE = SINCE_PATTERN.pattern
TIME: Schema = {"type": "string", "format": "date-time"}
TEXT: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"X-Trace-Id": {"$ref": "#/components/headers/X-Trace-Id"}},
            "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _method_not_allowed() -> dict[str, Any]:
    response = _error("Any method a path does not list (`TRACE`, `PUT`, …): `method_not_allowed`, "
                      "whatever the request's headers.")
    response["headers"]["Allow"] = {"description": "The methods the path serves.", "schema": TEXT}
    return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _unauthorized(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {**response.get("headers", {}), "WWW-Authenticate": {
        "description": "`Bearer realm=\"jct\"`", "schema": TEXT}}
    return response


COMMON_ERRORS = {
    "400": _error("Invalid `X-Trace-Id` (`invalid_trace_id`), a `Host` this API does not answer "
                  "to (`invalid_host`), a NUL in a query parameter, or another unreadable request."),
    "401": _unauthorized(_error("Missing or unknown bearer token (only when tokens are configured).")),
    "503": _error("The database (or object store) cannot be reached right now."),
}


def _operation(operation_id: str, tag: str, summary: str, responses: dict[str, Any], *,
               parameters: list[Any] | None = None, body: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None, secured: bool = True) -> dict[str, Any]:
    """One operation with the trace headers every endpoint accepts and the errors all can give."""
    operation: dict[str, Any] = {
        "operationId": operation_id, "tags": [tag], "summary": summary,
        "parameters": [*(parameters or []), {"$ref": "#/components/parameters/XTraceId"},
                       {"$ref": "#/components/parameters/Traceparent"}],
        "responses": {**responses, **COMMON_ERRORS,
                      **{code: _error(text) for code, text in (errors or {}).items()}},
    }
    if body is not None:
        operation["requestBody"] = body
    if not secured:
        operation["security"] = []
        del operation["responses"]["401"]
    return operation


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    """An optional query parameter; given empty, it is as if not given."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


STATUS_FILTER: Schema = {"enum": [*STATUSES, ""]}
CURSOR = ("`next_cursor` of the page before; a value this API did not hand out is a 400 "
          "(`bad_request`).")


def _parameters() -> dict[str, Any]:
    return {
        "XTraceId": {"name": "X-Trace-Id", "in": "header", "required": False,
                     "description": "Adopt this trace id (a UUID in any case, hyphenated or 32 hex); "
                                    "anything else, an empty value included, is a 400.",
                     "schema": {"type": "string", "pattern": TRACE_ID_PATTERN}},
        "Traceparent": {"name": "traceparent", "in": "header", "required": False,
                        "description": "W3C trace context; a valid one's trace-id becomes the trace "
                                       "id when `X-Trace-Id` is absent, an invalid one is ignored.",
                        "schema": {"type": "string"}},
    }


# ── paths ──────────────────────────────────────────────────────────────────────────────────


def _paths() -> dict[str, Any]:
    return {
        "/enqueue": {"post": _enqueue()},
        "/enqueue/batch": {"post": _enqueue_batch()},
        "/healthz": {"get": _healthz()},
        "/tasks": {"get": _list_tasks()},
        "/tasks/{task_id}": {"get": _get_task()},
        "/tasks/{task_id}/cancel": {"post": _transition("cancel", _ref("Cancelled"),
                                                        "Cancel: a queued task now, a running one at "
                                                        "its next step boundary.")},
        "/tasks/{task_id}/retry": {"post": _transition("retry", _ref("Retried"),
                                                       "Retry a failed or cancelled task: a new "
                                                       "attempt on the same task and trace.")},
        "/traces/{trace_id}": {"get": _get_trace()},
        "/artifacts/{artifact_id}": {"get": _get_artifact()},
        "/artifacts/{artifact_id}/content": {"get": _get_artifact_content()},
        "/metrics": {"get": _metrics()},
        "/openapi.json": {"get": _openapi()},
        "/login": {"get": _login_form(), "post": _login()},
        "/logout": {"post": _logout()},
        "/": {"get": _console("consoleTasks", "The operator console: the task list.",
                              [_query("q", TEXT, "A trace id, a task id (redirects to the task), "
                                                 "a label `key:value`, or a task name."),
                               _query("status", STATUS_FILTER, "Only tasks in this status."),
                               _query("cursor", TEXT, CURSOR)])},
        "/ui/tasks/{task_id}": {"get": _console("consoleTask", "Console: one task's whole story.",
                                                [_path_param("task_id", "The task's id.")])},
        "/ui/traces/{trace_id}": {"get": _console("consoleTrace", "Console: every task of a trace "
                                                  "on one timeline.",
                                                  [_path_param("trace_id", "The trace id.")])},
        "/ui/artifacts/{artifact_id}": {"get": _console("consoleArtifact", "Console: an artifact "
                                                        "readable in the browser.",
                                                        [_path_param("artifact_id", "The id.")])},
    }


def _spec_body() -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref("TaskSpec")}}}


def _enqueue() -> dict[str, Any]:
    created = _json(_ref("Enqueued"), "Accepted and stored; a worker has been woken.")
    created["headers"]["Location"] = {"description": "`/tasks/<task_id>`", "schema": TEXT}
    return _operation(
        "enqueue", "tasks", "Enqueue one task.",
        {"202": created,
         "200": _json(_ref("Enqueued"), "A repeat of an earlier request with the same "
                                        "`Idempotency-Key` and body: the original task.")},
        parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                     "description": "Same key and body returns the original task; a different "
                                    "body is a 409.",
                     "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
        body=_spec_body(),
        errors={"403": "A `read` token may not enqueue, a cross-origin write was refused, or a "
                       "console session's write lacked its CSRF token (`csrf_failed`).",
                "409": "The `Idempotency-Key` was used with a different body.",
                "413": "The body is over the size limit (with or without `Content-Length`).",
                "415": "The body is not `application/json`.",
                "422": "The spec failed validation, or holds a value that cannot be stored (NUL, "
                       "a lone surrogate, a number out of range, nesting over 64 levels); "
                       "`detail.field` names the field."})


def _enqueue_batch() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": _ref("BatchRequest")}}}
    return _operation(
        "enqueueBatch", "tasks", "Enqueue several tasks in one transaction, under one trace id.",
        {"202": _json(_ref("BatchEnqueued"), "All stored (or none, on any error).")}, body=body,
        errors={"403": "A `read` token may not enqueue, a cross-origin write was refused, or a "
                       "console session's write lacked its CSRF token (`csrf_failed`).",
                "413": "The body is over the size limit (with or without `Content-Length`).",
                "415": "The body is not `application/json`.",
                "422": "A spec failed validation; `detail.field` is `tasks[i].<field>`."})


def _healthz() -> dict[str, Any]:
    return _operation("healthz", "operations", "Liveness and the database check.",
                      {"200": _json(_ref("Health"), "The database answers."),
                       "503": _json(_ref("Health"), "The database is unreachable (`ok: false`).")},
                      secured=False)


def _list_tasks() -> dict[str, Any]:
    return _operation(
        "listTasks", "tasks", "Tasks, newest first, paged by a stable cursor.",
        {"200": _json(_ref("TaskPage"), "One page.")},
        parameters=[_query("status", STATUS_FILTER, "Only tasks in this status."),
                    _query("trace_id", {"type": "string", "pattern": f"^(?:{TRACE_ID_PATTERN[1:-1]})?$"},
                           "Only tasks of this trace (a UUID, hyphenated or 32 hex)."),
                    _query("name", TEXT, "Only tasks with this name."),
                    _query("label", {"type": "string", "pattern": r"^(?:[^:]+:[\s\S]*)?$"},
                           "`key:value`: only tasks with this label."),
                    _query("since", {"anyOf": [{**TIME, "pattern": SINCE}, {"const": ""}]},
                           "Only tasks created at or after this RFC 3339 time (with its offset)."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                           "Page size."),
                    _query("cursor", TEXT, CURSOR)])


def _get_task() -> dict[str, Any]:
    return _operation("getTask", "tasks", "One task: its attempts, actions, artifacts and events.",
                      {"200": _json(_ref("Task"), "The task.")},
                      parameters=[_path_param("task_id", "The task's id.")],
                      errors={"404": "No task with this id."})


def _transition(verb: str, schema: Schema, summary: str) -> dict[str, Any]:
    return _operation(f"{verb}Task", "tasks", summary,
                      {"202": _json(schema, "Recorded as an event, with who did it.")},
                      parameters=[_path_param("task_id", "The task's id.")],
                      errors={"403": f"A `read` token may not {verb}, a cross-origin write "
                                     "was refused, or a console session's write lacked its CSRF "
                                     "token (`csrf_failed`).",
                              "404": "No task with this id.",
                              "409": "The state machine does not allow this "
                                     "(`illegal_transition`; `detail.status` is the task's status)."})


def _get_trace() -> dict[str, Any]:
    return _operation("getTrace", "traces", "Every task of a trace and one merged timeline.",
                      {"200": _json(_ref("Trace"), "The trace.")},
                      parameters=[_path_param("trace_id", "The trace id.")],
                      errors={"404": "No task has this trace id."})


def _get_artifact() -> dict[str, Any]:
    return _operation("getArtifact", "artifacts", "An artifact's metadata.",
                      {"200": _json(_ref("Artifact"), "The artifact.")},
                      parameters=[_path_param("artifact_id", "The artifact's id.")],
                      errors={"404": "No artifact with this id."})


def _get_artifact_content() -> dict[str, Any]:
    blob = {"description": "The blob, streamed from the object store with its content type.",
            "headers": {"Content-Disposition": {"schema": TEXT}, "Content-Length": {"schema": INT}},
            "content": {"*/*": {"schema": {"type": "string", "contentMediaType":
                                           "application/octet-stream"}}}}
    return _operation("getArtifactContent", "artifacts", "The artifact's blob.", {"200": blob},
                      parameters=[_path_param("artifact_id", "The artifact's id.")],
                      errors={"404": "No artifact with this id."})


def _metrics() -> dict[str, Any]:
    text = {"description": "Prometheus text exposition format 0.0.4: the API's and workers' "
                           "counters and histograms (`jct_tasks_enqueued_total`, "
                           "`jct_attempts_total{outcome}`, `jct_task_queue_wait_seconds`, …) "
                           "and the database's gauges (`jct_tasks{status}` for queued and "
                           "running, `jct_oldest_queued_task_age_seconds`, `jct_running_jobs`, "
                           "`jct_expired_leases`, `jct_pending_uploads`). docs/observability.md "
                           "lists them.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}
    return _operation("metrics", "operations", "Metrics for Prometheus: the processes' figures "
                      "and the database's gauges.", {"200": text})


def _openapi() -> dict[str, Any]:
    return _operation("openapi", "operations", "This document.",
                      {"200": _json({"type": "object"}, "OpenAPI 3.1.")})


def _console(operation_id: str, summary: str, parameters: list[Any]) -> dict[str, Any]:
    operation = _operation(operation_id, "console", summary, {"200": _html("An HTML page.")},
                           parameters=parameters)
    redirect = ("`q` was a task id: to that task's page; or, with tokens on and no session, "
                "to `/login`." if operation_id == "consoleTasks"
                else "With tokens on and no session: to `/login`.")
    operation["responses"].update({
        "302": {"description": redirect},
        "400": _html("A bad query parameter, `X-Trace-Id` or `Host`."),
        "401": _unauthorized(_html("An unknown bearer token.")),
        "404": _html("No such task, trace or artifact."),
        "503": _html("The database or object store cannot be reached."),
    })
    return operation


def _login_form() -> dict[str, Any]:
    operation = _operation("loginForm", "console", "The console's sign-in page.",
                           {"200": _html("A form taking a token."),
                            "302": {"description": "No token is configured: to the console."}},
                           parameters=[_query("next", TEXT, "A path on this site to go to after.")],
                           secured=False)
    del operation["responses"]["503"]
    return operation


def _login() -> dict[str, Any]:
    form = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": _object(
        {"token": TEXT, "next": TEXT}, required=["token"], closed=False,
        description="Other fields a browser may add are ignored.")}}}
    signed_in = {"description": "Signed in (or no token is configured): to `next`, with the "
                                "session cookie (`HttpOnly; SameSite=Strict`, `Secure` over TLS).",
                 "headers": {"Set-Cookie": {"schema": TEXT}, "Location": {"schema": TEXT}}}
    operation = _operation("login", "console", "Exchange a token for a console session.",
                           {"303": signed_in}, body=form, secured=False,
                           errors={"403": "A cross-origin sign-in was refused."})
    operation["responses"]["401"] = _unauthorized(_html("Not a known token: the form again."))
    del operation["responses"]["503"]
    return operation


def _logout() -> dict[str, Any]:
    operation = _operation("logout", "console", "End the console session (clear its cookie).",
                           {"303": {"description": "Signed out: to `/login`.",
                                    "headers": {"Set-Cookie": {"schema": TEXT}}}},
                           secured=False, errors={"403": "A cross-origin sign-out was refused."})
    del operation["responses"]["503"]
    return operation


# ── schemas ────────────────────────────────────────────────────────────────────────────────


def _schemas() -> dict[str, Schema]:
    return {
        "Error": _object({"error": {"type": "string", "description": "A stable snake_case code."},
                          "detail": {"description": "A sentence, or an object naming the field."},
                          "trace_id": _nullable(UUID)}, required=["error", "detail"]),
        "Enqueued": _object({"task_id": UUID, "trace_id": UUID, "status": {"enum": STATUSES}}),
        "BatchEnqueued": _object({"trace_id": UUID, "tasks": {"type": "array", "items": _ref("Enqueued")}}),
        "Health": _object({"ok": {"type": "boolean"},
                           "checks": {"type": "object", "additionalProperties": TEXT,
                                      "description": "`ok` or `unreachable`, per dependency (why "
                                                     "is in the log, not here)."},
                           "broker": {"enum": ["postgres", "rabbitmq"]}},
                          required=["ok", "checks"]),
        "Task": _task(),
        "TaskSummary": _task_summary(),
        "TaskPage": _object({"tasks": {"type": "array", "items": _ref("TaskSummary")},
                             "next_cursor": _nullable(TEXT)}),
        "Job": _job(),
        "ActionInvocation": _action_invocation(),
        "Artifact": _artifact(),
        "TaskEvent": _object({"id": INT, "ts": TIME, "event": TEXT, "attrs": {"type": "object"}}),
        "Diagnosis": _object({"code": {"enum": DIAGNOSES}, "message": TEXT},
                             description="Why the task is where it is: a code and one sentence."),
        "Trace": _object({"trace_id": UUID, "tasks": {"type": "array", "items": _ref("TaskSummary")},
                          "timeline": {"type": "array", "items": _ref("TimelineItem")}}),
        "TimelineItem": _object({"ts": TIME, "type": {"enum": ["event", "action", "artifact"]},
                                 "task_id": UUID, "event": TEXT, "attrs": {"type": "object"}}),
        "Cancelled": _object({"task_id": UUID, "status": {"enum": ["cancelled", "running"]},
                              "cancel_requested": {"type": "boolean", "description":
                                                   "true: the task was running and stops at its "
                                                   "next step boundary."}}),
        "Retried": _object({"task_id": UUID, "trace_id": UUID, "status": {"const": "queued"}}),
    }


def _task_summary() -> Schema:
    return _object({
        "id": UUID, "trace_id": UUID, "name": _nullable(TEXT), "status": {"enum": STATUSES},
        "attempts": INT, "max_attempts": INT, "error": _nullable(TEXT),
        "labels": {"type": "object", "additionalProperties": TEXT},
        "created_at": TIME, "updated_at": TIME, "started_at": _nullable(TIME),
        "finished_at": _nullable(TIME),
    })


def _task() -> Schema:
    summary = _task_summary()["properties"]
    properties = {
        **summary,
        "spec": _ref("TaskSpec"), "priority": INT, "timeout_s": _nullable({"type": "number"}),
        "cancel_requested": {"type": "boolean"}, "run_after": TIME, "dispatched_at": _nullable(TIME),
        "jobs": {"type": "array", "items": _ref("Job"), "description": "One per attempt."},
        "actions": {"type": "array", "items": _ref("ActionInvocation")},
        "artifacts": {"type": "array", "items": _ref("Artifact")},
        "events": {"type": "array", "items": _ref("TaskEvent"), "description": "Time-ordered."},
        "diagnosis": _ref("Diagnosis"),
    }
    return _object(properties)


def _job() -> Schema:
    return _object({
        "id": UUID, "task_id": UUID, "trace_id": UUID, "attempt": INT,
        "status": {"enum": ["running", "done", "failed", "lost", "cancelled"]}, "worker": TEXT,
        "worker_host": _nullable(TEXT), "worker_pid": _nullable(INT),
        "worker_boot_id": _nullable(TEXT),
        "lease_expires_at": _nullable(TIME), "heartbeat_at": _nullable(TIME), "error": _nullable(TEXT),
        "created_at": TIME, "updated_at": TIME, "started_at": TIME, "finished_at": _nullable(TIME),
        "duration_ms": _nullable(INT),
    }, description="One attempt of a task.")


def _action_invocation() -> Schema:
    return _object({
        "id": UUID, "task_id": UUID, "job_id": UUID, "trace_id": UUID, "step": INT,
        "action_name": TEXT, "inputs_hash": TEXT, "status": {"enum": ["running", "ok", "failed"]},
        "started_at": TIME, "completed_at": _nullable(TIME), "result_artifact_id": _nullable(UUID),
        "downstream_status": _nullable(INT), "error": _nullable(TEXT), "duration_ms": _nullable(INT),
        "exit_code": _nullable(INT), "signal": _nullable(INT), "wall_s": _nullable(NUMBER),
        "cpu_s": _nullable(NUMBER), "max_rss_bytes": _nullable(INT),
        "output_tail": _nullable(TEXT),
    }, description="One run of one step; `downstream_status` is the HTTP status an `http` step "
                   "got; a `command` step has its exit code (or the signal that ended it), "
                   "resource use and the last lines of its output (kept current while it runs).")


def _artifact() -> Schema:
    return _object({
        "id": UUID, "task_id": UUID, "job_id": _nullable(UUID), "trace_id": UUID, "kind": TEXT,
        "name": TEXT, "uri": TEXT, "size": INT, "sha256": TEXT, "content_type": TEXT,
        "created_at": TIME, "content_url": TEXT,
        "status": {"enum": ["stored", "pending"], "description": "`pending`: the object store "
                   "refused the blob; the worker keeps it on disk and uploads it later."},
        "pending_path": _nullable(TEXT),
    }, description="A blob: `uri` is `s3://<bucket>/<trace_id>/<task_id>/<job_id>/<name>`.")

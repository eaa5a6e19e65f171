"""The operator console: server-rendered pages over the same reads as the JSON API.

Every page is complete HTML that reads fine with JavaScript off. ``static/console.js`` only
re-fetches the page to keep its live part current and sends cancel/retry to the JSON endpoints
(``POST /tasks/<id>/cancel|retry``), so state still changes in exactly one place.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from api import access
from api.console_format import (
    ago,
    attrs_text,
    clock,
    count_text,
    filesize,
    format_ms,
    seconds,
    short_id,
    span_ms,
)
from api.current import runtime
from api.waterfall import task_waterfall, trace_waterfall
from errors import JctError
from services import operations
from states import TaskStatus

bp = Blueprint("console", __name__)

TASK_STATUSES = tuple(str(status) for status in TaskStatus)

PAGE_SIZE = 50
PREVIEW_BYTES = 512 * 1024
TEXT_TYPES = ("application/json", "application/x-ndjson", "application/xml", "application/yaml")
# Pages show text that users and downstream services wrote; even if escaping ever slipped, only
# our own script may run. Inline style attributes place the timeline bars.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'")


# ── pages ────────────────────────────────────────────────────────────────────────────────


@bp.get("/")
def index() -> ResponseReturnValue:
    """The task list; one search box narrows it to a trace, a label or a name, or jumps to a task."""
    status = operations.parse_status(request.args.get("status"))
    search = parse_search(request.args.get("q", ""))
    cursor = request.args.get("cursor") or None
    rt = runtime()
    page = operations.list_tasks(rt, status=status, trace_id=search.uuid, name=search.name,
                                 label=search.label, limit=PAGE_SIZE, cursor=cursor)
    if search.uuid and not page["tasks"] and operations.task_exists(rt, search.uuid):
        return redirect(url_for("console.task_page", task_id=search.uuid))
    counts = operations.status_counts(rt, trace_id=search.uuid, name=search.name,
                                      label=search.label)
    cap = operations.STATUS_COUNT_CAP
    shown = {s: count_text(n, cap) for s, n in counts.items()}
    total = sum(min(n, cap) for n in counts.values())
    shown["all"] = f"{total:,}+" if any(n > cap for n in counts.values()) else f"{total:,}"
    return render_template("tasks.html", page=page, status=status, search=search, counts=shown,
                           statuses=TASK_STATUSES, live=cursor is None)


@bp.get("/ui/tasks/<task_id>")
def task_page(task_id: str) -> ResponseReturnValue:
    rt = runtime()
    task = operations.task_story(rt, task_id)
    return render_template("task.html", task=task, timeline=task_waterfall(task, rt.clock.now()),
                           commands=command_runs(task), live=not TaskStatus(task["status"]).terminal)


@bp.get("/ui/traces/<trace_id>")
def trace_page(trace_id: str) -> ResponseReturnValue:
    rt = runtime()
    trace = operations.trace_story(rt, trace_id)
    live = any(not TaskStatus(task["status"]).terminal for task in trace["tasks"])
    return render_template("trace.html", trace=trace, timeline=trace_waterfall(trace, rt.clock.now()),
                           live=live)


@bp.get("/ui/artifacts/<artifact_id>")
def artifact_page(artifact_id: str) -> ResponseReturnValue:
    """An artifact readable in the browser: a log as a table, other text as text."""
    rt = runtime()
    found = operations.find_artifact(rt, artifact_id)
    text, truncated = None, False
    if _is_text(found["content_type"]):
        head, truncated = operations.open_blob(rt, found).head(PREVIEW_BYTES)
        text = head.decode("utf-8", "replace")
    kind = found["kind"]
    return render_template("artifact.html", artifact=found, text=text, truncated=truncated,
                           records=_log_records(text) if kind not in ("diff", "report") else None,
                           diff=diff_lines(text) if kind == "diff" else None,
                           report=_report(text) if kind == "report" and not truncated else None)


def error_page(exc: JctError, detail: Any) -> ResponseReturnValue:
    """Console errors as a page (same status, code and detail as the JSON API would give); the
    app's error handler logs them and calls this for the console's routes."""
    return render_template("error.html", exc=exc, detail=detail, trace_id=g.get("trace_id")), exc.status


@bp.after_request
def harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.context_processor
def template_helpers() -> dict[str, Any]:
    """Formatting used by every console template (only this blueprint's pages get them)."""
    session = g.get("session")
    return {"short": short_id, "clock": clock, "ago": ago, "duration": format_ms,
            "span_ms": span_ms, "filesize": filesize, "seconds": seconds, "attrs_text": attrs_text,
            "csrf_token": access.csrf_token, "signed_in": session.token if session else None,
            "can_act": g.get("role") != "read"}


# ── search and listing ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Search:
    """What the one search box asked for: a UUID (a trace id or a task id), a ``key:value``
    label, or else a task name. ``text`` is what was typed, to show it back."""

    text: str = ""
    uuid: str | None = None
    label: tuple[str, str] | None = None
    name: str | None = None


def parse_search(raw: str) -> Search:
    text = raw.strip()
    if not text:
        return Search()
    try:
        return Search(text=text, uuid=str(uuid.UUID(text)))
    except ValueError:
        pass
    key, sep, value = text.partition(":")
    if sep and key.strip():
        return Search(text=text, label=(key.strip(), value.strip()))
    return Search(text=text, name=text)


# ── artifacts ──────────────────────────────────────────────────────────────────────────────


# Steps that run processes: their rows carry exit codes, resource use and an output tail.
PROCESS_ACTIONS = ("command", "checkout")


def command_runs(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Each run of a process step (per attempt), with the artifacts it left (``step-<n>-…`` of
    its attempt), newest attempt first."""
    attempts = {job["id"]: job["attempt"] for job in task["jobs"]}
    runs = []
    for inv in task["actions"]:
        if inv["action_name"] not in PROCESS_ACTIONS and inv.get("exit_code") is None:
            continue
        prefix = f"step-{inv['step']}-"
        runs.append({**inv, "attempt": attempts.get(inv["job_id"]), "artifacts": [
            a for a in task["artifacts"]
            if a["job_id"] == inv["job_id"] and a["name"].startswith(prefix)]})
    return sorted(runs, key=lambda run: (-(run["attempt"] or 0), run["step"]))


def diff_lines(text: str | None) -> list[tuple[str, str]] | None:
    """A patch as (class, line) pairs: ``add``, ``del``, ``hunk``, ``file`` or ``ctx``."""
    if text is None:
        return None
    lines = []
    for line in text.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append((kind, line))
    return lines


def _report(text: str | None) -> dict[str, Any] | None:
    """A report as ``{"rows": [(key, value text)]}`` when it is a JSON object, else
    ``{"json": pretty text}``; ``None`` when it is not JSON."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict):
        return {"rows": [(str(key), item if isinstance(item, str) else json.dumps(item, indent=2))
                         for key, item in value.items()]}
    return {"json": json.dumps(value, indent=2)}


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";", maxsplit=1)[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith("+json")


def _log_records(text: str | None) -> list[dict[str, Any]] | None:
    """A JSON-lines log as records for a table; ``None`` when the text is not one."""
    if not text:
        return None
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        records.append(record)
    return records or None

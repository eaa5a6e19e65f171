"""The console's waterfall: where each bar (queue wait, attempt, action, task) and each event
mark sits on a page's time axis, as percentages the templates place with inline styles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import url_for

from api.console_format import at, clock, format_ms, ms_between, short_id
from states import TaskStatus


@dataclass(frozen=True)
class Span:
    """A bar's place on the track, in percent of the axis."""

    left: float
    width: float


@dataclass(frozen=True)
class Mark:
    """An instant on the track (an event), in percent of the axis."""

    left: float
    title: str
    tone: str


@dataclass(frozen=True)
class Row:
    """One line of the waterfall: a bar (wait, attempt, action, task) and/or event marks."""

    kind: str
    label: str
    status: str
    span: Span | None = None
    duration_ms: int | None = None
    note: str = ""
    error: str | None = None
    href: str | None = None
    action: str | None = None
    marks: tuple[Mark, ...] = ()


@dataclass(frozen=True)
class Waterfall:
    rows: list[Row]
    ticks: list[tuple[float, str]]


@dataclass(frozen=True)
class Axis:
    """Maps instants between ``start`` and ``end`` to percentages of the track's width."""

    start: datetime
    end: datetime

    @property
    def total_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.001)

    def at(self, instant: datetime) -> float:
        offset = (instant - self.start).total_seconds() / self.total_s * 100
        return round(min(100.0, max(0.0, offset)), 3)

    def span(self, begin: datetime, end: datetime) -> Span:
        left = self.at(begin)
        return Span(left=left, width=round(max(self.at(end) - left, 0.0), 3))

    def ticks(self, parts: int = 4) -> list[tuple[float, str]]:
        return [(i * 100 / parts, "+" + format_ms(int(self.total_s * 1000 * i / parts)))
                for i in range(parts + 1)]


def _instants(items: list[dict[str, Any]], *names: str) -> list[datetime]:
    return [moment for item in items for name in names if (moment := at(item.get(name)))]


def task_waterfall(task: dict[str, Any], now: datetime) -> Waterfall:
    """Queue wait, then each attempt with its action invocations under it, then the events."""
    start = at(task["created_at"]) or now
    moments = [start, *_instants([task], "finished_at"), *_instants(task["events"], "ts"),
               *_instants(task["jobs"], "finished_at"), *_instants(task["actions"], "completed_at")]
    if not TaskStatus(task["status"]).terminal:
        moments.append(now)
    axis = Axis(start, max(moments))
    rows = [_wait_row(task, axis)]
    for job in task["jobs"]:
        job_end = at(job["finished_at"]) or axis.end
        actions = [_action_row(inv, axis, job_end)
                   for inv in sorted(task["actions"], key=lambda a: (a["started_at"], a["step"]))
                   if inv["job_id"] == job["id"]]
        rows.append(_attempt_row(job, axis, shown={row.error for row in actions}))
        rows += actions
    rows.append(Row(kind="events", label="events", status="event",
                    marks=tuple(_event_mark(event, axis) for event in task["events"])))
    return Waterfall(rows=rows, ticks=axis.ticks())


def _wait_row(task: dict[str, Any], axis: Axis) -> Row:
    """From enqueue to the first claim: the time the task waited for a worker."""
    claimed = _instants(task["jobs"], "started_at")
    end = min(claimed) if claimed else (at(task["finished_at"]) or axis.end)
    return Row(kind="wait", label="queued", status="queued", span=axis.span(axis.start, end),
               duration_ms=ms_between(axis.start, end),
               note="waiting for a worker" if not claimed and task["status"] == "queued" else "")


def _attempt_row(job: dict[str, Any], axis: Axis, shown: set[str | None]) -> Row:
    """An attempt's error is shown only when no step of it already shows the same text."""
    begin = at(job["started_at"]) or axis.start
    end = at(job["finished_at"]) or axis.end
    error = job.get("error")
    return Row(kind="attempt", label=f"attempt {job['attempt']}", status=job["status"],
               span=axis.span(begin, end), duration_ms=ms_between(begin, end),
               note=f"on {job['worker']}", error=None if error in shown else error)


def _action_row(inv: dict[str, Any], axis: Axis, job_end: datetime) -> Row:
    begin = at(inv["started_at"]) or axis.start
    end = at(inv["completed_at"]) or job_end
    note = f"HTTP {inv['downstream_status']}" if inv.get("downstream_status") is not None else ""
    return Row(kind="action", label=f"step {inv['step']} · {inv['action_name']}",
               status=inv["status"], span=axis.span(begin, end), duration_ms=ms_between(begin, end),
               note=note, error=inv.get("error"), action=inv["action_name"])


def _event_mark(event: dict[str, Any], axis: Axis) -> Mark:
    moment = at(event["ts"]) or axis.start
    name = event["event"]
    tone = ("bad" if "fail" in name else "warn" if "cancel" in name or "retry" in name
            else "good" if name == "task_done" else "info")
    return Mark(left=axis.at(moment), title=f"{clock(event['ts'])} {name}", tone=tone)


def trace_waterfall(trace: dict[str, Any], now: datetime) -> Waterfall:
    """Every task of the trace as a bar from enqueue to finish, its actions under it."""
    tasks = trace["tasks"]
    start = min(_instants(tasks, "created_at"), default=now)
    moments = [start, *_instants(tasks, "finished_at"), *_instants(trace["timeline"], "ts")]
    if any(not TaskStatus(task["status"]).terminal for task in tasks):
        moments.append(now)
    axis = Axis(start, max(moments))
    rows: list[Row] = []
    for task in tasks:
        items = [item for item in trace["timeline"] if item["task_id"] == task["id"]]
        rows.append(_task_row(task, items, axis))
        task_end = at(task["finished_at"]) or axis.end
        rows += [_timeline_action_row(item, axis, task_end)
                 for item in items if item["type"] == "action"]
    return Waterfall(rows=rows, ticks=axis.ticks())


def _task_row(task: dict[str, Any], items: list[dict[str, Any]], axis: Axis) -> Row:
    begin = at(task["created_at"]) or axis.start
    end = at(task["finished_at"]) or axis.end
    marks = tuple(_event_mark(item, axis) for item in items if item["type"] == "event")
    return Row(kind="task", label=task["name"] or "(unnamed)", status=task["status"],
               span=axis.span(begin, end), duration_ms=ms_between(begin, end),
               note=short_id(task["id"]), error=task.get("error"),
               href=url_for("console.task_page", task_id=task["id"]), marks=marks)


def _timeline_action_row(item: dict[str, Any], axis: Axis, task_end: datetime) -> Row:
    attrs = item["attrs"]
    begin = at(item["ts"]) or axis.start
    took = attrs.get("duration_ms")
    end = task_end if took is None else datetime.fromtimestamp(begin.timestamp() + took / 1000, UTC)
    status = attrs.get("downstream_status")
    return Row(kind="action", label=f"step {attrs['step']} · {attrs['action']}",
               status=attrs["status"], span=axis.span(begin, end),
               duration_ms=took if took is not None else ms_between(begin, end),
               note=f"HTTP {status}" if status is not None else "", error=attrs.get("error"),
               action=attrs["action"])

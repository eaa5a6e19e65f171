"""``GET /metrics``: the system's state in the Prometheus text exposition format (0.0.4).

Everything here is read from PostgreSQL at scrape time. There are deliberately no in-process
request counters: gunicorn runs several worker processes and a scrape reaches only one of them,
so per-process counters would jump between scrapes; request rates belong to the access log or
the proxy in front.
"""

from __future__ import annotations

from flask import Blueprint, Response

from api.current import runtime
from services import operations
from services.operations import QueueHealth

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/metrics")
def metrics() -> Response:
    rt = runtime()
    counts = operations.status_counts(rt)
    health = operations.queue_health(rt)
    text = "".join((_task_counts(counts), _queue_health(health)))
    return Response(text, content_type=CONTENT_TYPE)


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> str:
    """One metric family: its HELP and TYPE lines, then ``name{labels} value`` per sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _task_counts(counts: dict[str, int]) -> str:
    samples = [(f'{{status="{status}"}}', float(count)) for status, count in counts.items()]
    return _family("jct_tasks", "gauge", "Tasks in the database by status.", samples)


def _queue_health(health: QueueHealth) -> str:
    return "".join((
        _family("jct_oldest_queued_task_age_seconds", "gauge",
                "How long the oldest queued task that is due has waited (0 when none).",
                [("", health.oldest_due_queued_age_s)]),
        _family("jct_running_jobs", "gauge", "Attempts running now.",
                [("", float(health.running_jobs))]),
        _family("jct_expired_leases", "gauge",
                "Running attempts whose lease ran out (their worker stopped heartbeating).",
                [("", float(health.expired_leases))]),
    ))

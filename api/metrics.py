"""``GET /metrics``: Prometheus text (format 0.0.4).

Two parts. The processes' counters and histograms (tasks enqueued and finished, attempts,
queue wait, run and action times, HTTP requests, dispatch, S3, rescues) as every process of
this host's group recorded them: ``prometheus_client``'s multiprocess files, added up at scrape
time (``observability.multiprocess``). Under ``jct up`` that is the API and the workers; a
worker pool on a host of its own serves its own (``JCT_WORKER_METRICS_PORT``). Then the
database's gauges, read at scrape time in one cheap round trip (``models.metrics``): they are
the same whichever API process answers, so only the API serves them.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.current import runtime
from observability.multiprocess import exposition, process_values
from runtime import Runtime
from services import operations

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/metrics")
def metrics() -> Response:
    rt = runtime()
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseGauges(rt))
    body = exposition(process_values(rt.settings.metrics_dir, rt.metrics.registry), database)
    return Response(body, content_type=CONTENT_TYPE)


class DatabaseGauges(Collector):
    """The queue's state as the database has it, read when scraped."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = operations.queue_health(self.rt)
        tasks = GaugeMetricFamily("jct_tasks", "Tasks waiting (queued) and running now. Final "
                                  "statuses are counted by jct_tasks_finished_total.",
                                  labels=["status"])
        tasks.add_metric(["queued"], health.queued_tasks)
        tasks.add_metric(["running"], health.running_tasks)
        yield tasks
        yield GaugeMetricFamily("jct_oldest_queued_task_age_seconds", "How long the oldest "
                                "queued task that is due has waited (0 when none).",
                                value=health.oldest_due_queued_age_s)
        yield GaugeMetricFamily("jct_running_jobs", "Attempts running now.",
                                value=health.running_jobs)
        yield GaugeMetricFamily("jct_expired_leases", "Running attempts whose lease ran out "
                                "(their worker stopped heartbeating).", value=health.expired_leases)
        yield GaugeMetricFamily("jct_pending_uploads", "Blobs S3 refused, kept in a spool until "
                                "the uploader stores them.", value=health.pending_uploads)

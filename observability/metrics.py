"""The process's metrics: counters and histograms that the services record into as work
happens, one ``Metrics`` per runtime.

Recording never touches the database: every figure here is known in the process at the moment
it is recorded (the claim returns how long the task waited). Under gunicorn and the worker
pool each process writes its own files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them
up (``observability.multiprocess``); without that variable the values live in this process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from states import TaskStatus

# Seconds, from a wake-up that is claimed at once to a task that waited out a long backoff.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TERMINAL = (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)
# How an attempt ended: its task done, to be retried, failed, cancelled; given back at
# shutdown; fenced (another holder or the rescuer had taken it over).
ATTEMPT_OUTCOMES = ("done", "retry", "failed", "cancelled", "given_back", "fenced")
DISPATCH_OUTCOMES = ("sent", "resent", "failed", "outbox")
UPLOAD_OUTCOMES = ("stored", "spooled", "late_stored", "late_failed")
RESCUE_REASONS = ("worker_lost", "holder_gone")


class Metrics:
    """The metric families of one process and the named events that move them."""

    def __init__(self) -> None:
        # A registry of its own: several runtimes in one process (tests) do not collide in the
        # global one, and the scrape never reads the global one.
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.tasks_enqueued = Counter("jct_tasks_enqueued", "Tasks accepted (each task of a "
                                      "batch counts).", registry=registry)
        self.tasks_finished = Counter("jct_tasks_finished", "Tasks that reached a final status, "
                                      "by status.", ["status"], registry=registry)
        self.attempts = Counter("jct_attempts", "Attempts that ended, by outcome (done, retry, "
                                "failed, cancelled, given_back, fenced).", ["outcome"],
                                registry=registry)
        self.queue_wait = Histogram("jct_task_queue_wait_seconds", "From the moment a task was "
                                    "due (created, or its retry's backoff over) to its claim.",
                                    buckets=WAIT_BUCKETS, registry=registry)
        self.task_run = Histogram("jct_task_run_seconds", "One attempt, from its claim to its "
                                  "end written.", buckets=RUN_BUCKETS, registry=registry)
        self.action = Histogram("jct_action_seconds", "One step (action call), by action and "
                                "outcome (ok, failed).", ["action", "outcome"],
                                buckets=RUN_BUCKETS, registry=registry)
        self.http = Histogram("jct_http_request_seconds", "API requests, by route template, "
                              "method and status.", ["route", "method", "status"],
                              buckets=HTTP_BUCKETS, registry=registry)
        self.dispatches = Counter("jct_dispatches", "Wake-up messages: sent (after an "
                                  "enqueue on RabbitMQ, a retry, a rescue), resent (by the "
                                  "dispatcher), failed (broker refused), outbox (written with "
                                  "the task on the PostgreSQL broker).",
                                  ["outcome"], registry=registry)
        self.uploads = Counter("jct_s3_uploads", "Artifact blobs: stored, spooled (S3 refused; "
                               "kept pending), late_stored / late_failed (the uploader's retry "
                               "of a pending blob).", ["kind", "outcome"], registry=registry)
        self.rescues = Counter("jct_attempts_rescued", "Attempts taken back from a worker: "
                               "worker_lost (lease expired), holder_gone (its process died).",
                               ["reason"], registry=registry)
        self._zeros()

    def _zeros(self) -> None:
        """Every known series exists from the start, so ``rate()`` and the dashboard see a 0
        rather than no data."""
        for status in TERMINAL:
            self.tasks_finished.labels(str(status))
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for outcome in DISPATCH_OUTCOMES:
            self.dispatches.labels(outcome)
        for reason in RESCUE_REASONS:
            self.rescues.labels(reason)
        for kind in ("log", "report"):
            for outcome in UPLOAD_OUTCOMES:
                self.uploads.labels(kind, outcome)

    def enqueued(self, count: int) -> None:
        self.tasks_enqueued.inc(count)

    def dispatched(self, outcome: str, count: int = 1) -> None:
        if count:
            self.dispatches.labels(outcome).inc(count)

    def claimed(self, queue_wait_s: float) -> None:
        self.queue_wait.observe(max(0.0, queue_wait_s))

    def attempt_ended(self, outcome: str, run_s: float, task_status: TaskStatus | None) -> None:
        self.attempts.labels(outcome).inc()
        self.task_run.observe(max(0.0, run_s))
        self.task_settled(task_status)

    def task_settled(self, task_status: TaskStatus | None) -> None:
        """A task reached ``task_status``: counted when that is final."""
        if task_status in TERMINAL:
            self.tasks_finished.labels(str(task_status)).inc()

    def action_ended(self, action: str, outcome: str, seconds: float) -> None:
        self.action.labels(action, outcome).observe(max(0.0, seconds))

    def upload(self, kind: str, outcome: str) -> None:
        self.uploads.labels(kind, outcome).inc()

    def rescued(self, reason: str, task_status: TaskStatus) -> None:
        self.rescues.labels(reason).inc()
        self.task_settled(task_status)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http.labels(route, method, str(status)).observe(max(0.0, seconds))

"""One attempt of one task, as a worker runs it: claim, run the steps under a heartbeat, store
the log blob, finish (fenced), and schedule the retry if one is due."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable

from config import Settings, get_settings
from logging_setup import attempt_logs, log_event
from models import transitions
from models.db import CONNECTION_ERRORS, connection, reset_connection
from models.transitions import ClaimedAttempt, FenceLost
from services.action_runner import ActionRunner, AttemptResult
from services.artifacts import bookkeeping, store_attempt_log
from services.enqueue import dispatch
from tracing import bound

logger = logging.getLogger(__name__)


class _Shutdown:
    """Set once when this worker process is asked to stop; attempts still running after the
    grace period are interrupted at their next interruptible point and given back."""

    deadline: float | None = None


def begin_shutdown(grace_s: float) -> None:
    _Shutdown.deadline = time.monotonic() + grace_s


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def retry_delay_s(settings: Settings, attempt: int) -> float:
    """Exponential backoff with jitter: base·2^(n-1)·[0.5, 1.5), capped."""
    base = settings.retry_backoff_s * 2 ** (attempt - 1)
    return min(settings.retry_backoff_max_s, base * random.uniform(0.5, 1.5))


def run_task(task_id: str) -> str | None:
    """Claim and run ``task_id`` if it is claimable; returns the task's status after, or None."""
    settings = get_settings()
    with connection():
        attempt = transitions.claim_task(worker_name(), settings.lease_s, task_id)
        if attempt is None:
            log_event(logger, "duplicate_delivery",
                      f"task {task_id} is not claimable (running elsewhere, finished or not due); "
                      "message acknowledged")
            return None
        with bound(job_id=attempt.job_id):
            return _run_attempt(settings, attempt)


def _run_attempt(settings: Settings, attempt: ClaimedAttempt) -> str | None:
    attempt_logs.start(attempt.job_id)
    log_event(logger, "task_claimed", f"attempt {attempt.attempt}/{attempt.max_attempts} claimed "
              f"by {worker_name()}", attempt=attempt.attempt, worker=worker_name())
    with _Heartbeat(attempt.job_id, settings.lease_s) as heartbeat:
        result = ActionRunner(attempt, allowed_hosts=settings.http_allowed_hosts,
                              stop_reason=_stop_probe(attempt.task_id, heartbeat)).run()
    log_event(logger, "attempt_finished",
              f"attempt {attempt.attempt} {'ok' if result.error is None else 'failed'}",
              attempt=attempt.attempt, error=result.error)
    store_attempt_log(attempt, attempt_logs.take(attempt.job_id))
    return _finish(settings, attempt, result)


def _finish(settings: Settings, attempt: ClaimedAttempt, result: AttemptResult) -> str | None:
    if result.interrupted:
        return _give_back(attempt, result.interrupted)
    delay = retry_delay_s(settings, attempt.attempt)
    try:
        outcome = bookkeeping("finish attempt", lambda: transitions.finish_attempt(
            attempt, error=result.error, retryable=result.retryable, retry_delay_s=delay,
            cancelled=result.cancelled))
    except FenceLost as exc:
        log_event(logger, "attempt_fenced", f"finish refused: {exc}", level=logging.WARNING)
        return None
    if outcome.task_status == "queued":
        log_event(logger, "retry_scheduled", f"attempt {attempt.attempt} failed; retry in {delay:.1f}s",
                  level=logging.WARNING, error=result.error, delay_s=round(delay, 3))
        dispatch(attempt.task_id, attempt.trace_id, delay_s=delay)
    elif outcome.task_status == "done":
        log_event(logger, "task_done", f"task done after {attempt.attempt} attempt(s)")
    elif outcome.task_status == "cancelled":
        log_event(logger, "task_cancelled", "task cancelled while running", level=logging.WARNING)
    else:
        log_event(logger, "task_failed", f"task failed: {result.error}", level=logging.ERROR,
                  error=result.error)
    return outcome.task_status


def _give_back(attempt: ClaimedAttempt, reason: str) -> str | None:
    """Interrupted by shutdown: requeue for another worker. A lost lease: the rescuer already
    decided, so there is nothing of ours to write."""
    if reason == "lease_lost":
        log_event(logger, "attempt_fenced", "lease lost while running; the rescuer owns the task",
                  level=logging.WARNING)
        return None
    try:
        bookkeeping("give back attempt", lambda: transitions.give_back_attempt(attempt, reason))
    except FenceLost as exc:
        log_event(logger, "attempt_fenced", f"give-back refused: {exc}", level=logging.WARNING)
        return None
    log_event(logger, reason, f"attempt {attempt.attempt} interrupted by {reason}; task requeued",
              level=logging.WARNING)
    dispatch(attempt.task_id, attempt.trace_id)
    return "queued"


def _stop_probe(task_id: str, heartbeat: _Heartbeat, every_s: float = 1.0
                ) -> Callable[[], str | None]:
    """Why the attempt must stop now, if it must: lost lease, shutdown past grace, or an
    operator's cancel (asked of the database at most once a second)."""
    state = {"at": 0.0, "cancelled": False}

    def probe() -> str | None:
        if heartbeat.lost.is_set():
            return "lease_lost"
        if _Shutdown.deadline is not None and time.monotonic() >= _Shutdown.deadline:
            return "worker_shutdown"
        now = time.monotonic()
        if not state["cancelled"] and now - state["at"] >= every_s:
            state["at"] = now
            try:
                state["cancelled"] = transitions.cancel_requested(task_id)
            except CONNECTION_ERRORS:  # unknown for now: keep working, ask again next time
                reset_connection()
        return "cancelled" if state["cancelled"] else None

    return probe


class _Heartbeat:
    """Renews the attempt's lease every third of its length while the steps run; sets ``lost``
    when the attempt is no longer ours (the rescuer took it)."""

    def __init__(self, job_id: str, lease_s: float) -> None:
        self.job_id, self.lease_s = job_id, lease_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id[:8]}",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                with connection():
                    if not transitions.renew_lease(self.job_id, self.lease_s):
                        self.lost.set()
                        return
            except Exception as exc:  # the rescuer decides; a missed beat is only logged
                log_event(logger, "heartbeat_failed", f"lease renewal failed: {exc}",
                          level=logging.WARNING, job_id=self.job_id)

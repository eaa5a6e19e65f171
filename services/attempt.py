"""One attempt of one task, as a worker runs it: claim, run the steps under a heartbeat, store
the log blob, finish (fenced), and schedule the retry if one is due."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import tracing
from config import Settings
from logging_setup import log_event
from models import state_machine
from models.state_machine import Attempt, FenceLost
from models.trail import Trail
from runtime import Runtime
from services.action_runner import ActionRunner, AttemptResult
from services.artifacts import put_attempt_log
from services.dispatch import dispatch
from services.lease_keeper import Held, LeaseKeeper
from services.write_policy import best_effort, within_lease
from states import Event, TaskStatus

logger = logging.getLogger(__name__)


def retry_delay_s(settings: Settings, attempt: int) -> float:
    """Exponential backoff with jitter: base·2^(n-1)·[0.5, 1.5), capped."""
    base = settings.retry_backoff_s * 2 ** (attempt - 1)
    return min(settings.retry_backoff_max_s, base * random.uniform(0.5, 1.5))


def run_task(rt: Runtime, task_id: str) -> TaskStatus | None:
    """A wake-up for ``task_id``: claim the first task in line (highest priority, then the
    oldest due), else ``task_id`` itself, and run one attempt of it; returns the task's status
    after, or None when nothing was claimable.

    Messages are wake-ups, not assignments: taking the first in line keeps priorities and lets
    a task given back or rescued run at the next wake-up anywhere, instead of after whatever
    queued behind it. Claiming the next skips rows others hold; the named task is then claimed
    waiting out short locks (the API marking it dispatched), so its own message never leaves
    it behind."""
    with rt.db.connection():
        holder, lease_s = rt.holder, rt.settings.lease_s
        attempt = (state_machine.claim_task(rt.db, holder, lease_s)
                   or state_machine.claim_task(rt.db, holder, lease_s, task_id))
        if attempt is None:
            log_event(logger, "duplicate_delivery",
                      f"task {task_id} is not claimable (running elsewhere, finished or not due) "
                      "and no other task is due; message acknowledged")
            return None
        said = tracing.trace_id_var.get()
        with tracing.bound(trace_id=attempt.trace_id, task_id=attempt.task_id, job_id=attempt.id):
            if attempt.task_id == task_id:
                _check_trace(attempt, said)
            return _run_attempt(rt, attempt, woken_for=task_id)


def _check_trace(attempt: Attempt, said: str | None) -> None:
    """The row's trace id is the truth; a message for this task that said otherwise is
    logged."""
    if said is not None and said != attempt.trace_id:
        log_event(logger, "trace_mismatch", f"message carried trace {said}; the task's row says "
                  f"{attempt.trace_id}, which is used", level=logging.WARNING,
                  message_trace_id=said, row_trace_id=attempt.trace_id)


def _run_attempt(rt: Runtime, attempt: Attempt, *, woken_for: str) -> TaskStatus | None:
    """The attempt under its consumer span, a child of the dispatch whose message woke it (when
    the message was for this task), and its figures recorded."""
    rt.metrics.claimed(attempt.queue_wait_s)
    parent = tracing.remote_parent_var.get() if attempt.task_id == woken_for else None
    started = time.monotonic()
    with rt.spans.span("jct attempt", "consumer", parent_span_id=parent, attributes={
            "jct.task_id": attempt.task_id, "jct.job_id": attempt.id,
            "jct.attempt": attempt.number}) as span:
        status, result = _attempt(rt, attempt, woken_for=woken_for)
        outcome = attempt_outcome(result, status)
        span.set({"jct.outcome": outcome})
        if result.error is not None:
            span.end(result.error)
    rt.metrics.attempt_ended(outcome, time.monotonic() - started, status)
    return status


def attempt_outcome(result: AttemptResult, status: TaskStatus | None) -> str:
    """How an attempt ended, for ``jct_attempts_total{outcome}``."""
    if status is None:
        return "fenced"
    if result.interrupted:
        return "given_back"
    return "retry" if status is TaskStatus.QUEUED else str(status)


def _attempt(rt: Runtime, attempt: Attempt, *,
             woken_for: str) -> tuple[TaskStatus | None, AttemptResult]:
    rt.attempt_logs.start(attempt.id)
    # A wake-up runs the first task in line, which may be another than the one it was sent for.
    log_event(logger, str(Event.TASK_CLAIMED), f"attempt {attempt.number}/{attempt.max_attempts} "
              f"claimed by {rt.worker_name}", attempt=attempt.number, worker=rt.worker_name,
              woken_for=woken_for if woken_for != attempt.task_id else None)
    keeper = rt.once("lease_keeper", lambda: LeaseKeeper(rt))
    held = keeper.hold(attempt.id, attempt.task_id)
    # Held until the end is written: the log PUT and the finish can wait on a slow S3 or ride
    # out a database outage, and a lease that ran out meanwhile would get a finished attempt
    # rescued and run again.
    try:
        runner = ActionRunner(rt, attempt, stop_reason=_stop_probe(rt, held))
        held.tick = runner.write_if_slow
        try:
            result = runner.run()
        finally:
            held.tick = lambda: None  # the steps are over: their rows go with the end
        log_event(logger, "attempt_finished",
                  f"attempt {attempt.number} {'ok' if result.error is None else 'failed'}",
                  attempt=attempt.number, error=result.error)
        log = put_attempt_log(rt, attempt, rt.attempt_logs.take(attempt.id))
        return _finish(rt, attempt, result, Trail(tuple(runner.invocations), log)), result
    finally:
        keeper.release(held)


def _finish(rt: Runtime, attempt: Attempt, result: AttemptResult,
            left: Trail) -> TaskStatus | None:
    """Write the attempt's end with what it left (steps, log) in one statement."""
    if result.interrupted:
        return _give_back(rt, attempt, result.interrupted, left)
    delay = retry_delay_s(rt.settings, attempt.number)
    try:
        end = within_lease("finish attempt", lambda: state_machine.finish_attempt(
            rt.db, attempt, error=result.error, retryable=result.retryable, retry_delay_s=delay,
            cancelled=result.cancelled, left=left), lease_s=rt.settings.lease_s)
    except FenceLost as exc:
        _fenced(rt, attempt, left, "finish", f"finish refused: {exc}")
        return None
    if end.task_status is TaskStatus.QUEUED:
        log_event(logger, str(Event.RETRY_SCHEDULED),
                  f"attempt {attempt.number} failed; retry in {delay:.1f}s",
                  level=logging.WARNING, error=result.error, delay_s=round(delay, 3))
        dispatch(rt, attempt.task_id, attempt.trace_id, delay_s=delay)
    elif end.task_status is TaskStatus.DONE:
        log_event(logger, str(Event.TASK_DONE), f"task done after {attempt.number} attempt(s)")
    elif end.task_status is TaskStatus.CANCELLED:
        log_event(logger, str(Event.TASK_CANCELLED), "task cancelled while running",
                  level=logging.WARNING)
    else:
        log_event(logger, str(Event.TASK_FAILED), f"task failed: {result.error}",
                  level=logging.ERROR, error=result.error)
    return end.task_status


def _give_back(rt: Runtime, attempt: Attempt, reason: str, left: Trail) -> TaskStatus | None:
    """Interrupted by shutdown: requeue for another worker. A lost lease: the rescuer already
    decided; only what the attempt did is ours to write."""
    if reason == "lease_lost":
        _fenced(rt, attempt, left, "lease", "lease lost while running; the rescuer owns the task")
        return None
    try:
        status = within_lease("give back attempt", lambda: state_machine.give_back_attempt(
            rt.db, attempt, Event(reason), left), lease_s=rt.settings.lease_s)
    except FenceLost as exc:
        _fenced(rt, attempt, left, "give-back", f"give-back refused: {exc}")
        return None
    if status is TaskStatus.CANCELLED:
        log_event(logger, str(Event.TASK_CANCELLED), f"attempt {attempt.number} interrupted by "
                  f"{reason}; the task was cancelled meanwhile", level=logging.WARNING)
        return status
    log_event(logger, reason, f"attempt {attempt.number} interrupted by {reason}; task requeued",
              level=logging.WARNING)
    dispatch(rt, attempt.task_id, attempt.trace_id)
    return status


def _fenced(rt: Runtime, attempt: Attempt, left: Trail, what: str, message: str) -> None:
    """The attempt is no longer ours: say so in the log, and write what it did (its steps, its
    log) with the refusal on the task's timeline."""
    log_event(logger, str(Event.ATTEMPT_FENCED), message, level=logging.WARNING)
    best_effort(f"record {what} fenced", lambda: state_machine.record_trail(
        rt.db, attempt, left, rt.worker_name, what), event="event_unrecorded",
        consequence="the log line above is the record")


def _stop_probe(rt: Runtime, held: Held) -> Callable[[], str | None]:
    """Why the attempt must stop now, if it must: lost lease, shutdown past grace, or an
    operator's cancel (the lease keeper asks the database for all attempts once a second)."""

    def probe() -> str | None:
        if held.lost.is_set():
            return "lease_lost"
        if rt.shutdown.past_grace(rt.clock.monotonic()):
            return str(Event.WORKER_SHUTDOWN)
        return "cancelled" if held.cancelled.is_set() else None

    return probe

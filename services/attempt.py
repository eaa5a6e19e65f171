"""One attempt of one task, as a worker runs it: claim, run the steps under a heartbeat, store
the log blob, finish (fenced), and schedule the retry if one is due."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

import tracing
from config import Settings
from errors import Unavailable
from logging_setup import log_event
from models import leases, state_machine
from models.state_machine import Attempt, FenceLost
from models.tasks import cancel_requested
from models.trail import Trail
from runtime import Runtime
from services.action_runner import ActionRunner, AttemptResult
from services.artifacts import put_attempt_log
from services.dispatch import dispatch
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
    rt.attempt_logs.start(attempt.id)
    # A wake-up runs the first task in line, which may be another than the one it was sent for.
    log_event(logger, str(Event.TASK_CLAIMED), f"attempt {attempt.number}/{attempt.max_attempts} "
              f"claimed by {rt.worker_name}", attempt=attempt.number, worker=rt.worker_name,
              woken_for=woken_for if woken_for != attempt.task_id else None)
    heartbeat = _Heartbeat(rt, attempt.id)
    runner = ActionRunner(rt, attempt, stop_reason=_stop_probe(rt, attempt.task_id, heartbeat))
    heartbeat.tick = runner.write_if_slow
    with heartbeat:
        result = runner.run()
    log_event(logger, "attempt_finished",
              f"attempt {attempt.number} {'ok' if result.error is None else 'failed'}",
              attempt=attempt.number, error=result.error)
    log = put_attempt_log(rt, attempt, rt.attempt_logs.take(attempt.id))
    return _finish(rt, attempt, result, Trail(tuple(runner.invocations), log))


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
        within_lease("give back attempt", lambda: state_machine.give_back_attempt(
            rt.db, attempt, Event(reason), left), lease_s=rt.settings.lease_s)
    except FenceLost as exc:
        _fenced(rt, attempt, left, "give-back", f"give-back refused: {exc}")
        return None
    log_event(logger, reason, f"attempt {attempt.number} interrupted by {reason}; task requeued",
              level=logging.WARNING)
    dispatch(rt, attempt.task_id, attempt.trace_id)
    return TaskStatus.QUEUED


def _fenced(rt: Runtime, attempt: Attempt, left: Trail, what: str, message: str) -> None:
    """The attempt is no longer ours: say so in the log, and write what it did (its steps, its
    log) with the refusal on the task's timeline."""
    log_event(logger, str(Event.ATTEMPT_FENCED), message, level=logging.WARNING)
    best_effort(f"record {what} fenced", lambda: state_machine.record_trail(
        rt.db, attempt, left, rt.worker_name, what), event="event_unrecorded",
        consequence="the log line above is the record")


def _stop_probe(rt: Runtime, task_id: str, heartbeat: _Heartbeat,
                every_s: float = 1.0) -> Callable[[], str | None]:
    """Why the attempt must stop now, if it must: lost lease, shutdown past grace, or an
    operator's cancel (asked of the database at most once a second)."""
    # The claim already saw the task uncancelled: the first question waits a full interval, so a
    # task that ends sooner costs no query for it.
    state = {"at": rt.clock.monotonic(), "cancelled": False}

    def probe() -> str | None:
        if heartbeat.lost.is_set():
            return "lease_lost"
        now = rt.clock.monotonic()
        if rt.shutdown.past_grace(now):
            return str(Event.WORKER_SHUTDOWN)
        if not state["cancelled"] and now - state["at"] >= every_s:
            state["at"] = now
            with contextlib.suppress(Unavailable):  # unknown for now: ask again next time
                state["cancelled"] = cancel_requested(rt.db, task_id)
        return "cancelled" if state["cancelled"] else None

    return probe


class _Heartbeat:
    """Renews the attempt's lease every third of its length while the steps run; sets ``lost``
    when the attempt is no longer ours (the rescuer took it). Between beats it calls ``tick``
    every ``TICK_S`` (the runner writes the row of a step that is taking a while)."""

    TICK_S = 0.25

    def __init__(self, rt: Runtime, attempt_id: str) -> None:
        self.rt, self.attempt_id = rt, attempt_id
        self.tick: Callable[[], None] = lambda: None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{attempt_id[:8]}",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        lease_s = self.rt.settings.lease_s
        due = time.monotonic() + lease_s / 3
        while not self._stop.wait(min(self.TICK_S, lease_s / 3)):
            try:
                self.tick()
                if time.monotonic() >= due:
                    due = time.monotonic() + lease_s / 3
                    with self.rt.db.connection():
                        if not leases.renew_lease(self.rt.db, self.attempt_id, lease_s):
                            self.lost.set()
                            return
            except Exception as exc:  # the rescuer decides; a missed beat is only logged
                log_event(logger, "heartbeat_failed", f"lease renewal failed: {exc}",
                          level=logging.WARNING, job_id=self.attempt_id)

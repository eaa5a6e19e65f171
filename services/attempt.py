"""One attempt of one task, as a worker runs it: claim, run the steps under a heartbeat, store
the log blob, finish (fenced), and schedule the retry if one is due."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable

import tracing
from config import Settings
from errors import Unavailable
from logging_setup import log_event
from models import leases, state_machine
from models.state_machine import Attempt, FenceLost
from models.tasks import cancel_requested
from runtime import Runtime
from services.action_runner import ActionRunner, AttemptResult
from services.artifacts import store_attempt_log
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
            _check_trace(attempt, task_id, said)
            return _run_attempt(rt, attempt)


def _check_trace(attempt: Attempt, woken_for: str, said: str | None) -> None:
    """The row's trace id is the truth; a message for this task that said otherwise is
    logged (a wake-up that ran another task says so too, under that task's trace)."""
    if attempt.task_id != woken_for:
        log_event(logger, "claimed_first_in_line", f"woken for task {woken_for}; ran task "
                  f"{attempt.task_id}, first in line", woken_for=woken_for)
        return
    if said is not None and said != attempt.trace_id:
        log_event(logger, "trace_mismatch", f"message carried trace {said}; the task's row says "
                  f"{attempt.trace_id}, which is used", level=logging.WARNING,
                  message_trace_id=said, row_trace_id=attempt.trace_id)


def _run_attempt(rt: Runtime, attempt: Attempt) -> TaskStatus | None:
    rt.attempt_logs.start(attempt.id)
    log_event(logger, str(Event.TASK_CLAIMED), f"attempt {attempt.number}/{attempt.max_attempts} "
              f"claimed by {rt.worker_name}", attempt=attempt.number, worker=rt.worker_name)
    with _Heartbeat(rt, attempt.id) as heartbeat:
        result = ActionRunner(rt, attempt, stop_reason=_stop_probe(rt, attempt.task_id,
                                                                   heartbeat)).run()
    log_event(logger, "attempt_finished",
              f"attempt {attempt.number} {'ok' if result.error is None else 'failed'}",
              attempt=attempt.number, error=result.error)
    store_attempt_log(rt, attempt, rt.attempt_logs.take(attempt.id))
    return _finish(rt, attempt, result)


def _finish(rt: Runtime, attempt: Attempt, result: AttemptResult) -> TaskStatus | None:
    if result.interrupted:
        return _give_back(rt, attempt, result.interrupted)
    delay = retry_delay_s(rt.settings, attempt.number)
    try:
        end = within_lease("finish attempt", lambda: state_machine.finish_attempt(
            rt.db, attempt, error=result.error, retryable=result.retryable, retry_delay_s=delay,
            cancelled=result.cancelled), lease_s=rt.settings.lease_s)
    except FenceLost as exc:
        _fenced(rt, attempt, "finish", f"finish refused: {exc}")
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


def _give_back(rt: Runtime, attempt: Attempt, reason: str) -> TaskStatus | None:
    """Interrupted by shutdown: requeue for another worker. A lost lease: the rescuer already
    decided, so there is nothing of ours to write."""
    if reason == "lease_lost":
        _fenced(rt, attempt, "lease", "lease lost while running; the rescuer owns the task")
        return None
    try:
        within_lease("give back attempt", lambda: state_machine.give_back_attempt(
            rt.db, attempt, Event(reason)), lease_s=rt.settings.lease_s)
    except FenceLost as exc:
        _fenced(rt, attempt, "give-back", f"give-back refused: {exc}")
        return None
    log_event(logger, reason, f"attempt {attempt.number} interrupted by {reason}; task requeued",
              level=logging.WARNING)
    dispatch(rt, attempt.task_id, attempt.trace_id)
    return TaskStatus.QUEUED


def _fenced(rt: Runtime, attempt: Attempt, what: str, message: str) -> None:
    """The attempt is no longer ours: say so in the log and on the task's timeline."""
    log_event(logger, str(Event.ATTEMPT_FENCED), message, level=logging.WARNING)
    best_effort(f"record {what} fenced", lambda: state_machine.record_fenced(
        rt.db, attempt, rt.worker_name, what), event="event_unrecorded",
        consequence="the log line above is the record")


def _stop_probe(rt: Runtime, task_id: str, heartbeat: _Heartbeat,
                every_s: float = 1.0) -> Callable[[], str | None]:
    """Why the attempt must stop now, if it must: lost lease, shutdown past grace, or an
    operator's cancel (asked of the database at most once a second)."""
    state = {"at": 0.0, "cancelled": False}

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
    when the attempt is no longer ours (the rescuer took it)."""

    def __init__(self, rt: Runtime, attempt_id: str) -> None:
        self.rt, self.attempt_id = rt, attempt_id
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
        while not self._stop.wait(lease_s / 3):
            try:
                with self.rt.db.connection():
                    if not leases.renew_lease(self.rt.db, self.attempt_id, lease_s):
                        self.lost.set()
                        return
            except Exception as exc:  # the rescuer decides; a missed beat is only logged
                log_event(logger, "heartbeat_failed", f"lease renewal failed: {exc}",
                          level=logging.WARNING, job_id=self.attempt_id)

"""Dispatch: sending a queued task's wake-up message and recording that it was sent.

The row is the truth and the message only a wake-up: if the broker refuses, the task stays
``queued`` with a ``dispatch_failed`` event, and ``dispatch_due`` (every worker's maintenance
pass) sends it again later — as it does for a task whose message went stale unclaimed. The
rows a pass takes are marked as it takes them, so no two passes send the same task.
"""

from __future__ import annotations

import logging

from errors import DispatchError
from logging_setup import log_event
from models import dispatch as bookkeeping
from runtime import Runtime
from services.write_policy import best_effort
from states import Event
from tracing import bound

logger = logging.getLogger(__name__)

_UNRECORDED = {"event": "dispatch_unrecorded", "consequence": "the dispatcher will re-send"}


def dispatch(rt: Runtime, task_id: str, trace_id: str, *, resent: bool = False,
             delay_s: float = 0.0) -> bool:
    """Send one task's wake-up message and record the outcome; never raises for a broker or
    database failure (the dispatcher is the safety net)."""
    with bound(task_id=task_id, trace_id=trace_id):
        if _send(rt, task_id, trace_id, resent=resent, delay_s=delay_s) is None:
            return False
        best_effort("mark_dispatched", lambda: bookkeeping.mark_dispatched(
            rt.db, [(task_id, trace_id)], resent=resent, broker=rt.broker.name), **_UNRECORDED)
    return True


def dispatch_many(rt: Runtime, tasks: list[tuple[str, str]]) -> None:
    """Send the ``(task_id, trace_id)``s' messages — all at once, else (the broker refused the
    batch) one by one, each failure recorded — then record every successful send in one
    transaction."""
    if len(tasks) > 1 and _send_batch(rt, tasks):
        return
    sent: list[tuple[str, str]] = []
    for task_id, trace_id in tasks:
        with bound(task_id=task_id, trace_id=trace_id):
            if _send(rt, task_id, trace_id) is not None:
                sent.append((task_id, trace_id))
    best_effort("mark_dispatched_many", lambda: bookkeeping.mark_dispatched(
        rt.db, sent, broker=rt.broker.name), **_UNRECORDED)


def _send_batch(rt: Runtime, tasks: list[tuple[str, str]]) -> bool:
    """One batch send and its record; ``False`` when the broker refused it (nothing sent)."""
    messages = []
    for task_id, trace_id in tasks:
        # Each message's traceparent names its own dispatch span (the attempt it wakes is that
        # span's child); the span covers the message's making, the batch's publish follows.
        with bound(task_id=task_id, trace_id=trace_id), rt.spans.span(
                "jct dispatch", "producer", attributes={"messaging.system": rt.broker.name,
                                                        "jct.task_id": task_id, "jct.resent": False}):
            messages.append(rt.broker.message(task_id, trace_id))
    try:
        rt.broker.send_messages(messages)
    except DispatchError as exc:
        log_event(logger, "batch_send_failed", f"{len(tasks)} wake-ups not sent together, "
                  f"sending them one by one: {exc}", level=logging.WARNING, tasks=len(tasks))
        return False
    rt.metrics.dispatched("sent", len(messages))
    for (task_id, trace_id), message in zip(tasks, messages, strict=True):
        with bound(task_id=task_id, trace_id=trace_id):
            log_event(logger, str(Event.TASK_DISPATCHED), f"task {task_id} sent to the broker",
                      message_id=message.message_id, broker=rt.broker.name)
    best_effort("mark_dispatched_many", lambda: bookkeeping.mark_dispatched(
        rt.db, tasks, broker=rt.broker.name), **_UNRECORDED)
    return True


def dispatch_due(rt: Runtime, limit: int = 100) -> int:
    """One dispatcher pass; returns how many tasks were sent a wake-up.

    A task whose wake-up was never sent gets one. A task that merely waited long is not
    re-sent on age alone: a confirmed message that waits in a busy queue is not lost. Only when
    fewer wake-ups wait in the broker than tasks are due (the evidence that some were lost:
    consumed by a process that died before claiming, purged, dropped by a broker restart) are
    the oldest stale tasks sent again, as many as are missing."""
    with rt.db.connection():
        due = bookkeeping.take_unsent(rt.db, limit)
        sent = _send_all(rt, due)
        missing = _missing_wakeups(rt) if sent == len(due) else 0
        stale = bookkeeping.take_stale(rt.db, rt.settings.dispatch_stale_s,
                                       min(limit, missing)) if missing > 0 else []
        sent += _send_all(rt, stale)
    if due or stale:
        log_event(logger, "dispatcher_pass", f"sent {sent} wake-up(s): {len(due)} never sent, "
                  f"{len(stale)} of {missing} missing", unsent=len(due), missing=missing,
                  resent=len(stale), sent=sent)
    return sent


def _send_all(rt: Runtime, taken: list[tuple[str, str, float]]) -> int:
    for index, (task_id, trace_id, delay_s) in enumerate(taken):
        if not dispatch(rt, task_id, trace_id, resent=True, delay_s=delay_s):
            # The broker is down: one dispatch_failed per pass is enough evidence.
            bookkeeping.release_dispatch(rt.db, [task for task, _, _ in taken[index + 1:]])
            return index
    return len(taken)


def _missing_wakeups(rt: Runtime) -> int:
    """Due tasks minus the wake-ups waiting in the broker (all of them, when the broker cannot
    say). Prefetched messages are not counted as waiting, so this errs towards a spare
    wake-up, which the claim makes harmless."""
    due = bookkeeping.count_due(rt.db)
    if due == 0:
        return 0
    try:
        if rt.settings.broker_kind == "postgres":
            waiting = bookkeeping.waiting_in_pg_broker(rt.db, rt.settings.queue)
        else:
            waiting = rt.broker.waiting_in_rabbitmq()
    except Exception as exc:  # unknown: fall back to age alone (the backoff bounds it)
        log_event(logger, "broker_count_failed",
                  f"cannot count waiting messages: {type(exc).__name__}: {exc}",
                  level=logging.WARNING)
        return due
    return max(0, due - waiting)


def _send(rt: Runtime, task_id: str, trace_id: str, *, resent: bool = False,
          delay_s: float = 0.0) -> str | None:
    """The message id, or ``None`` after recording ``dispatch_failed`` (the row stays queued)."""
    try:
        # The message's traceparent names this span: the attempt it wakes is its child.
        with rt.spans.span("jct dispatch", "producer", attributes={
                "messaging.system": rt.broker.name, "jct.task_id": task_id, "jct.resent": resent}):
            message_id = rt.broker.send_task(task_id, trace_id, delay_s=delay_s)
    except DispatchError as exc:
        rt.metrics.dispatched("failed")
        error = str(exc)
        best_effort("record_dispatch_failed", lambda: bookkeeping.record_dispatch_failed(
            rt.db, task_id, trace_id, error), **_UNRECORDED)
        log_event(logger, str(Event.DISPATCH_FAILED),
                  f"task {task_id} not sent, will be re-sent: {exc}", level=logging.WARNING)
        return None
    rt.metrics.dispatched("resent" if resent else "sent")
    log_event(logger, str(Event.TASK_REDISPATCHED if resent else Event.TASK_DISPATCHED),
              f"task {task_id} sent to the broker", message_id=message_id, broker=rt.broker.name,
              delay_s=delay_s or None)
    return message_id

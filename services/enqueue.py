"""Enqueue: validate, write the task and its event in one transaction, then wake a worker.

The row is the truth and the message only a wake-up: if the broker refuses, the task stays
``queued`` with a ``dispatch_failed`` event and the dispatcher sends it again later.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee

import broker
from errors import Conflict, DispatchError, SpecInvalid
from logging_setup import log_event
from models import transitions
from models.db import connection
from services.spec import canonical_json, validate_spec
from tracing import bound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enqueued:
    task_id: str
    trace_id: str
    status: str
    created: bool = True


def enqueue(raw_spec: Any, trace_id: str, idempotency_key: str | None = None) -> Enqueued:
    """Accept one task. With an idempotency key, a repeat returns the original task."""
    spec = validate_spec(raw_spec)
    request_hash = hashlib.sha256(canonical_json(spec).encode()).hexdigest() if idempotency_key else None
    with connection():
        if idempotency_key:
            existing = _existing(idempotency_key, request_hash)
            if existing is not None:
                return existing
        try:
            (task_id,) = transitions.create_tasks([transitions.NewTask(
                trace_id=trace_id, spec=spec, idempotency_key=idempotency_key,
                request_hash=request_hash)])
        except peewee.IntegrityError:
            # Lost a race with the same key: the winner's row answers.
            found = _existing(idempotency_key or "", request_hash)
            if found is None:
                raise
            return found
        _log_enqueued(task_id, spec)
        dispatch(task_id, trace_id)
    return Enqueued(task_id=task_id, trace_id=trace_id, status="queued")


def enqueue_batch(raw_specs: Any, trace_id: str) -> list[Enqueued]:
    """Accept several tasks in one transaction under one trace id; all or nothing."""
    if not isinstance(raw_specs, list) or not 1 <= len(raw_specs) <= 1000:
        raise SpecInvalid("tasks", "must be a list of 1 to 1000 task specs")
    specs = []
    for index, raw in enumerate(raw_specs):
        try:
            specs.append(validate_spec(raw))
        except SpecInvalid as exc:
            raise SpecInvalid(f"tasks[{index}].{exc.field}", exc.problem) from exc
    with connection():
        ids = transitions.create_tasks([transitions.NewTask(trace_id=trace_id, spec=s) for s in specs])
        for task_id, spec in zip(ids, specs, strict=True):
            _log_enqueued(task_id, spec)
        _dispatch_many(ids, trace_id)
    return [Enqueued(task_id=task_id, trace_id=trace_id, status="queued") for task_id in ids]


def _existing(key: str, request_hash: str | None) -> Enqueued | None:
    task = transitions.find_by_idempotency_key(key)
    if task is None:
        return None
    if task.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different body",
                       detail={"task_id": str(task.id)})
    return Enqueued(task_id=str(task.id), trace_id=str(task.trace_id), status=task.status,
                    created=False)


def _log_enqueued(task_id: str, spec: dict[str, Any]) -> None:
    with bound(task_id=task_id):
        log_event(logger, "task_enqueued", f"task {task_id} accepted ({len(spec['steps'])} steps)",
                  task_name=spec.get("name"), steps=[s["action"] for s in spec["steps"]])


def _dispatch_many(task_ids: list[str], trace_id: str) -> None:
    """Send each wake-up message, then record every successful send in one transaction."""
    sent: list[tuple[str, str]] = []
    for task_id in task_ids:
        with bound(task_id=task_id, trace_id=trace_id):
            if _send(task_id, trace_id) is not None:
                sent.append((task_id, trace_id))
    _after_commit("mark_dispatched_many", transitions.mark_dispatched_many, sent,
                  broker=_broker_kind())


def dispatch(task_id: str, trace_id: str, *, resent: bool = False, delay_s: float = 0.0) -> bool:
    """Send the wake-up message and record the outcome; never raises for a broker failure."""
    with bound(task_id=task_id, trace_id=trace_id):
        if _send(task_id, trace_id, resent=resent, delay_s=delay_s) is None:
            return False
        _after_commit("mark_dispatched", transitions.mark_dispatched, task_id, trace_id,
                      resent=resent, broker=_broker_kind())
        return True


def _send(task_id: str, trace_id: str, *, resent: bool = False, delay_s: float = 0.0) -> str | None:
    """The message id, or ``None`` after recording ``dispatch_failed`` (the row stays queued)."""
    try:
        message_id = broker.send_task(task_id, trace_id, delay_s=delay_s)
    except DispatchError as exc:
        _after_commit("record_dispatch_failed", transitions.record_dispatch_failed, task_id,
                      trace_id, str(exc))
        log_event(logger, "dispatch_failed", f"task {task_id} not sent, will be re-sent: {exc}",
                  level=logging.WARNING)
        return None
    log_event(logger, "task_redispatched" if resent else "task_dispatched",
              f"task {task_id} sent to the broker", message_id=message_id, broker=_broker_kind(),
              delay_s=delay_s or None)
    return message_id


def _after_commit(what: str, record: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Bookkeeping after the task is committed must not turn an accepted task into an error
    answer (a client retrying a 503 would create it twice). If the database went away, the
    dispatcher sees ``dispatched_at`` unset or stale and sends the task again; the claim makes a
    second delivery harmless."""
    try:
        record(*args, **kwargs)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        log_event(logger, "dispatch_unrecorded",
                  f"{what} not written ({str(exc).strip()[:200]}); the dispatcher will re-send",
                  level=logging.WARNING)


def _broker_kind() -> str:
    return broker.get_broker().__class__.__name__

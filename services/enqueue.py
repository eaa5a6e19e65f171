"""Enqueue: validate, write the task and its event in one transaction, then wake a worker
(``services.dispatch``) once the transaction is committed."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import peewee

from errors import Conflict
from logging_setup import log_event
from models import state_machine
from models.state_machine import NewTask
from models.tasks import find_by_idempotency_key
from runtime import Runtime
from services.dispatch import dispatch_many
from services.spec import canonical_json, validate_batch, validate_spec
from states import Event, TaskStatus
from tracing import bound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enqueued:
    task_id: str
    trace_id: str
    status: str
    created: bool = True


def enqueue(rt: Runtime, raw_spec: Any, trace_id: str,
            idempotency_key: str | None = None) -> Enqueued:
    """Accept one task. With an idempotency key, a repeat returns the original task."""
    spec = validate_spec(raw_spec)
    request_hash = hashlib.sha256(canonical_json(spec).encode()).hexdigest() if idempotency_key else None
    with rt.db.connection():
        if idempotency_key:
            existing = _existing(rt, idempotency_key, request_hash)
            if existing is not None:
                return existing
        try:
            (task_id,) = _accept(rt, [NewTask(trace_id=trace_id, spec=spec,
                                              idempotency_key=idempotency_key,
                                              request_hash=request_hash)])
        except peewee.IntegrityError:
            # Lost a race with the same key: the winner's row answers.
            found = _existing(rt, idempotency_key or "", request_hash)
            if found is None:
                raise
            return found
    return Enqueued(task_id=task_id, trace_id=trace_id, status=str(TaskStatus.QUEUED))


def enqueue_batch(rt: Runtime, request: Any, trace_id: str) -> list[Enqueued]:
    """Accept a batch request (``{"tasks": [spec, …]}``): its tasks in one transaction under
    one trace id; all or nothing."""
    specs = validate_batch(request)
    with rt.db.connection():
        ids = _accept(rt, [NewTask(trace_id=trace_id, spec=spec) for spec in specs])
    return [Enqueued(task_id=task_id, trace_id=trace_id, status=str(TaskStatus.QUEUED))
            for task_id in ids]


def _accept(rt: Runtime, new_tasks: list[NewTask]) -> list[str]:
    """Write the tasks and wake workers for them: on the PostgreSQL broker the wake-ups are
    written in the same transaction (its outbox); on RabbitMQ they are sent after the commit."""
    outbox = rt.broker.outbox()
    if outbox is None:
        ids = state_machine.create_tasks(rt.db, new_tasks)
    else:  # the wake-ups are written here: this is their dispatch (their traceparent names it)
        with rt.spans.span("jct dispatch", "producer", attributes={
                "messaging.system": "postgresql", "messaging.batch.message_count": len(new_tasks)}):
            ids = state_machine.create_tasks(rt.db, new_tasks, outbox)
        rt.metrics.dispatched("outbox", len(ids))
    rt.metrics.enqueued(len(ids))
    for task_id, new in zip(ids, new_tasks, strict=True):
        _log_enqueued(task_id, new.spec, outbox.broker if outbox else None)
    if outbox is None:
        dispatch_many(rt, [(task_id, new.trace_id) for task_id, new in zip(ids, new_tasks,
                                                                             strict=True)])
    return ids


def _existing(rt: Runtime, key: str, request_hash: str | None) -> Enqueued | None:
    task = find_by_idempotency_key(rt.db, key)
    if task is None:
        return None
    if task.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different body",
                       detail={"task_id": task.task_id})
    return Enqueued(task_id=task.task_id, trace_id=task.trace_id, status=str(task.status),
                    created=False)


def _log_enqueued(task_id: str, spec: dict[str, Any], outbox_broker: str | None) -> None:
    """One line a task. With the outbox its wake-up was written in the same statement, so the
    line says so (``broker``) instead of a second ``task_dispatched`` line: the database has
    both events, and log lines were the largest part of a batched task's cost in the API."""
    wakeup: dict[str, Any] = {} if outbox_broker is None else {"broker": outbox_broker}
    with bound(task_id=task_id):
        log_event(logger, str(Event.TASK_ENQUEUED),
                  f"task {task_id} accepted ({len(spec['steps'])} steps)"
                  + (", its wake-up written with it" if wakeup else ""),
                  task_name=spec.get("name"), steps=[s["action"] for s in spec["steps"]], **wakeup)

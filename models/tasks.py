"""Small reads of one task row that the services ask while they work."""

from __future__ import annotations

from dataclasses import dataclass

from errors import NotFound
from models.db import Database
from states import TaskStatus


@dataclass(frozen=True)
class IdempotentTask:
    """The task an ``Idempotency-Key`` was first used for."""

    task_id: str
    trace_id: str
    status: TaskStatus
    request_hash: str | None


def find_by_idempotency_key(db: Database, key: str) -> IdempotentTask | None:
    row = db.one("SELECT id, trace_id, status, request_hash FROM tasks"
                 " WHERE idempotency_key = %(key)s", {"key": key})
    if row is None:
        return None
    return IdempotentTask(str(row[0]), str(row[1]), TaskStatus(row[2]), row[3])


def cancel_requested(db: Database, task_id: str) -> bool:
    """Has an operator asked this (running) task to stop?"""
    row = db.one("SELECT cancel_requested FROM tasks WHERE id = %(id)s", {"id": task_id})
    return bool(row and row[0])


def trace_of(db: Database, task_id: str) -> str:
    row = db.one("SELECT trace_id FROM tasks WHERE id = %(id)s", {"id": task_id})
    if row is None:
        raise NotFound(f"no task {task_id}")
    return str(row[0])


def task_exists(db: Database, task_id: str) -> bool:
    return db.one("SELECT 1 FROM tasks WHERE id = %(id)s", {"id": task_id}) is not None

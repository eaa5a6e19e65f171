"""Leases: a running attempt is held by its worker only while the worker keeps renewing the
lease; the rescuer (``models.state_machine.rescue_expired_leases``) takes back the others."""

from __future__ import annotations

from models.db import Database

_RENEW = """
UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %(lease_s)s)
 WHERE id = ANY(%(ids)b::uuid[]) AND status = 'running'
RETURNING id
"""


def renew_leases(db: Database, attempt_ids: list[str], lease_s: float) -> set[str]:
    """Heartbeat for all of a process's attempts: push their leases out. Returns the ids still
    ours; one missing was taken from us (rescued, cancelled or ended)."""
    return {str(row[0]) for row in db.all(_RENEW, {"ids": attempt_ids, "lease_s": lease_s})}


def cancel_requested_of(db: Database, task_ids: list[str]) -> set[str]:
    """Which of these (running) tasks an operator asked to stop."""
    rows = db.all("SELECT id FROM tasks WHERE id = ANY(%(ids)b::uuid[]) AND cancel_requested",
                  {"ids": task_ids})
    return {str(row[0]) for row in rows}

"""Leases: a running attempt is held by its worker only while the worker keeps renewing the
lease; the rescuer (``models.state_machine.rescue_expired_leases``) takes back the others."""

from __future__ import annotations

from models.db import Database

_RENEW = """
UPDATE jobs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %(lease_s)s)
 WHERE id = %(attempt_id)s AND status = 'running'
"""


def renew_lease(db: Database, attempt_id: str, lease_s: float) -> bool:
    """Heartbeat: push the lease out. ``False`` when the attempt is no longer ours."""
    with db.transaction():
        return bool(db.execute(_RENEW, {"attempt_id": attempt_id, "lease_s": lease_s}).rowcount)

"""Action invocation rows: one per step an attempt runs, with what went in (``inputs_hash``)
and what came out (status, downstream status, result artifact)."""

from __future__ import annotations

import uuid

from models.db import Database
from states import InvocationStatus

_START = """
INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash,
                                status)
VALUES (%(id)s, %(task_id)s, %(job_id)s, %(trace_id)s, %(step)s, %(action_name)s, %(inputs_hash)s,
        'running')
"""

_FINISH = """
UPDATE action_invocations SET status = %(status)s, error = %(error)s, completed_at = now(),
       downstream_status = %(downstream_status)s, result_artifact_id = %(result_artifact_id)s
 WHERE id = %(id)s
"""


def start_invocation(db: Database, task_id: str, job_id: str, trace_id: str, *, step: int,
                     action_name: str, inputs_hash: str) -> str:
    invocation_id = str(uuid.uuid4())
    db.execute(_START, {"id": invocation_id, "task_id": task_id, "job_id": job_id,
                        "trace_id": trace_id, "step": step, "action_name": action_name,
                        "inputs_hash": inputs_hash})
    return invocation_id


def finish_invocation(db: Database, invocation_id: str, *, error: str | None,
                      downstream_status: int | None, result_artifact_id: str | None) -> None:
    status = InvocationStatus.FAILED if error else InvocationStatus.OK
    db.execute(_FINISH, {"id": invocation_id, "status": str(status), "error": error,
                         "downstream_status": downstream_status,
                         "result_artifact_id": result_artifact_id})

"""Action invocation rows: one per step an attempt runs, with what went in (``inputs_hash``)
and what came out (status, downstream status, result artifact; for a command its exit code or
signal, resource use and the tail of its output).

A step that ends quickly is written once, with the attempt's end (``models.state_machine``:
``finish_attempt`` takes the attempt's ``Invocation`` records); a step still running after a
moment gets its ``running`` row at once (``write_running``), so the console shows it, and the
end of the attempt completes that row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from models.db import Database
from states import InvocationStatus


@dataclass
class Invocation:
    """One step of an attempt, as the runner records it."""

    task_id: str
    job_id: str
    trace_id: str
    step: int
    action_name: str
    inputs_hash: str
    started_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: InvocationStatus = InvocationStatus.RUNNING
    completed_at: datetime | None = None
    error: str | None = None
    downstream_status: int | None = None
    result_artifact_id: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    max_rss_bytes: int | None = None
    output_tail: str | None = None
    written: bool = False  # its running row is in the table already


_INSERT_RUNNING = """
INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash,
                                status, started_at)
VALUES (%(id)s, %(task_id)s, %(job_id)s, %(trace_id)s, %(step)s, %(action_name)s, %(inputs_hash)s,
        'running', %(started_at)s)
ON CONFLICT (id) DO NOTHING
"""


def write_running(db: Database, invocation: Invocation) -> None:
    """The row of a step that is still running (it is completed with the attempt's end)."""
    db.execute(_INSERT_RUNNING, {
        "id": invocation.id, "task_id": invocation.task_id, "job_id": invocation.job_id,
        "trace_id": invocation.trace_id, "step": invocation.step,
        "action_name": invocation.action_name, "inputs_hash": invocation.inputs_hash,
        "started_at": invocation.started_at})


_UPDATE_TAIL = """
UPDATE action_invocations SET output_tail = %(tail)s WHERE id = %(id)s AND status = 'running'
"""


def write_output_tail(db: Database, invocation_id: str, tail: str) -> None:
    """The last lines of a running command's output, for the console's live tail."""
    db.execute(_UPDATE_TAIL, {"id": invocation_id, "tail": tail})


# The attempt's steps, inserted or completed, as one part of a larger statement: ``{guard}`` is
# a CTE that has a row only when the attempt's end is being written. The steps travel as one
# JSON document (one parameter to adapt, not sixteen arrays).
UPSERT_CTE = """
invocations AS (
    INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash,
                                    status, started_at, completed_at, result_artifact_id,
                                    downstream_status, error, exit_code, signal, wall_s, cpu_s,
                                    max_rss_bytes, output_tail)
    SELECT (i.doc->>'id')::uuid, %(task_id)s, %(attempt_id)s, %(trace_id)s,
           (i.doc->>'step')::int, i.doc->>'action_name', i.doc->>'inputs_hash', i.doc->>'status',
           (i.doc->>'started_at')::timestamptz, (i.doc->>'completed_at')::timestamptz,
           (i.doc->>'result_artifact_id')::uuid, (i.doc->>'downstream_status')::int,
           i.doc->>'error', (i.doc->>'exit_code')::int, (i.doc->>'signal')::int,
           (i.doc->>'wall_s')::float8, (i.doc->>'cpu_s')::float8,
           (i.doc->>'max_rss_bytes')::bigint, i.doc->>'output_tail'
      FROM jsonb_array_elements(%(invocations)s) AS i(doc)
     WHERE EXISTS (SELECT FROM {guard})
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, completed_at = EXCLUDED.completed_at,
           result_artifact_id = EXCLUDED.result_artifact_id,
           downstream_status = EXCLUDED.downstream_status, error = EXCLUDED.error,
           exit_code = EXCLUDED.exit_code, signal = EXCLUDED.signal, wall_s = EXCLUDED.wall_s,
           cpu_s = EXCLUDED.cpu_s, max_rss_bytes = EXCLUDED.max_rss_bytes,
           output_tail = EXCLUDED.output_tail)"""


def upsert_params(invocations: list[Invocation]) -> dict[str, Any]:
    return {"invocations": Jsonb([{
        "id": i.id, "step": i.step, "action_name": i.action_name, "inputs_hash": i.inputs_hash,
        "status": str(i.status), "started_at": i.started_at.isoformat(),
        "completed_at": i.completed_at.isoformat() if i.completed_at else None,
        "result_artifact_id": i.result_artifact_id, "downstream_status": i.downstream_status,
        "error": i.error, "exit_code": i.exit_code, "signal": i.signal, "wall_s": i.wall_s,
        "cpu_s": i.cpu_s, "max_rss_bytes": i.max_rss_bytes, "output_tail": i.output_tail}
        for i in invocations])}

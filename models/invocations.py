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

from models.db import Database, float8s
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
# a CTE that has a row only when the attempt's end is being written.
UPSERT_CTE = """
invocations AS (
    INSERT INTO action_invocations (id, task_id, job_id, trace_id, step, action_name, inputs_hash,
                                    status, started_at, completed_at, result_artifact_id,
                                    downstream_status, error, exit_code, signal, wall_s, cpu_s,
                                    max_rss_bytes, output_tail)
    SELECT i.id, %(task_id)s, %(attempt_id)s, %(trace_id)s, i.step, i.action_name, i.inputs_hash,
           i.status, i.started_at, i.completed_at, i.result_artifact_id, i.downstream_status,
           i.error, i.exit_code, i.signal, i.wall_s, i.cpu_s, i.max_rss_bytes, i.output_tail
      FROM unnest(%(inv_id)b::uuid[], %(inv_step)b::int[], %(inv_action)b::text[],
                  %(inv_hash)b::text[], %(inv_status)b::text[], %(inv_started)b::timestamptz[],
                  %(inv_completed)b::timestamptz[], %(inv_result)b::uuid[],
                  %(inv_downstream)b::int[], %(inv_error)b::text[], %(inv_exit)b::int[],
                  %(inv_signal)b::int[], %(inv_wall)b::float8[], %(inv_cpu)b::float8[],
                  %(inv_rss)b::bigint[], %(inv_tail)b::text[])
           AS i(id, step, action_name, inputs_hash, status, started_at, completed_at,
                result_artifact_id, downstream_status, error, exit_code, signal, wall_s, cpu_s,
                max_rss_bytes, output_tail)
     WHERE EXISTS (SELECT FROM {guard})
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, completed_at = EXCLUDED.completed_at,
           result_artifact_id = EXCLUDED.result_artifact_id,
           downstream_status = EXCLUDED.downstream_status, error = EXCLUDED.error,
           exit_code = EXCLUDED.exit_code, signal = EXCLUDED.signal, wall_s = EXCLUDED.wall_s,
           cpu_s = EXCLUDED.cpu_s, max_rss_bytes = EXCLUDED.max_rss_bytes,
           output_tail = EXCLUDED.output_tail)"""


def upsert_params(invocations: list[Invocation]) -> dict[str, Any]:
    return {
        "inv_id": [i.id for i in invocations], "inv_step": [i.step for i in invocations],
        "inv_action": [i.action_name for i in invocations],
        "inv_hash": [i.inputs_hash for i in invocations],
        "inv_status": [str(i.status) for i in invocations],
        "inv_started": [i.started_at for i in invocations],
        "inv_completed": [i.completed_at for i in invocations],
        "inv_result": [i.result_artifact_id for i in invocations],
        "inv_downstream": [i.downstream_status for i in invocations],
        "inv_error": [i.error for i in invocations],
        "inv_exit": [i.exit_code for i in invocations],
        "inv_signal": [i.signal for i in invocations],
        "inv_wall": float8s(i.wall_s for i in invocations),
        "inv_cpu": float8s(i.cpu_s for i in invocations),
        "inv_rss": [i.max_rss_bytes for i in invocations],
        "inv_tail": [i.output_tail for i in invocations]}

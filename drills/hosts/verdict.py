"""What every scenario ends by checking, in SQL on JCT's database: each task ``done`` exactly
once (one ``done`` attempt, never two), no attempt left ``running``, and the ``done`` attempt's
log artifact ``stored`` in S3 (not left ``pending``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

Query = Callable[..., list[tuple[Any, ...]]]

_VERDICT = """
SELECT count(*),
       count(*) FILTER (WHERE t.status = 'done' AND d.n = 1),
       count(*) FILTER (WHERE d.n > 1),
       count(*) FILTER (WHERE r.n > 0),
       count(*) FILTER (WHERE t.status = 'done' AND NOT EXISTS (
           SELECT 1 FROM artifacts a JOIN jobs j ON j.id = a.job_id
            WHERE a.task_id = t.id AND j.status = 'done' AND a.kind = 'log'
              AND a.status = 'stored')),
       count(*) FILTER (WHERE t.status <> 'done')
  FROM tasks t
  CROSS JOIN LATERAL (SELECT count(*) AS n FROM jobs j
                       WHERE j.task_id = t.id AND j.status = 'done') d
  CROSS JOIN LATERAL (SELECT count(*) AS n FROM jobs j
                       WHERE j.task_id = t.id AND j.status = 'running') r
 WHERE t.id = ANY(%s::uuid[])
"""


@dataclass(frozen=True)
class Verdict:
    tasks: int
    done_once: int
    duplicates: int  # tasks with more than one done attempt
    running: int  # tasks with an attempt still running
    log_missing: int  # done tasks whose done attempt has no stored log artifact
    not_done: int

    def problems(self) -> list[str]:
        found = []
        if self.done_once != self.tasks:
            found.append(f"{self.tasks - self.done_once} of {self.tasks} tasks not done exactly "
                         f"once ({self.not_done} not done)")
        if self.duplicates:
            found.append(f"{self.duplicates} tasks with two or more done attempts")
        if self.running:
            found.append(f"{self.running} tasks with an attempt still running")
        if self.log_missing:
            found.append(f"{self.log_missing} done tasks without a stored log artifact")
        return found


def verdict(query: Query, task_ids: list[str]) -> Verdict:
    row = query(_VERDICT, task_ids)[0]
    return Verdict(*(int(value) for value in row))


def open_count(query: Query, task_ids: list[str]) -> int:
    """Tasks not ended yet (queued or running)."""
    return int(query("SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[])"
                     " AND status IN ('queued', 'running')", task_ids)[0][0])


def wait_ended(query: Query, task_ids: list[str], timeout: float,
               log: Callable[[str], None] = lambda _: None) -> float | None:
    """Wait until none of ``task_ids`` is queued or running; the epoch time it happened, or
    ``None`` at the deadline. A database that does not answer for a moment is waited out."""
    deadline, said = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        try:
            left = open_count(query, task_ids)
        except psycopg.OperationalError as exc:
            log(f"database not answering the drill: {str(exc).strip()[:120]}")
            time.sleep(1.0)
            continue
        if left == 0:
            return time.time()
        if time.monotonic() - said >= 5:
            log(f"{left} of {len(task_ids)} tasks not ended yet")
            said = time.monotonic()
        time.sleep(0.5)
    return None

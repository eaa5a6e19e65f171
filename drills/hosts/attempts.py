"""Reading attempts by host: ``jobs.worker`` is ``<hostname>:<pid>``, and each worker host runs
under its own hostname, so the part before the colon names the host that ran the attempt."""

from __future__ import annotations

from drills.hosts.verdict import Query


def attempts_by_host(query: Query, task_ids: list[str]) -> dict[str, int]:
    rows = query("SELECT split_part(worker, ':', 1), count(*) FROM jobs"
                 " WHERE task_id = ANY(%s::uuid[]) GROUP BY 1", task_ids)
    return {str(host): int(count) for host, count in rows}


def first_claims_after(query: Query, since: float) -> dict[str, float]:
    """Per host, when it first claimed an attempt (any task) at or after ``since`` (epoch)."""
    rows = query("SELECT split_part(worker, ':', 1), extract(epoch FROM min(started_at))"
                 " FROM jobs WHERE started_at >= to_timestamp(%s) GROUP BY 1", since)
    return {str(host): float(at) for host, at in rows}


def claims_between(query: Query, start: float, end: float) -> int:
    """Attempts claimed (by anyone) in ``[start, end)``, epoch seconds."""
    return int(query("SELECT count(*) FROM jobs WHERE started_at >= to_timestamp(%s)"
                     " AND started_at < to_timestamp(%s)", start, end)[0][0])


def end_to_end_rate(query: Query, task_ids: list[str]) -> tuple[float, float]:
    """(seconds from the first task accepted to the last one finished, tasks per second)."""
    row = query("SELECT extract(epoch FROM max(finished_at) - min(created_at))"
                " FROM tasks WHERE id = ANY(%s::uuid[])", task_ids)[0]
    seconds = float(row[0] or 0.0)
    return seconds, (len(task_ids) / seconds if seconds > 0 else 0.0)

"""Drill: a backlog older than the dispatch threshold, with a dispatcher in every worker."""

from __future__ import annotations

import time
from itertools import pairwise

from drills.stack import running_job
from harness.stack import Stack
from harness.wait import wait_until
from tests.faults.conftest import StartStack, enqueue, sleep_spec

STALE_S = 1.0
BACKLOG = 100
# Messages the two busy one-thread workers have taken ahead (Dramatiq prefetches 2 a thread):
# taken, not waiting, so the dispatcher's count may send that many spare wake-ups.
PREFETCHED = 4


def test_a_waiting_backlog_is_not_re_sent_and_lost_wake_ups_are_re_sent_once(
        drill_stack: StartStack) -> None:
    """Every worker busy, a backlog older than ``JCT_DISPATCH_STALE_S``: while its wake-ups wait
    in the broker, the dispatchers (one per worker process) send no more than the few spare
    wake-ups for messages the busy workers took ahead — a message that waits is not lost. When
    the waiting messages disappear (here: deleted from the PostgreSQL broker's queue, as a
    purge or a lost consumer would), the dispatchers together send each task a new wake-up,
    never two closer together than ``JCT_DISPATCH_STALE_S`` (the rows are marked as they are
    taken), and stop once those wait."""
    stack = drill_stack(JCT_WORKERS="2", JCT_WORKER_THREADS="1", JCT_DISPATCH_INTERVAL_S="0.2",
                        JCT_DISPATCH_STALE_S=str(STALE_S))
    for busy in (enqueue(stack, sleep_spec(20, name=f"busy-{i}"))[0] for i in range(2)):
        running_job(stack, busy)
    backlog = stack.post("/enqueue/batch", json={"tasks": [
        {"name": f"waiting-{i}", "steps": [{"action": "echo", "params": {"message": "w"}}]}
        for i in range(BACKLOG)]})
    assert backlog.status_code == 202, backlog.text
    ids = [task["task_id"] for task in backlog.json()["tasks"]]

    time.sleep(4 * STALE_S)  # several thresholds and many dispatcher passes
    assert _resent(stack, ids) <= PREFETCHED, "a backlog whose messages wait is not re-sent"

    stack.query("DELETE FROM dramatiq.queue WHERE state = 'queued' RETURNING 1")
    wait_until(lambda: len(_resent_tasks(stack, ids)) >= BACKLOG - PREFETCHED, timeout=30,
               interval=0.2, what="new wake-ups for the backlog")
    settled = _resent(stack, ids)
    time.sleep(4 * STALE_S)
    rows = stack.query("SELECT task_id::text, ts FROM task_events WHERE event = 'task_redispatched'"
                       " AND task_id = ANY(%s::uuid[]) ORDER BY task_id, ts", ids)
    too_close = [(task, round((later - earlier).total_seconds(), 3))
                 for (task, earlier), (same, later) in pairwise(rows)
                 if task == same and (later - earlier).total_seconds() < STALE_S]
    print(f"dispatcher drill: {len(rows)} re-sends of {BACKLOG} waiting tasks; "
          f"{len(too_close)} less than {STALE_S}s after the previous one")
    assert too_close == [], f"{len(too_close)} double re-sends, e.g. {too_close[:3]}"
    assert len(rows) - settled <= PREFETCHED, "once the new wake-ups wait, re-sending stops"


def _resent_tasks(stack: Stack, ids: list[str]) -> set[str]:
    return {str(row[0]) for row in stack.query(
        "SELECT DISTINCT task_id FROM task_events WHERE event = 'task_redispatched'"
        " AND task_id = ANY(%s::uuid[])", ids)}


def _resent(stack: Stack, ids: list[str]) -> int:
    return int(stack.query("SELECT count(*) FROM task_events WHERE event = 'task_redispatched'"
                           " AND task_id = ANY(%s::uuid[])", ids)[0][0])

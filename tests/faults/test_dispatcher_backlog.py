"""Drill: a backlog older than the dispatch threshold, with a dispatcher in every worker."""

from __future__ import annotations

from itertools import pairwise

from drills.stack import running_job
from harness.stack import Stack
from harness.wait import wait_until
from tests.faults.conftest import StartStack, enqueue, sleep_spec

STALE_S = 1.0
BACKLOG = 100


def test_one_stale_task_is_re_sent_once_per_threshold_however_many_workers_run_the_dispatcher(
        drill_stack: StartStack) -> None:
    """With a backlog older than ``JCT_DISPATCH_STALE_S`` (every worker busy), the dispatchers
    of all worker processes together re-send each waiting task at most once per threshold (the
    rows are marked as they are taken): no task gets two ``task_redispatched`` events closer
    together than ``JCT_DISPATCH_STALE_S``."""
    stack = drill_stack(JCT_WORKERS="2", JCT_WORKER_THREADS="1", JCT_DISPATCH_INTERVAL_S="0.2",
                        JCT_DISPATCH_STALE_S=str(STALE_S))
    for busy in (enqueue(stack, sleep_spec(10, name=f"busy-{i}"))[0] for i in range(2)):
        running_job(stack, busy)
    backlog = stack.post("/enqueue/batch", json={"tasks": [
        {"name": f"waiting-{i}", "steps": [{"action": "echo", "params": {"message": "w"}}]}
        for i in range(BACKLOG)]})
    assert backlog.status_code == 202, backlog.text
    ids = [task["task_id"] for task in backlog.json()["tasks"]]
    wait_until(lambda: _resent(stack, ids) >= 3 * BACKLOG, timeout=30, interval=0.5,
               what="three rounds of re-sends")

    rows = stack.query("SELECT task_id::text, ts FROM task_events WHERE event = 'task_redispatched'"
                       " AND task_id = ANY(%s::uuid[]) ORDER BY task_id, ts", ids)
    too_close = [(task, round((later - earlier).total_seconds(), 3))
                 for (task, earlier), (same, later) in pairwise(rows)
                 if task == same and (later - earlier).total_seconds() < STALE_S]
    print(f"dispatcher drill: {len(rows)} re-sends of {BACKLOG} waiting tasks;"
          f" {len(too_close)} less than {STALE_S}s after the previous one")
    assert too_close == [], f"{len(too_close)} double re-sends, e.g. {too_close[:3]}"


def _resent(stack: Stack, ids: list[str]) -> int:
    return int(stack.query("SELECT count(*) FROM task_events WHERE event = 'task_redispatched'"
                           " AND task_id = ANY(%s::uuid[])", ids)[0][0])

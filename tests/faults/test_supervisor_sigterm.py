"""Drill: SIGTERM to ``jct up`` itself (Ctrl-C / ``make run`` stopped) with attempts in flight."""

from __future__ import annotations

from drills.stack import running_job, start_drill_stack
from tests.faults.conftest import StartStack, jobs_of, sleep_spec

GRACE_S = 2.0
STEP_S = 12.0


def test_stopping_jct_up_drains_and_the_next_start_finishes_the_work(drill_stack: StartStack) -> None:
    """SIGTERM to the supervisor stops every child cleanly (exit 0) after the workers drained:
    attempts still running after ``JCT_SHUTDOWN_GRACE_S`` are given back, so after the stop no
    attempt is left ``running``. The next ``jct up`` on the same ``JCT_HOME`` (same database)
    runs the given-back tasks to ``done``; nothing was lost across the restart."""
    stack = drill_stack(JCT_SHUTDOWN_GRACE_S=str(GRACE_S))
    batch = stack.post("/enqueue/batch", json={"tasks": [
        sleep_spec(STEP_S, name=f"long-{i}") for i in range(3)]})
    assert batch.status_code == 202, batch.text
    task_ids = [task["task_id"] for task in batch.json()["tasks"]]
    for task_id in task_ids:
        running_job(stack, task_id)

    assert stack.stop() == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"

    again = start_drill_stack(stack.home, JCT_SHUTDOWN_GRACE_S=str(GRACE_S))
    try:
        # Every attempt of the first run ended before it stopped (the new run may already have
        # claimed the tasks again, so the tasks' own status proves nothing here).
        first_attempts = again.query("SELECT status, error FROM jobs WHERE attempt = 1"
                                     " AND task_id = ANY(%s::uuid[])", task_ids)
        assert first_attempts == [("lost", "worker_shutdown")] * 3, first_attempts
        for task_id in task_ids:
            task = again.wait_status(task_id, timeout=STEP_S + 60)
            assert task["status"] == "done", task
            assert jobs_of(task) == [("lost", "worker_shutdown"), ("done", None)], task["jobs"]
            assert "worker_shutdown" in [e["event"] for e in task["events"]]
    finally:
        assert again.stop() == 0

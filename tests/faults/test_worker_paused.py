"""Drill: pause a worker (SIGSTOP) past its lease, let the rescuer requeue, resume it."""

from __future__ import annotations

import time
from datetime import datetime

import psutil

from drills.stack import pid_of_worker, running_job
from harness.stack import Stack
from harness.wait import wait_until
from tests.faults.conftest import StartStack, enqueue, events_of, jobs_of, sleep_spec, wait_log_event

# The two places a late attempt is refused: its finish (finish_attempt's fenced UPDATE) or, if
# the heartbeat thread wakes first, its lease renewal; both log attempt_fenced.
FENCED_MESSAGES = ("finish refused", "lease lost while running")


def test_a_paused_worker_that_resumes_after_the_rescue_cannot_overwrite_the_task(
        drill_stack: StartStack) -> None:
    """A worker process frozen (SIGSTOP) past its 2 s lease loses the attempt to the rescuer,
    which marks it ``lost`` (``worker_lost``) and requeues the task; another worker completes
    it. When the frozen process resumes (SIGCONT) and its step ends, its late finish is refused
    by the fence (log event ``attempt_fenced``): the rescued attempt stays ``lost`` and the task
    keeps exactly one ``done`` attempt."""
    stack = drill_stack(JCT_LEASE_S="2", JCT_DISPATCH_INTERVAL_S="0.5")
    task_id, trace_id = enqueue(stack, sleep_spec(1.5, max_attempts=2, name="paused-mid-sleep"))
    job_id, worker = running_job(stack, task_id)
    paused = psutil.Process(pid_of_worker(worker))

    paused.suspend()
    frozen_at = time.time()
    try:
        task = stack.wait_status(task_id, timeout=60)
        assert task["status"] == "done", task
        assert jobs_of(task) == [("lost", "worker_lost"), ("done", None)]
        assert paused.status() == psutil.STATUS_STOPPED, "still frozen while the task completed"
    finally:
        paused.resume()
    # The figure docs/guarantees.md quotes (a lease plus a rescuer pass is the expectation).
    reclaimed = datetime.fromisoformat(task["jobs"][1]["created_at"]).timestamp() - frozen_at
    print(f"stall recovery: claimed again {reclaimed:.2f} s after SIGSTOP (lease 2 s, pass 0.5 s)")

    (fenced,) = wait_log_event(stack, "attempt_fenced", job_id=job_id)
    assert fenced["trace_id"] == trace_id and fenced["message"].startswith(FENCED_MESSAGES), fenced
    # The late worker is alive and wrote nothing over the rescue.
    assert paused.is_running() and paused.status() != psutil.STATUS_ZOMBIE
    rows = stack.query("SELECT status, error FROM jobs WHERE task_id = %s ORDER BY attempt", task_id)
    assert rows == [("lost", "worker_lost"), ("done", None)]
    final = stack.get(f"/tasks/{task_id}").json()
    assert final["status"] == "done" and final["attempts"] == 2
    assert events_of(final).count("task_done") == 1
    assert "attempt_fenced" in events_of(final), "the refusal is on the task's timeline too"
    # It resumed as a healthy worker: it takes new work again.
    wait_until(lambda: _run_one(stack) == paused.pid, timeout=30, interval=0,
               what=f"a task run by the resumed worker {paused.pid}")


def _run_one(stack: Stack) -> int:
    """Run a tiny task; the pid of the worker process that ran it."""
    task = stack.wait_status(enqueue(stack, sleep_spec(0))[0], timeout=30)
    assert task["status"] == "done", task
    return pid_of_worker(task["jobs"][-1]["worker"])

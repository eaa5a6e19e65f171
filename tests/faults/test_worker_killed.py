"""Drill: kill -9 the worker process in the middle of an attempt."""

from __future__ import annotations

import os
import signal

from drills.stack import pid_of_worker, running_job, worker_processes
from tests.faults.conftest import StartStack, enqueue, events_of, jobs_of, sleep_spec, wait_log_event


def test_a_task_whose_worker_is_killed_mid_attempt_completes_on_another_worker(
        drill_stack: StartStack) -> None:
    """A worker process killed with SIGKILL in the middle of a ``sleep`` step loses its attempt,
    not the task: the process is gone, so the worker started in its place (or a sibling's
    maintenance pass) marks that attempt ``lost`` with ``worker_died`` at once, without waiting
    out the lease, and requeues the task, which completes on another worker process. The task
    ends with exactly one ``done`` attempt and one ``lost`` one."""
    stack = drill_stack(JCT_LEASE_S="2", JCT_DISPATCH_INTERVAL_S="0.5")
    task_id, trace_id = enqueue(stack, sleep_spec(3, max_attempts=2, name="killed-mid-sleep"))
    job_id, worker = running_job(stack, task_id)
    victim = pid_of_worker(worker)
    assert victim in {p.pid for p in worker_processes(stack)}, "jobs.worker names a worker process"

    os.kill(victim, signal.SIGKILL)

    task = stack.wait_status(task_id, timeout=60)
    assert task["status"] == "done", task
    assert jobs_of(task) == [("lost", "worker_died"), ("done", None)]
    lost, done = task["jobs"]
    assert lost["id"] == job_id and lost["worker"] == worker
    assert pid_of_worker(done["worker"]) != victim, "the second attempt ran in another process"
    events = events_of(task)
    assert events.count("task_done") == 1
    assert events.index("attempt_lost") < events.index("retry_scheduled") < events.index("task_done")
    (rescue,) = [e for e in task["events"] if e["event"] == "attempt_lost"]
    assert rescue["attrs"] == {"job_id": job_id, "attempt": 1, "worker": worker,
                               "reason": "worker_died"}
    # The operator's view: the log says which worker died while running it, under the trace.
    (line,) = wait_log_event(stack, "attempt_lost", job_id=job_id)
    assert line["trace_id"] == trace_id and line["worker"] == worker

"""Drill: SIGTERM the dramatiq worker with attempts in flight (graceful shutdown)."""

from __future__ import annotations

import time

from drills.stack import pid_of_worker, running_job, worker_pool, worker_processes
from harness.wait import wait_until
from tests.faults.conftest import StartStack, events_of, jobs_of, sleep_spec

IN_FLIGHT = 3  # long attempts; with the short one, as many as one process's 4 threads
GRACE_S = 2.0
STEP_S = 8.0


def test_sigterm_gives_back_the_attempts_in_flight_and_they_finish_on_the_restarted_worker(
        drill_stack: StartStack) -> None:
    """SIGTERM to the dramatiq worker (its main process, as ``kill <pid>`` or an orchestrator
    would send it) stops intake and gives the attempts in flight ``JCT_SHUTDOWN_GRACE_S`` (2 s)
    to finish: one that ends within the grace is recorded ``done`` by the stopping worker;
    steps still running after it are interrupted and their tasks given back at once: the
    attempt is ``lost`` with ``worker_shutdown``, the task requeued with that event, and the
    restarted worker completes it. No attempt stays ``running``."""
    stack = drill_stack(JCT_SHUTDOWN_GRACE_S=str(GRACE_S), JCT_LEASE_S="5")
    # One batch, no more tasks than one process has threads: all run at once, whichever
    # worker process takes the messages.
    batch = stack.post("/enqueue/batch", json={"tasks": [
        *(sleep_spec(STEP_S, name=f"in-flight-{i}") for i in range(IN_FLIGHT)),
        sleep_spec(GRACE_S / 2, name="ends-within-the-grace")]})
    assert batch.status_code == 202, batch.text
    *tasks, short_id = [task["task_id"] for task in batch.json()["tasks"]]
    first_jobs = {task_id: running_job(stack, task_id)[0] for task_id in tasks}
    running_job(stack, short_id)
    main = worker_pool(stack)
    assert main is not None
    workers_before = {p.pid for p in worker_processes(stack)}

    signalled = time.monotonic()
    main.terminate()
    main.wait(60)
    stopped_after = time.monotonic() - signalled

    finished = [stack.wait_status(task_id, timeout=90) for task_id in tasks]
    for task in finished:
        assert task["status"] == "done", task
        assert jobs_of(task) == [("lost", "worker_shutdown"), ("done", None)], task["jobs"]
        lost, done = task["jobs"]
        assert lost["id"] == first_jobs[task["id"]]
        assert lost["duration_ms"] < STEP_S * 1000, "interrupted, not waited out"
        assert pid_of_worker(done["worker"]) not in workers_before, "done by the new worker"
        events = events_of(task)
        assert events.count("worker_shutdown") == 1 and events.count("task_done") == 1
        assert events.index("worker_shutdown") < events.index("task_done")
    assert stopped_after >= GRACE_S, "the attempts in flight had the whole grace period"
    short = stack.wait_status(short_id, timeout=30)
    assert (short["status"], jobs_of(short)) == ("done", [("done", None)])
    assert pid_of_worker(short["jobs"][0]["worker"]) in workers_before, \
        "finished by the stopping worker within the grace"
    assert stack.query("SELECT count(*) FROM jobs WHERE status = 'running'") == [(0,)]
    lines = [line for line in stack.log_lines() if line.get("event") == "worker_shutdown"]
    assert {line["task_id"] for line in lines} == set(tasks)
    wait_until(lambda: worker_processes(stack), timeout=30, what="the restarted worker processes")

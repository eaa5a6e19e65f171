"""The recovery paths move their counters, in the process that took them: a lease rescued
(``jct_attempts_rescued_total``, and the task's final status when it has no attempt left), a
blob S3 refused and uploaded later (``jct_s3_uploads_total``), an operator's cancel of a queued
task (``jct_tasks_finished_total``). Read from the runtime's own registry: no multiprocess
directory in a test process."""

from __future__ import annotations

from collections.abc import Callable

import tracing
from models import state_machine
from models.state_machine import NewTask
from runtime import Runtime
from services.artifacts import upload_pending
from services.attempt import run_task
from services.enqueue import enqueue
from services.operations import cancel
from services.rescue import rescue_lost_attempts
from services.spec import validate_spec

ECHO = {"steps": [{"action": "echo", "params": {"message": "x"}}]}


def _value(rt: Runtime, name: str, **labels: str) -> float:
    return rt.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_rescued_lease_and_the_task_it_fails_are_counted(rt: Runtime) -> None:
    spec = validate_spec({**ECHO, "max_attempts": 1})
    with rt.db.connection():
        (task_id,) = state_machine.create_tasks(rt.db, [NewTask(trace_id=tracing.new_trace_id(),
                                                                spec=spec)])
        assert state_machine.claim_task(rt.db, "dead-worker:1", 30, task_id) is not None
        rt.db.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 second' "
                      "WHERE task_id = %s", (task_id,))  # the worker stopped heartbeating
    assert rescue_lost_attempts(rt) == 1
    assert _value(rt, "jct_attempts_rescued_total", reason="worker_lost") == 1
    assert _value(rt, "jct_tasks_finished_total", status="failed") == 1


def test_a_blob_s3_refused_counts_as_spooled_then_as_stored_late(
        rt: Runtime, runtime_with: Callable[..., Runtime]) -> None:
    down = runtime_with(JCT_S3_ENDPOINT="http://127.0.0.1:1")
    trace_id = tracing.new_trace_id()
    result = enqueue(down, ECHO, trace_id)
    with tracing.bound(trace_id=trace_id, task_id=result.task_id):
        assert run_task(down, result.task_id) == "done"
    assert _value(down, "jct_s3_uploads_total", kind="log", outcome="spooled") == 1
    assert upload_pending(down) == 0
    assert _value(down, "jct_s3_uploads_total", kind="log", outcome="late_failed") == 1
    assert upload_pending(rt) == 1
    assert _value(rt, "jct_s3_uploads_total", kind="log", outcome="late_stored") == 1


def test_an_operators_cancel_of_a_queued_task_is_a_finished_task(rt: Runtime) -> None:
    result = enqueue(rt, ECHO, tracing.new_trace_id())
    assert cancel(rt, result.task_id, "ops") == "cancelled"
    assert _value(rt, "jct_tasks_finished_total", status="cancelled") == 1
    assert _value(rt, "jct_tasks_enqueued_total") == 1

"""Why a task is where it is: a stable code and one sentence an operator can act on.

Pure: it reads the task as ``models.views.get_task`` returns it, the time, and how many tasks
are ahead of a queued one (the caller asks the database; this module asks nothing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    seconds = max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds())
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _last(events: list[dict[str, Any]], *names: str) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e["event"] in names), None)


def diagnose(task: dict[str, Any], now: datetime, *, queued_ahead: int = 0) -> dict[str, str]:
    """``{"code", "message"}`` for a task as ``models.views.get_task`` returns it."""
    status, events = task["status"], task["events"]
    if status == "queued":
        return _queued(task, events, now, queued_ahead)
    if status == "running":
        job = task["jobs"][-1] if task["jobs"] else {}
        cancel = " Cancel requested; it stops at the next interruptible point." \
            if task["cancel_requested"] else ""
        return {"code": "running", "message": f"Attempt {job.get('attempt')} of "
                f"{task['max_attempts']} running on worker {job.get('worker')}, last heartbeat "
                f"{_ago(job.get('heartbeat_at'), now)}.{cancel}"}
    if status == "done":
        return {"code": "done", "message": f"Finished after {task['attempts']} attempt(s)."}
    if status == "cancelled":
        asked = next((e for e in reversed(events)
                      if e["event"] in ("task_cancelled", "cancel_requested") and e["attrs"].get("by")),
                     None)
        done = _last(events, "task_cancelled")
        who = asked["attrs"]["by"] if asked else "an operator"
        return {"code": "cancelled", "message": f"Cancelled by {who} at "
                f"{(asked or done or {}).get('ts')}; stopped at {(done or {}).get('ts')}."}
    return {"code": "failed", "message": f"Failed after {task['attempts']} attempt(s): "
            f"{task['error'] or 'no error recorded'}."}


def _queued(task: dict[str, Any], events: list[dict[str, Any]], now: datetime,
            ahead: int) -> dict[str, str]:
    run_after = datetime.fromisoformat(task["run_after"])
    if run_after > now:
        return {"code": "retry_scheduled", "message": f"Attempt {task['attempts']} failed "
                f"({task['error'] or 'see events'}); next attempt at {task['run_after']}."}
    last_dispatch = _last(events, "dispatch_failed", "task_dispatched", "task_redispatched")
    if task["dispatched_at"] is None and last_dispatch and last_dispatch["event"] == "dispatch_failed":
        return {"code": "not_dispatched", "message": "The broker refused the wake-up message "
                f"({last_dispatch['attrs'].get('error', 'no reason')}); the dispatcher re-sends it."}
    waited = (now - datetime.fromisoformat(task["created_at"])).total_seconds()
    return {"code": "waiting_for_worker", "message": f"Queued for {waited:.0f}s with {ahead} "
            "task(s) ahead; waiting for a free worker."}

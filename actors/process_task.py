"""The one actor: wake up for a task id and run one attempt of it."""

from __future__ import annotations

import dramatiq

from broker import PROCESS_TASK
from config import get_settings
from services.attempt import run_task

# Action failures are handled in the database (attempts, backoff); Dramatiq's own retries only
# cover infrastructure errors raised before the claim (e.g. the database is unreachable).
ONE_DAY_AND_AN_HOUR_MS = 25 * 3600 * 1000


@dramatiq.actor(actor_name=PROCESS_TASK, queue_name=get_settings().queue, max_retries=20, min_backoff=1000,
                max_backoff=60_000, time_limit=ONE_DAY_AND_AN_HOUR_MS)
def process_task(task_id: str) -> None:
    run_task(task_id)

"""The one actor: wake up for a task id and run one attempt of it."""

from __future__ import annotations

import logging

import dramatiq

from broker import PROCESS_TASK
from errors import Unavailable
from logging_setup import log_event
from runtime import Runtime
from services.attempt import run_task

# Action failures are handled in the database (attempts, backoff); Dramatiq's own retries only
# cover infrastructure errors raised before the claim (e.g. the database is unreachable).
ONE_DAY_AND_AN_HOUR_MS = 25 * 3600 * 1000

logger = logging.getLogger(__name__)


def declare_process_task(rt: Runtime) -> dramatiq.Actor[[str], None]:
    """Declare ``process_task`` on the runtime's broker, for its queue."""

    def process_task(task_id: str) -> None:
        try:
            run_task(rt, task_id)
        except Unavailable as exc:
            # Dramatiq retries the message with backoff; say why in JCT's words first.
            log_event(logger, "claim_failed", f"task {task_id} not claimed: {exc} "
                      f"({exc.detail}); the message is retried", level=logging.WARNING)
            raise

    declare = dramatiq.actor(broker=rt.broker.dramatiq, actor_name=PROCESS_TASK,
                             queue_name=rt.settings.queue, max_retries=20, min_backoff=1000,
                             max_backoff=60_000, time_limit=ONE_DAY_AND_AN_HOUR_MS)
    return declare(process_task)

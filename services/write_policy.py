"""The two ways a service writes when the database may be going away.

- ``best_effort``: bookkeeping after the task is committed (which messages were sent). It must
  not turn an accepted task into an error answer — a client retrying a 503 would create it
  twice — and it need not: the dispatcher sees the task unmarked or stale and sends it again,
  and the claim makes a second delivery harmless. A failure is logged and swallowed.
- ``within_lease``: an attempt's own rows (invocations, artifacts, its finish). They ride out
  an outage, retrying with backoff for as long as the attempt's lease lasts; past that the
  rescuer owns the task anyway, and the error stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from errors import Unavailable
from logging_setup import log_event

logger = logging.getLogger(__name__)
T = TypeVar("T")


def best_effort(what: str, write: Callable[[], T], *, event: str, consequence: str) -> T | None:
    """Run ``write``; if the database is unreachable, log ``event`` and go on."""
    try:
        return write()
    except Unavailable as exc:
        log_event(logger, event, f"{what} not written ({exc.detail}); {consequence}",
                  level=logging.WARNING)
        return None


def within_lease(what: str, write: Callable[[], T], *, lease_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``write`` (one transaction), retrying through a database outage for up to
    ``lease_s`` seconds with backoff (0.2 s, doubling, at most 5 s); then the error stands."""
    deadline = time.monotonic() + lease_s
    delay = 0.2
    while True:
        try:
            return write()
        except Unavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log_event(logger, "db_write_retry", f"{what}: database unreachable, retrying in "
                      f"{delay:.1f}s ({str(exc.detail)[:120]})", level=logging.WARNING)
            sleep(delay)
            delay = min(delay * 2, 5.0)

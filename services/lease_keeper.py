"""The lease keeper: one thread per worker process that keeps all of its running attempts held.

Every third of the lease it renews all their leases in one statement; an attempt the
statement does not return is no longer ours (the rescuer took it): its ``lost`` is set. Every
second it asks, in one statement, which of their tasks an operator asked to cancel. Between
those it calls each attempt's ``tick`` (the runner writes the row of a step that is taking a
while). A thread per process instead of one per attempt: attempts that end in milliseconds
cost no thread and no query for being held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logging_setup import log_event
from models import leases
from runtime import Runtime

logger = logging.getLogger(__name__)

TICK_S = 0.25
CANCEL_EVERY_S = 1.0


@dataclass
class Held:
    """One attempt the keeper holds."""

    attempt_id: str
    task_id: str
    tick: Callable[[], None] = lambda: None
    lost: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)


class LeaseKeeper:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._held: dict[str, Held] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, attempt_id: str, task_id: str) -> Held:
        held = Held(attempt_id, task_id)
        with self._guard:
            self._held[attempt_id] = held
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jct-lease-keeper",
                                                daemon=True)
                self._thread.start()
        return held

    def release(self, held: Held) -> None:
        with self._guard:
            self._held.pop(held.attempt_id, None)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        lease_s = self.rt.settings.lease_s
        renew_at = time.monotonic() + lease_s / 3
        cancels_at = time.monotonic() + CANCEL_EVERY_S
        while not self._stop.wait(min(TICK_S, lease_s / 3)):
            with self._guard:
                held = list(self._held.values())
            if not held:
                continue
            for one in held:
                self._safely("tick", one.tick)
            now = time.monotonic()
            if now >= renew_at:
                renew_at = now + lease_s / 3
                self._safely("lease renewal", self._renew, held, lease_s)
            if now >= cancels_at:
                cancels_at = now + CANCEL_EVERY_S
                self._safely("cancel check", self._cancels, held)

    def _renew(self, held: list[Held], lease_s: float) -> None:
        with self.rt.db.connection():
            kept = leases.renew_leases(self.rt.db, [h.attempt_id for h in held], lease_s)
        for one in held:
            if one.attempt_id not in kept:
                one.lost.set()

    def _cancels(self, held: list[Held]) -> None:
        with self.rt.db.connection():
            asked = leases.cancel_requested_of(self.rt.db, [h.task_id for h in held])
        for one in held:
            if one.task_id in asked:
                one.cancelled.set()

    def _safely(self, what: str, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # the rescuer decides; a missed beat is only logged
            log_event(logger, "heartbeat_failed", f"{what} failed: {exc}", level=logging.WARNING)

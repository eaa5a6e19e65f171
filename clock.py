"""Time, as the runtime hands it out: wall-clock ``now()`` (UTC) for what operators read and the
monotonic clock for durations and deadlines. Tests give a runtime a fixed clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock(Clock):
    """A clock that stands still at ``at`` (for tests of what depends on the time)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

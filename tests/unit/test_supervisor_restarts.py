"""The supervisor's restart rules, decided without starting any child."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actors.pool import EXIT_CRASH_LOOP
from config import load_settings
from supervisor import Supervisor


class Recording(Supervisor):
    """Records what it would start instead of starting it."""

    spawned: list[str]

    def spawn(self, name: str) -> None:
        self.spawned.append(name)


@pytest.fixture
def supervisor(tmp_path: Path) -> Recording:
    sup = Recording(load_settings({"JCT_HOME": str(tmp_path)}))
    sup.spawned = []
    return sup


def test_a_worker_pool_that_reports_a_crash_loop_stops_jct_up_however_long_it_lived(
        supervisor: Recording) -> None:
    """The pool backs off before it gives up, so it has lived more than the supervisor's
    'stable' time when it exits with its crash-loop code; that verdict is final."""
    supervisor.started_at["worker"] = time.monotonic() - 60
    assert supervisor._restart("worker", EXIT_CRASH_LOOP) is False
    assert supervisor.spawned == []


def test_a_killed_worker_pool_is_restarted_at_once(supervisor: Recording) -> None:
    supervisor.started_at["worker"] = time.monotonic() - 1
    assert supervisor._restart("worker", -9) is True
    assert supervisor.spawned == ["worker"]

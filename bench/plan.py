"""How much each measurement does: the full run (``make bench``) and the smoke form
(``make bench-quick``). Every window is bounded in time, and enqueue windows also in count, so a
faster system does not make the run longer."""

from __future__ import annotations

from dataclasses import dataclass, replace

# Each enqueue window stops at this percentage of ``burn_tasks`` (if its time is not up first):
# together they never queue more than the burn-down backlog, which a fill then completes.
CAPS = {"enqueue_1": 20, "enqueue_16": 30, "enqueue_batch": 40, "extra": 10}


@dataclass(frozen=True)
class Plan:
    enqueue_seconds: float   # each enqueue window (1 client, 16 clients, batch)
    burn_tasks: int          # pre-enqueued tasks burnt down end to end
    idle_samples: int        # tasks sent one by one for the idle enqueue→start latency
    idle_rate: float         # tasks/s while sampling idle latency
    load_seconds: float      # open-loop load at half the end-to-end maximum (JCT)
    memory_tasks: int        # tasks between the two worker RSS readings (JCT, PostgreSQL broker)
    ceiling_seconds: float   # pgbench -T
    settle_s: float          # PostgreSQL flushes an idle backend's counters after 10 s; 0 = skip
    clients: int = 16        # concurrent clients of the "16 clients" window
    batch_size: int = 100    # tasks per batch request
    wait_s: float = 1200.0   # bound on any wait for tasks to finish

    def cap(self, window: str) -> int:
        """How many tasks the enqueue window ``window`` may queue at most (see ``CAPS``)."""
        return self.burn_tasks * CAPS[window] // 100

    def with_overrides(self, *, tasks: int | None = None, seconds: float | None = None) -> Plan:
        plan = self
        if tasks is not None:
            plan = replace(plan, burn_tasks=tasks)
        if seconds is not None:
            plan = replace(plan, enqueue_seconds=seconds)
        return plan


FULL = Plan(enqueue_seconds=10, burn_tasks=10_000, idle_samples=100, idle_rate=5, load_seconds=30,
            memory_tasks=20_000, ceiling_seconds=20, settle_s=11)

QUICK = Plan(enqueue_seconds=2, burn_tasks=500, idle_samples=15, idle_rate=10, load_seconds=4,
             memory_tasks=1_000, ceiling_seconds=3, settle_s=0)

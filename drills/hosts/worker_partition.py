"""Scenario "worker host partitioned": tasks whose ``sleep`` step outlasts the lease are running
on every worker host when one host (worker-3) drops off the network, for three leases and at
least until each of its attempts has been claimed again elsewhere. The other hosts' rescuers
mark its attempts ``lost`` when their leases run out and the tasks run again there. When its
link comes back, the stale holder's late finish (or its next lease renewal) is refused by the
fence: JSON log event ``attempt_fenced`` on that host today; a task event once the core records
one (any ``task_events.event`` containing "fence" is accepted and reported). Never a second
``done``.

Time to recover: from the partition to the next claim of each task it held (max over them).
"""

from __future__ import annotations

import time

from drills.hosts.cluster import WORKER_HOSTS, Cluster
from drills.hosts.load import enqueue_batches, sleep_spec
from drills.hosts.report import ScenarioResult
from drills.hosts.resume import wait_every_host_claims
from drills.hosts.verdict import verdict, wait_ended
from harness.wait import wait_until

NAME = "worker host partitioned"
VICTIM = WORKER_HOSTS[-1]
LEASES_HELD = 3  # the partition lasts at least this many leases
FENCE_WAIT_S = 120.0  # after the heal, for the stale holder to come back and be refused


def run(cluster: Cluster, tasks: int, lease_s: float) -> ScenarioResult:
    result = ScenarioResult(NAME)
    ids = enqueue_batches(cluster.api_url, [sleep_spec("partition", i, 2 * lease_s)
                                            for i in range(tasks)])
    wait_until(lambda: _running_on(cluster, ids, VICTIM), timeout=60, interval=0.1,
               what=f"attempts running on {VICTIM}")
    victim = cluster.topology[VICTIM]
    cut_at = time.time()
    victim.partition()
    try:
        held = _running_on(cluster, ids, VICTIM)
        cluster.log(f"[{NAME}] {VICTIM} partitioned holding {len(held)} attempt(s)")
        if not held:
            result.problems.append(f"{VICTIM} held no attempt when it was partitioned")
        wait_until(lambda: _reclaimed(cluster, held) is not None, timeout=LEASES_HELD * lease_s + 90,
                   interval=0.2, what=f"the tasks {VICTIM} held claimed again elsewhere")
        time.sleep(max(0.0, cut_at + LEASES_HELD * lease_s - time.time()))
    finally:
        victim.heal()
    healed_at = time.time()
    cluster.log(f"[{NAME}] {VICTIM} healed after {healed_at - cut_at:.1f} s")
    reclaims = _reclaimed(cluster, held) or {}
    result.recovered(max((at - cut_at for at, _ in reclaims.values()), default=None))
    elsewhere = {host for _, host in reclaims.values()}
    if VICTIM in elsewhere:
        result.problems.append(f"a task {VICTIM} held was claimed again by {VICTIM} itself")
    ended = wait_ended(cluster.query, ids, timeout=120, log=cluster.log)
    if ended is None:
        result.problems.append("not every task ended within 120 s of the heal")
    fenced = _wait_fence_evidence(cluster, held, since=cut_at)
    result.add_verdict(verdict(cluster.query, ids))
    statuses = _statuses(cluster, list(held))
    if any(status != "lost" for status in statuses.values()):
        result.problems.append(f"the partitioned host's attempts ended {statuses}, not all lost")
    missing = sorted(set(held) - set(fenced))
    if missing:
        result.problems.append(f"{len(missing)} of {len(held)} stale attempts left no fencing "
                               f"evidence (log attempt_fenced or a task event) within "
                               f"{FENCE_WAIT_S:.0f} s of the heal")
    resumed, fed = wait_every_host_claims(cluster, healed_at, tag="rejoin", wait_s=60)
    result.add_verdict(verdict(cluster.query, fed))
    rejoined = resumed.get(VICTIM)
    sources = sorted({source for found in fenced.values() for source in found})
    result.facts.update(held=len(held), fenced=len(fenced), fence_sources=sources,
                        reclaimed_on=sorted(elsewhere), rejoined_s=rejoined,
                        partition_s=round(healed_at - cut_at, 1))
    result.notes.append(
        f"{VICTIM} partitioned {healed_at - cut_at:.1f} s (lease {lease_s:g} s) holding "
        f"{len(held)} attempts; all claimed again on {sorted(elsewhere)}; stale attempts "
        f"{sorted(set(statuses.values()))}; fencing seen for {len(fenced)}/{len(held)} as "
        f"{sources}; {VICTIM} ran a new task "
        + (f"{rejoined:.1f} s after the heal" if rejoined is not None else "never after the heal"))
    if rejoined is None:
        result.problems.append(f"{VICTIM} ran no new task after the heal")
    return result


def _running_on(cluster: Cluster, ids: list[str], host: str) -> dict[str, tuple[str, int]]:
    """``{job_id: (task_id, attempt)}`` of the attempts running on ``host``."""
    rows = cluster.query("SELECT id::text, task_id::text, attempt FROM jobs"
                         " WHERE task_id = ANY(%s::uuid[]) AND status = 'running'"
                         " AND split_part(worker, ':', 1) = %s", ids, host)
    return {job: (task, int(attempt)) for job, task, attempt in rows}


def _reclaimed(cluster: Cluster, held: dict[str, tuple[str, int]]
               ) -> dict[str, tuple[float, str]] | None:
    """``{task_id: (claimed at, host)}`` of the next attempt of every held task, or ``None``
    while one is not claimed again yet."""
    found: dict[str, tuple[float, str]] = {}
    for task_id, attempt in held.values():
        rows = cluster.query("SELECT extract(epoch FROM started_at), split_part(worker, ':', 1)"
                             " FROM jobs WHERE task_id = %s AND attempt > %s"
                             " ORDER BY attempt LIMIT 1", task_id, attempt)
        if not rows:
            return None
        found[task_id] = (float(rows[0][0]), str(rows[0][1]))
    return found


def _statuses(cluster: Cluster, job_ids: list[str]) -> dict[str, str]:
    rows = cluster.query("SELECT id::text, status FROM jobs WHERE id = ANY(%s::uuid[])", job_ids)
    return {job: str(status) for job, status in rows}


def _fence_evidence(cluster: Cluster, held: dict[str, tuple[str, int]],
                    since: float) -> dict[str, set[str]]:
    """``{job_id: {"log attempt_fenced", "task event <name>"}}`` for the stale attempts."""
    found: dict[str, set[str]] = {}
    for line in cluster.workers[VICTIM].log_lines(since):
        if line.get("event") == "attempt_fenced" and line.get("job_id") in held:
            found.setdefault(line["job_id"], set()).add("log attempt_fenced")
    rows = cluster.query("SELECT attrs->>'job_id', event FROM task_events"
                         " WHERE task_id = ANY(%s::uuid[]) AND event ILIKE '%%fenc%%'",
                         [task for task, _ in held.values()])
    for job_id, event in rows:
        if job_id in held:
            found.setdefault(job_id, set()).add(f"task event {event}")
    return found


def _wait_fence_evidence(cluster: Cluster, held: dict[str, tuple[str, int]],
                         since: float) -> dict[str, set[str]]:
    deadline = time.monotonic() + FENCE_WAIT_S
    while True:
        found = _fence_evidence(cluster, held, since)
        if len(found) == len(held) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)

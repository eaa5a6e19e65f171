"""Scenario "database host cut off": a steady stream of tasks through the API while the db
host's links to all three worker hosts are cut for ``cut_s`` (the API, the drill, RabbitMQ and
S3 still reach it). Expected: no attempt is claimed while the cut lasts, every worker host says
in its log why it is stuck (a warning naming the database, logged during the cut), no task is
done twice, and each host claims work again by itself after the cut (the same dramatiq
processes: no host has a supervisor to restart them).

Time to recover: from the end of the cut to the last worker host's first claim after it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from drills.hosts.attempts import claims_between
from drills.hosts.cluster import WORKER_HOSTS, Cluster, JctProcess, parse_ts
from drills.hosts.load import Enqueuer
from drills.hosts.report import ScenarioResult
from drills.hosts.resume import wait_every_host_claims
from drills.hosts.verdict import verdict, wait_ended
from harness.wait import wait_until

NAME = "database host cut off"
LOUD = ("warning", "error", "critical")
ABOUT_THE_DATABASE = re.compile(r"database|postgres|psycopg|connection|timeout expired|"
                                r"could not connect|server closed", re.IGNORECASE)
SETTLE_S = 1.0  # a claim in flight when the cut starts may still commit
SPEAK_UP_GRACE_S = 2.0  # a line written as the cut ends still counts as said during it
RESUME_WAIT_S = 120.0


def run(cluster: Cluster, tasks: int, cut_s: float) -> ScenarioResult:
    result = ScenarioResult(NAME)
    pids = {name: cluster.workers[name].pids() for name in WORKER_HOSTS}
    # The stream runs through the cut and about as long again after it.
    enqueuer = Enqueuer(cluster.api_url, "dbcut", tasks, interval_s=(2.5 * cut_s) / tasks)
    enqueuer.start()
    try:
        wait_until(lambda: len(enqueuer.accepted()) >= tasks // 4, timeout=120, interval=0.2,
                   what="a quarter of the tasks accepted")
        cut_at, healed_at = _cut(cluster, cut_s)
    finally:
        enqueuer.join(300)
    during = claims_between(cluster.query, cut_at + SETTLE_S, healed_at)
    if during:
        result.problems.append(f"{during} attempts claimed while the database was cut off")
    resumed, fed = wait_every_host_claims(cluster, healed_at, tag="dbcut-more",
                                          wait_s=RESUME_WAIT_S)
    result.recovered(max(resumed.values(), default=None))
    result.problems.extend(f"{name} claimed nothing within {RESUME_WAIT_S:.0f} s of the cut's end"
                           for name in WORKER_HOSTS if name not in resumed)
    refused = [a for a in enqueuer.answers if a.status != 202]
    if refused:
        result.problems.append(f"{len(refused)} enqueues not accepted: "
                               f"{Counter(a.status for a in refused)}")
    ids = enqueuer.accepted() + fed
    if wait_ended(cluster.query, ids, timeout=180, log=cluster.log) is None:
        result.problems.append("not every task ended within 180 s of the cut's end")
    result.add_verdict(verdict(cluster.query, ids))
    reasons = {name: _reasons(cluster.workers[name], cut_at, healed_at) for name in WORKER_HOSTS}
    result.problems.extend(
        f"{name} logged no warning naming the database during the cut (warnings: "
        f"{dict(found['events']) or 'none'})" for name, found in reasons.items() if not found["why"])
    result.problems.extend(
        f"{name}'s dramatiq processes changed: {sorted(before)} -> "
        f"{sorted(cluster.workers[name].pids())}" for name, before in pids.items()
        if not cluster.workers[name].alive() or cluster.workers[name].pids() != before)
    result.facts.update(claims_during_cut=during, resumed_s=resumed,
                        reasons={n: {"events": dict(r["events"]), "why": r["why"][:3]}
                                 for n, r in reasons.items()})
    result.notes.append(
        f"cut {healed_at - cut_at:.1f} s; {during} claims during it; first claim after it: "
        + ", ".join(f"{n} +{s:.1f} s" for n, s in sorted(resumed.items()))
        + "; warnings during it: " + "; ".join(f"{n} {dict(r['events']) or 'none'}"
                                                for n, r in reasons.items()))
    result.notes.extend(f"{name} said: {line}" for name, found in reasons.items()
                        for line in found["why"][:2])
    return result


def _cut(cluster: Cluster, cut_s: float) -> tuple[float, float]:
    """Cut db from every worker host for ``cut_s``; (cut at, healed at), epoch seconds: from
    before the first link is cut to before the first is mended (a host mended first may claim
    while the others are being mended; that is after the cut, for it)."""
    db = cluster.topology["db"]
    workers = [cluster.topology[name] for name in WORKER_HOSTS]
    cut_at = time.time()
    try:
        for worker in workers:
            cluster.topology.cut(db, worker)
        cluster.log(f"[{NAME}] db cut off from {', '.join(WORKER_HOSTS)} for {cut_s:g} s")
        time.sleep(cut_s)
    finally:
        healed_at = time.time()
        for worker in workers:
            cluster.topology.mend(db, worker)
    cluster.log(f"[{NAME}] db reachable again after {healed_at - cut_at:.1f} s")
    return cut_at, healed_at


def _reasons(worker: JctProcess, cut_at: float, healed_at: float) -> dict[str, Any]:
    """The warnings a host logged during the cut: counts by event, and the lines that name
    the database (or its connection) as the reason."""
    lines = [line for line in worker.log_lines(cut_at) if line.get("level") in LOUD
             and parse_ts(line["ts"]) <= healed_at + SPEAK_UP_GRACE_S]
    why = [f"{line.get('event')}: {str(line.get('message'))[:160]}" for line in lines
           if ABOUT_THE_DATABASE.search(f"{line.get('event')} {line.get('message')}")]
    return {"events": Counter(str(line.get("event")) for line in lines), "why": why}

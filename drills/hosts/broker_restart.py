"""Scenario "RabbitMQ restarted": a steady stream of tasks through the API while RabbitMQ is
stopped (``rabbitmqctl stop``) and started again on its host. Expected: the API keeps
answering 202 (the row is the truth; a message the broker did not confirm is recorded
``dispatch_failed``) and the dispatcher sends those again (``task_redispatched``); the API's
publisher and every host's consumers reconnect by themselves (same processes); every task is
done once.

Time to recover: from RabbitMQ accepting connections again to the later of the API's first
confirmed send and the last worker host's first claim.
"""

from __future__ import annotations

import time
from collections import Counter

from drills.hosts.cluster import WORKER_HOSTS, Cluster
from drills.hosts.load import Enqueuer
from drills.hosts.report import ScenarioResult
from drills.hosts.resume import wait_every_host_claims
from drills.hosts.verdict import verdict, wait_ended
from harness.wait import wait_until

NAME = "RabbitMQ restarted"
DOWN_S = 5.0
RESUME_WAIT_S = 120.0


def run(cluster: Cluster, tasks: int) -> ScenarioResult:
    result = ScenarioResult(NAME)
    watched = [*(cluster.workers[name] for name in WORKER_HOSTS), cluster.api]
    pids = {process.host.name: process.pids() for process in watched if process}
    enqueuer = Enqueuer(cluster.api_url, "rabbit", tasks, interval_s=40.0 / tasks)
    enqueuer.start()
    try:
        wait_until(lambda: len(enqueuer.accepted()) >= tasks // 3, timeout=120, interval=0.2,
                   what="a third of the tasks accepted")
        stopped_at = time.time()
        cluster.rabbitmq.stop()
        cluster.log(f"[{NAME}] RabbitMQ stopped in {time.time() - stopped_at:.1f} s")
        time.sleep(DOWN_S)
        cluster.rabbitmq.start()
        up_at = time.time()
        cluster.log(f"[{NAME}] RabbitMQ back after {up_at - stopped_at:.1f} s")
    finally:
        enqueuer.join(300)
    resumed, fed = wait_every_host_claims(cluster, up_at, tag="rabbit-more", wait_s=RESUME_WAIT_S)
    ids = enqueuer.accepted() + fed
    refused = [a for a in enqueuer.answers if a.status != 202]
    if refused:
        result.problems.append(f"{len(refused)} enqueues not accepted: "
                               f"{Counter(a.status for a in refused)}")
    ended = wait_ended(cluster.query, ids, timeout=180, log=cluster.log)
    if ended is None:
        result.problems.append("not every task ended within 180 s of the restart")
    result.add_verdict(verdict(cluster.query, ids))
    failed = _with_event(cluster, ids, "dispatch_failed")
    resent = cluster.query("SELECT count(DISTINCT f.task_id) FROM task_events f"
                           " JOIN task_events r ON r.task_id = f.task_id"
                           " AND r.event = 'task_redispatched' AND r.ts > f.ts"
                           " WHERE f.event = 'dispatch_failed' AND f.task_id = ANY(%s::uuid[])",
                           ids)[0][0]
    if failed and resent < failed:
        result.problems.append(f"{failed - int(resent)} of {failed} tasks whose send failed were "
                               "never sent again (task_redispatched)")
    api_sent = cluster.query("SELECT extract(epoch FROM min(ts)) FROM task_events"
                             " WHERE event = 'task_dispatched' AND ts >= to_timestamp(%s)"
                             " AND task_id = ANY(%s::uuid[])", up_at, ids)[0][0]
    if api_sent is None:
        result.problems.append("the API sent no message after the restart (publisher did not "
                               "reconnect)")
    for name in WORKER_HOSTS:
        if name not in resumed:
            result.problems.append(f"{name} claimed nothing within {RESUME_WAIT_S:.0f} s of "
                                   "the restart (consumers did not reconnect)")
    for process in watched:
        if process and (not process.alive() or process.pids() != pids[process.host.name]):
            result.problems.append(f"{process.host.name}'s processes changed or exited")
    recover = [*resumed.values(), *([float(api_sent) - up_at] if api_sent is not None else [])]
    result.recovered(max(recover, default=None))
    result.facts.update(dispatch_failed=failed, redispatched=int(resent), resumed_s=resumed,
                        api_first_send_s=None if api_sent is None else float(api_sent) - up_at,
                        down_s=round(up_at - stopped_at, 1))
    result.notes.append(
        f"RabbitMQ down {up_at - stopped_at:.1f} s; {failed} tasks with dispatch_failed, "
        f"{resent} of them re-sent by the dispatcher; API's first confirmed send "
        + (f"+{float(api_sent) - up_at:.1f} s" if api_sent is not None else "never")
        + "; first claim per host: "
        + ", ".join(f"{n} +{s:.1f} s" for n, s in sorted(resumed.items())))
    return result


def _with_event(cluster: Cluster, ids: list[str], event: str) -> int:
    return int(cluster.query("SELECT count(DISTINCT task_id) FROM task_events WHERE event = %s"
                             " AND task_id = ANY(%s::uuid[])", event, ids)[0][0])

"""Scenario "spread": the same N tasks with 1, then 2, then 3 worker hosts. Reports each
host's share of the attempts and the CPU its processes used, and the end-to-end rate (first
task accepted to last task finished). On a 2-core machine the rate is capped by the CPUs; the
shares show the work spreads. Worker hosts are started here, one per round, and stay up for
the scenarios after this one. No fault, so there is no time to recover."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from drills.hosts.attempts import attempts_by_host, end_to_end_rate
from drills.hosts.cluster import WORKER_HOSTS, Cluster
from drills.hosts.load import echo_spec, enqueue_batches
from drills.hosts.report import ScenarioResult
from drills.hosts.verdict import verdict, wait_ended

NAME = "spread"
# With three hosts each one must have run at least this share of the attempts.
MIN_SHARE_OF_THREE = 0.05


def run(cluster: Cluster, tasks: int) -> ScenarioResult:
    result = ScenarioResult(NAME)
    rounds = []
    for count in range(1, len(WORKER_HOSTS) + 1):
        name = WORKER_HOSTS[count - 1]
        cluster.log(f"[{NAME}] starting jct worker on {name}")
        cluster.start_worker(name)
        rounds.append(_round(cluster, result, count, tasks))
    result.facts["rounds"] = [asdict(r) for r in rounds]
    last = rounds[-1].shares
    for host in WORKER_HOSTS:
        if last.get(host, 0.0) < MIN_SHARE_OF_THREE:
            result.problems.append(f"with 3 worker hosts {host} ran {last.get(host, 0.0):.0%} "
                                   f"of the attempts (less than {MIN_SHARE_OF_THREE:.0%})")
    return result


@dataclass(frozen=True)
class Round:
    hosts: int
    tasks: int
    elapsed_s: float
    rate: float  # tasks per second, first accepted to last finished
    attempts: int
    shares: dict[str, float]  # of the attempts, by host
    cpu_s: dict[str, float]  # CPU seconds of each host's processes during the round
    resent: int  # wake-up messages the dispatchers sent again (task_redispatched events)
    connections: dict[str, int]  # PostgreSQL sessions open from each host as the round ends


def _round(cluster: Cluster, result: ScenarioResult, count: int, tasks: int) -> Round:
    hosts = WORKER_HOSTS[:count]
    cpu_before = {host: cluster.workers[host].cpu_s() for host in hosts}
    tag = f"spread{count}"
    ids = enqueue_batches(cluster.api_url, [echo_spec(tag, i) for i in range(tasks)])
    ended = wait_ended(cluster.query, ids, timeout=120 + 0.2 * tasks, log=cluster.log)
    if ended is None:
        result.problems.append(f"with {count} worker host(s) not every task ended in time")
    cpu = {host: cluster.workers[host].cpu_s() - cpu_before[host] for host in hosts}
    by_host = attempts_by_host(cluster.query, ids)
    attempts = sum(by_host.values()) or 1
    shares = {host: by_host.get(host, 0) / attempts for host in hosts}
    elapsed, rate = end_to_end_rate(cluster.query, ids)
    resent = int(cluster.query("SELECT count(*) FROM task_events WHERE event = 'task_redispatched'"
                               " AND task_id = ANY(%s::uuid[])", ids)[0][0])
    result.add_verdict(verdict(cluster.query, ids))
    strangers = set(by_host) - set(hosts)
    if strangers:
        result.problems.append(f"attempts recorded by unknown hosts {sorted(strangers)}")
    connections = _connections(cluster)
    line = (f"{count} worker host(s): {len(ids)} tasks in {elapsed:.1f} s = {rate:.1f} tasks/s; "
            + ", ".join(f"{host} {shares[host]:.0%} of {attempts} attempts, "
                        f"cpu {cpu[host]:.1f} s" for host in hosts)
            + f"; {resent} wake-ups re-sent by the dispatchers; PostgreSQL sessions by host "
            + ", ".join(f"{host} {n}" for host, n in sorted(connections.items())))
    result.notes.append(line)
    return Round(hosts=count, tasks=len(ids), elapsed_s=round(elapsed, 2), rate=round(rate, 2),
                 attempts=attempts, shares=shares, cpu_s={h: round(c, 2) for h, c in cpu.items()},
                 resent=resent, connections=connections)


def _connections(cluster: Cluster) -> dict[str, int]:
    """Sessions on JCT's database by the host they come from (pooled ones stay open idle)."""
    names = {host.address: host.name for host in cluster.topology.hosts.values()}
    names[cluster.topology.gateway] = "drill"
    rows = cluster.query("SELECT host(client_addr), count(*) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND backend_type = 'client backend'"
                         " GROUP BY 1")
    return {names.get(str(address), str(address)): int(n) for address, n in rows}

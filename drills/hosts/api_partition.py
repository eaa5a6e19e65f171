"""Scenario "API host cut from the database": the link between the api host and the db host is
cut for ``cut_s`` while the drill (which still reaches the API) asks ``GET /healthz`` and
``POST /enqueue`` over and over, one request of each at a time. Expected: ``/healthz`` answers ``503`` within
``HEALTHZ_BOUND_S`` every time, no request answers ``500`` or goes unanswered, and after the
cut the API answers ``200`` and accepts tasks again by itself.

Time to recover: from the end of the cut to the first ``/healthz`` 200.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

from drills.hosts.cluster import Cluster
from drills.hosts.load import echo_spec, enqueue_batches
from drills.hosts.report import ScenarioResult
from drills.hosts.verdict import verdict, wait_ended

NAME = "API host cut from the database"
# The database handle's connect timeout (5 s, models/db.py) and as much again for a busy
# machine: an answer slower than this is a hang, not a timeout doing its job.
HEALTHZ_BOUND_S = 10.0
CLIENT_TIMEOUT_S = 90.0  # longer than gunicorn's worker timeout (60 s), to see what it does
RECOVER_WAIT_S = 120.0


@dataclass(frozen=True)
class Probe:
    path: str
    at_s: float  # since the cut
    status: int | None  # None: no HTTP answer
    took_s: float
    task_id: str | None = None
    error: str | None = None


def run(cluster: Cluster, cut_s: float) -> ScenarioResult:
    result = ScenarioResult(NAME)
    api, db = cluster.topology["api"], cluster.topology["db"]
    warm = [_probe(cluster, "/healthz", time.time()) for _ in range(4)]  # pooled connections
    if any(p.status != 200 for p in warm):
        result.problems.append(f"/healthz before the cut: {[p.status for p in warm]}")
    cut_at = time.time()
    cluster.topology.cut(api, db)
    probers = [Prober(cluster, path, cut_at) for path in ("/healthz", "/enqueue")]
    for prober in probers:
        prober.start()
    try:
        time.sleep(cut_s)
    finally:
        cluster.topology.mend(api, db)
        healed_at = time.time()
        for prober in probers:
            prober.stopping.set()
    for prober in probers:
        prober.join(CLIENT_TIMEOUT_S + 10)  # a request sent during the cut may answer only now
    probes = [probe for prober in probers for probe in prober.probes]
    cluster.log(f"[{NAME}] cut {healed_at - cut_at:.1f} s, {len(probes)} probes")
    recovered = _first_ok(cluster, healed_at)
    result.recovered(recovered)
    if recovered is None:
        result.problems.append(f"/healthz not 200 within {RECOVER_WAIT_S:.0f} s of the cut's end")
    ids = [p.task_id for p in probes if p.task_id]
    ids += enqueue_batches(cluster.api_url, [echo_spec("api-after", i) for i in range(10)])
    if wait_ended(cluster.query, ids, timeout=120, log=cluster.log) is None:
        result.problems.append("not every task accepted around the cut ended within 120 s")
    result.add_verdict(verdict(cluster.query, ids))
    result.problems.extend(_judge(probes, cut_s))
    health = [p for p in probes if p.path == "/healthz"]
    enqueue = [p for p in probes if p.path == "/enqueue"]
    result.facts.update(
        cut_s=round(healed_at - cut_at, 2),
        healthz=[(p.status, round(p.at_s, 2), round(p.took_s, 2)) for p in health],
        enqueue=[(p.status, round(p.at_s, 2), round(p.took_s, 2)) for p in enqueue],
        healthz_max_s=round(max((p.took_s for p in health), default=0.0), 2),
        errors=sorted({p.error for p in probes if p.error}))
    result.notes.append(
        f"cut {healed_at - cut_at:.1f} s: /healthz {_summary(health)}; POST /enqueue "
        f"{_summary(enqueue)}; /healthz 200 again "
        + (f"+{recovered:.1f} s after the cut" if recovered is not None else "never"))
    return result


class Prober(threading.Thread):
    """One request to ``path`` after the other (the API has two sync workers: one prober
    each), until told to stop."""

    def __init__(self, cluster: Cluster, path: str, cut_at: float) -> None:
        super().__init__(name=f"api-prober{path.replace('/', '-')}", daemon=True)
        self.cluster, self.path, self.cut_at = cluster, path, cut_at
        self.probes: list[Probe] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.probes.append(_probe(self.cluster, self.path, self.cut_at))
            self.stopping.wait(0.2)


def _probe(cluster: Cluster, path: str, cut_at: float) -> Probe:
    sent, started = time.time(), time.monotonic()
    try:
        if path == "/enqueue":
            response = requests.post(cluster.api_url + path, json=echo_spec("api-cut", 0),
                                     timeout=CLIENT_TIMEOUT_S)
        else:
            response = requests.get(cluster.api_url + path, timeout=CLIENT_TIMEOUT_S)
    except requests.RequestException as exc:
        return Probe(path, sent - cut_at, None, time.monotonic() - started,
                     error=f"{type(exc).__name__}: {exc}"[:200])
    task_id = response.json().get("task_id") if response.status_code == 202 else None
    return Probe(path, sent - cut_at, response.status_code, time.monotonic() - started, task_id)


def _judge(probes: list[Probe], cut_s: float) -> list[str]:
    problems = []
    health = [p for p in probes if p.path == "/healthz"]
    if not health:
        problems.append("no /healthz probe during the cut")
    # A 200 is right once the cut has ended (how long it took is judged below).
    wrong = [p for p in health if p.status != 503
             and not (p.status == 200 and p.at_s + p.took_s >= cut_s)]
    if wrong:
        problems.append(f"/healthz during the cut answered {_summary(wrong)}, not 503")
    slow = [p for p in health if p.status is not None and p.took_s > HEALTHZ_BOUND_S]
    if slow:
        problems.append(f"/healthz took up to {max(p.took_s for p in slow):.1f} s "
                        f"(bound {HEALTHZ_BOUND_S:g} s)")
    broken = [p for p in probes if p.status is None or (p.status >= 500 and p.status != 503)]
    if broken:
        problems.append(f"answers that are neither a result nor 503: {_summary(broken)}")
    return problems


def _summary(probes: list[Probe]) -> str:
    if not probes:
        return "none"
    counts = Counter("no answer" if p.status is None else str(p.status) for p in probes)
    took = sorted(p.took_s for p in probes)
    return (", ".join(f"{n}× {s}" for s, n in counts.items())
            + f" (median {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s)")


def _first_ok(cluster: Cluster, since: float) -> float | None:
    deadline = time.monotonic() + RECOVER_WAIT_S
    while time.monotonic() < deadline:
        try:
            if requests.get(cluster.api_url + "/healthz", timeout=CLIENT_TIMEOUT_S).status_code == 200:
                return time.time() - since
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return None

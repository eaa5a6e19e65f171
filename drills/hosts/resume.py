"""Did every worker host come back by itself? Each host's first claim after a moment, feeding
small batches of tasks while some host has not claimed yet (the scenario's own stream may have
ended, and a host that is back but gets no work would look stuck)."""

from __future__ import annotations

import time

from drills.hosts.attempts import first_claims_after
from drills.hosts.cluster import WORKER_HOSTS, Cluster
from drills.hosts.load import echo_spec, enqueue_batches
from drills.hosts.verdict import wait_ended

FEED = 12


def wait_every_host_claims(cluster: Cluster, since: float, *, tag: str,
                           wait_s: float = 120.0) -> tuple[dict[str, float], list[str]]:
    """``({host: seconds from since to its first claim}, ids of the tasks fed)``; a host
    missing from the first map claimed nothing within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    fed: list[str] = []
    while True:
        claims = first_claims_after(cluster.query, since)
        resumed = {h: at - since for h, at in claims.items() if h in WORKER_HOSTS}
        if len(resumed) == len(WORKER_HOSTS) or time.monotonic() > deadline:
            return resumed, fed
        ids = enqueue_batches(cluster.api_url, [echo_spec(f"{tag}{len(fed)}", i)
                                                for i in range(FEED)])
        fed.extend(ids)
        wait_ended(cluster.query, ids, timeout=max(1.0, deadline - time.monotonic()))

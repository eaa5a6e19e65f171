"""``python -m drills.hosts [--short] [--tasks N] [--only NAME,...] [--json FILE]``

Builds the hosts, runs the scenarios in order (spread first: it starts the worker hosts one at
a time), prints one table on stdout and exits 1 if any scenario failed (2 if the drill cannot
run here: not root, no ``ip netns``, no RabbitMQ). Progress goes to stderr; each host's logs
stay under the work directory printed at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from drills import rabbitmq
from drills.hosts import (
    api_partition,
    broker_restart,
    database_cut,
    spread,
    worker_partition,
)
from drills.hosts.cluster import DRILL_ENV, WORKER_HOSTS, Cluster, running_cluster
from drills.hosts.report import ScenarioResult, table
from drills.netns import unavailable_reason

SCENARIOS = ("spread", "worker-partition", "database-cut", "rabbitmq-restart", "api-partition")


@dataclass(frozen=True)
class Sizes:
    spread_tasks: int
    partition_tasks: int
    stream_tasks: int  # the database-cut and RabbitMQ-restart streams
    database_cut_s: float
    api_cut_s: float


FULL = Sizes(spread_tasks=3000, partition_tasks=24, stream_tasks=600, database_cut_s=15,
             api_cut_s=15)
SHORT = Sizes(spread_tasks=150, partition_tasks=12, stream_tasks=150, database_cut_s=15,
              api_cut_s=10)


def cannot_run() -> str | None:
    """Why the drill cannot run on this machine, or ``None``."""
    reason = unavailable_reason()
    if reason is None and not rabbitmq.installed():
        reason = "rabbitmq-server is not installed (the drill runs a private RabbitMQ node)"
    return reason


def run_scenarios(cluster: Cluster, sizes: Sizes, only: tuple[str, ...]) -> list[ScenarioResult]:
    lease_s = float(DRILL_ENV["JCT_LEASE_S"])
    steps: dict[str, Callable[[], ScenarioResult]] = {
        "spread": lambda: spread.run(cluster, sizes.spread_tasks),
        "worker-partition": lambda: worker_partition.run(cluster, sizes.partition_tasks, lease_s),
        "database-cut": lambda: database_cut.run(cluster, sizes.stream_tasks,
                                                 sizes.database_cut_s),
        "rabbitmq-restart": lambda: broker_restart.run(cluster, sizes.stream_tasks),
        "api-partition": lambda: api_partition.run(cluster, sizes.api_cut_s),
    }
    if "spread" not in only:
        for name in WORKER_HOSTS:
            cluster.start_worker(name)
    results = []
    for name in (n for n in SCENARIOS if n in only):
        started = time.monotonic()
        cluster.log(f"=== {name}")
        try:
            result = steps[name]()
        except Exception as exc:  # one scenario's crash is its failure; the others still run
            traceback.print_exc(file=sys.stderr)
            result = ScenarioResult(name, problems=[f"crashed: {type(exc).__name__}: {exc}"])
        result.facts["elapsed_s"] = round(time.monotonic() - started, 1)
        for line in [*result.notes, *(f"PROBLEM: {p}" for p in result.problems)]:
            cluster.log(f"[{result.name}] {line}")
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills.hosts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true",
                        help="small task counts for CI (the whole drill in a few minutes)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="tasks per round of the spread scenario (default 3000; 150 short)")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)})")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where hosts keep their homes and logs (default: a new temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--amqp-heartbeat", type=int, default=None, metavar="S",
                        help="give the hosts JCT_BROKER_URL=…?heartbeat=S (default: RabbitMQ's 60 s)")
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    sizes = SHORT if args.short else FULL
    if args.tasks is not None:
        sizes = Sizes(args.tasks, sizes.partition_tasks, sizes.stream_tasks,
                      sizes.database_cut_s, sizes.api_cut_s)

    def log(message: str) -> None:
        print(f"[hosts {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    reason = cannot_run()
    if reason is not None:
        log(f"cannot run: {reason}")
        return 2

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds through the clean-up

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C must clean up even where SIGINT came ignored (a job started with `&` by a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="jct-hosts-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)  # PostgreSQL and RabbitMQ run as their own users under it
    log(f"work directory {workdir}")
    try:
        with running_cluster(workdir, log, amqp_heartbeat_s=args.amqp_heartbeat) as cluster:
            results = run_scenarios(cluster, sizes, only)
    except KeyboardInterrupt:
        log("interrupted; hosts and their processes removed")
        return 130
    print(table(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"workdir": str(workdir), "short": args.short,
                                         "results": [r.as_dict() for r in results]}, indent=2))
    log(f"logs of each host under {workdir / 'homes'}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``make bench`` / ``make bench-quick``: JCT and its peers measured in one run on the same
PostgreSQL and RabbitMQ; prints one table and the ratios, writes ``bench/results/latest.json``.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.plan import FULL, QUICK
from bench.rabbitmq import DEFAULT_URL
from bench.report import cpu_ratios, ratios, summary, table, targets, write_json
from bench.runner import SYSTEMS, run

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke form: small windows and backlogs (about 2 minutes)")
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help=f"comma-separated systems to measure (default all: {','.join(SYSTEMS)})")
    parser.add_argument("--tasks", type=int, help="burn-down backlog per system (default 10,000)")
    parser.add_argument("--seconds", type=float, help="each enqueue window's bound (default 10)")
    parser.add_argument("--rabbitmq-url", default=os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_URL))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, pgdata)")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {sorted(SYSTEMS)}")
    plan = (QUICK if args.quick else FULL).with_overrides(tasks=args.tasks, seconds=args.seconds)
    results = run(plan, systems, args.rabbitmq_url, keep=args.keep)
    found = ratios(results["systems"])
    checks = targets(results["systems"], found)
    results["ratios"] = found
    results["cpu_ratios"] = cpu_ratios(results["systems"])
    results["targets"] = checks
    results["worker_rss_growth"] = results["systems"].get("jct_postgres", {}).get("worker_rss_growth")
    write_json(args.out, results)
    print(table(results["systems"], results["errors"]))
    print()
    print(summary({**found, **results["cpu_ratios"]}, checks))
    print(f"\nload before {results['load_before']}, after {results['load_after']}; "
          f"{results['duration_s']}s; written to {args.out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

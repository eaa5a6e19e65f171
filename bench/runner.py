"""One bench run: start the shared PostgreSQL and the probe, measure each system in turn (one at
a time: the machine has two cores), stop everything, gather the results."""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine
from bench.context import ROOT, BenchContext
from bench.cpu import cpu_seconds
from bench.plan import Plan
from bench.postgres_server import start_shared_postgres
from bench.probe import ProbeListener
from bench.rabbitmq import RabbitMQ


def _jct(broker: str) -> Callable[[BenchContext], dict[str, Any]]:
    def measure(ctx: BenchContext) -> dict[str, Any]:
        from bench.jct import measure_jct

        return measure_jct(ctx, broker)

    return measure


def _peer(module: str) -> Callable[[BenchContext], dict[str, Any]]:
    def measure(ctx: BenchContext) -> dict[str, Any]:
        from bench.peers.driver import measure_peer

        # Imported here: the peers' libraries are only in the bench venv (.venv-bench).
        return measure_peer(ctx, importlib.import_module(f"bench.peers.{module}").prepare(ctx))

    return measure


def _ceiling(module: str, function: str) -> Callable[[BenchContext], dict[str, Any]]:
    def measure(ctx: BenchContext) -> dict[str, Any]:
        measure_fn: Callable[[BenchContext], dict[str, Any]] = getattr(
            importlib.import_module(f"bench.ceilings.{module}"), function)
        return measure_fn(ctx)

    return measure


SYSTEMS: dict[str, Callable[[BenchContext], dict[str, Any]]] = {
    "pg_ceiling": _ceiling("pg_ceiling", "measure_pg_ceiling"),
    "bare_gunicorn": _ceiling("bare_gunicorn", "measure_bare_gunicorn"),
    "dramatiq_raw": _peer("dramatiq_peer"),
    "celery": _peer("celery_peer"),
    "procrastinate": _peer("procrastinate_peer"),
    "jct_postgres": _jct("postgres"),
    "jct_rabbitmq": _jct("rabbitmq"),
}
USES_RABBITMQ = ("dramatiq_raw", "celery", "jct_rabbitmq")


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _background_ms_per_s(rabbitmq: RabbitMQ, seconds: float = 3.0) -> float:
    """CPU the shared RabbitMQ spends per second while no system of ours uses it."""
    before = cpu_seconds(RabbitMQ.processes())
    time.sleep(seconds)
    return round((cpu_seconds(RabbitMQ.processes()) - before) * 1000 / seconds, 2)


def run(plan: Plan, systems: list[str], rabbitmq_url: str, *, keep: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="jct-bench-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "plan": asdict(plan), "machine": machine.machine(), "load_before": machine.load(),
        "jct_commit": machine.jct_commit(ROOT), "versions": machine.library_versions()}
    outcomes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    _say(f"work directory {workdir}; starting the shared PostgreSQL")
    postgres = start_shared_postgres(workdir / "pgdata")
    probe = ProbeListener()
    rabbitmq = RabbitMQ(rabbitmq_url)
    try:
        ctx = BenchContext(postgres=postgres, rabbitmq=rabbitmq, probe=probe,
                           probe_addr=probe.start(), plan=plan, workdir=workdir)
        results["versions"]["postgresql"] = postgres.version()
        results["postgresql_settings"] = postgres.settings()
        rabbit_up = rabbitmq.reachable()
        if rabbit_up:
            results["versions"]["rabbitmq"] = rabbitmq.version()
            results["rabbitmq_background_cpu_ms_per_s"] = _background_ms_per_s(rabbitmq)
        for name in systems:
            if name in USES_RABBITMQ and not rabbit_up:
                errors[name] = f"RabbitMQ unreachable at {rabbitmq_url}"
                continue
            _say(f"{name} …")
            try:
                settle_s = postgres.settle()
                began, load = time.monotonic(), machine.load()
                outcomes[name] = {**SYSTEMS[name](ctx), "settle_s": settle_s, "load_before": load,
                                  "load_after": machine.load(),
                                  "duration_s": round(time.monotonic() - began)}
                _say(f"{name} done in {time.monotonic() - began:.0f}s")
            except Exception as exc:  # one system failing must not lose the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"
                (workdir / f"{name}.error.txt").write_text(traceback.format_exc())
                _say(f"{name} FAILED: {errors[name][:300]} (see {workdir / f'{name}.error.txt'})")
                keep = True
    finally:
        probe.close()
        postgres.stop(remove=not keep)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results.update(systems=outcomes, errors=errors, load_after=machine.load(),
                   duration_s=round(time.monotonic() - started), workdir=str(workdir) if keep else None)
    return results

"""The run's outputs: the ratios, the targets of issue 11 they are read against, the table, and
``bench/results/latest.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = {
    "jct_postgres": "JCT, PostgreSQL broker (`POST /enqueue`)",
    "jct_rabbitmq": "JCT, RabbitMQ (`POST /enqueue`)",
    "dramatiq_raw": "Dramatiq + RabbitMQ, −p2 −t4",
    "celery": "Celery + RabbitMQ, acks_late, 2 procs × 4 threads",
    "procrastinate": "Procrastinate, 2 procs × 4",
    "pg_ceiling": "pg_ceiling: JCT's per-task SQL, pgbench −M prepared, 8 clients",
    "bare_gunicorn": "bare_gunicorn: `{\"ok\": true}`, 2 gthread workers × 16 threads",
}
CPU_NAMES = (("worker", "worker"), ("api", "API"), ("postgres", "PostgreSQL"),
             ("rabbitmq", "RabbitMQ"), ("s3", "S3"))
PEERS = ("celery", "procrastinate", "dramatiq_raw", "pg_ceiling")
# Issue 11, part 2: (ratio, comparison, threshold).
TARGETS = (("jct_e2e_vs_celery", ">=", 1.0), ("jct_e2e_vs_procrastinate", ">=", 1.5),
           ("jct_e2e_vs_dramatiq_raw", ">=", 0.5), ("jct_e2e_vs_pg_ceiling", ">=", 0.4),
           ("jct_enqueue_vs_bare_gunicorn", ">=", 0.5), ("jct_batch_vs_single", ">=", 10.0))


def figure(systems: dict[str, Any], *path: str) -> float | None:
    value: Any = systems
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def ratios(systems: dict[str, Any]) -> dict[str, float | None]:
    """The issue's ratio names for JCT on the PostgreSQL broker, then ``_rabbitmq`` variants.
    Enqueue is compared at 16 clients (capacity), batch against single at 1 client each."""
    found: dict[str, float | None] = {}
    for suffix, jct in (("", "jct_postgres"), ("_rabbitmq", "jct_rabbitmq")):
        e2e = figure(systems, jct, "e2e", "per_s")
        for peer in PEERS:
            found[f"jct_e2e_vs_{peer}{suffix}"] = _ratio(e2e, figure(systems, peer, "e2e", "per_s"))
        found[f"jct_enqueue_vs_bare_gunicorn{suffix}"] = _ratio(
            figure(systems, jct, "enqueue_16", "per_s"),
            figure(systems, "bare_gunicorn", "enqueue_16", "per_s"))
        found[f"jct_batch_vs_single{suffix}"] = _ratio(figure(systems, jct, "enqueue_batch", "per_s"),
                                                       figure(systems, jct, "enqueue_1", "per_s"))
    return found


def cpu_total(systems: dict[str, Any], name: str) -> float | None:
    """CPU ms per task over the burn-down, summed over the system's own processes and servers
    (client and supervisor left out): far less sensitive to the machine's load than a rate."""
    cpu = systems.get(name, {}).get("e2e", {}).get("cpu_ms_per_task")
    if not cpu:
        return None
    return round(sum(v for k, v in cpu.items() if k in dict(CPU_NAMES)), 3)


def cpu_ratios(systems: dict[str, Any]) -> dict[str, float | None]:
    """JCT's CPU per task over each peer's (and the ceiling's): how many times more CPU a task
    costs, the load-robust companion of the end-to-end ratios."""
    found: dict[str, float | None] = {}
    for suffix, jct in (("", "jct_postgres"), ("_rabbitmq", "jct_rabbitmq")):
        for peer in PEERS:
            found[f"jct_cpu_per_task_vs_{peer}{suffix}"] = _ratio(cpu_total(systems, jct),
                                                                 cpu_total(systems, peer))
    return found


def targets(systems: dict[str, Any], found: dict[str, float | None]) -> dict[str, Any]:
    """Each target of issue 11 with the value of this run and whether it is met."""
    checks: dict[str, Any] = {}
    for name, _, threshold in TARGETS:
        value = found.get(name)
        checks[name] = {"target": f">= {threshold}", "value": value,
                        "met": value is not None and value >= threshold}
    jct_p50 = figure(systems, "jct_postgres", "latency_idle", "p50_ms")
    raw_p50 = figure(systems, "dramatiq_raw", "latency_idle", "p50_ms")
    within = _ratio(jct_p50, raw_p50)
    checks["idle_p50_vs_dramatiq_raw"] = {"target": "<= 2.0", "value": within,
                                          "met": within is not None and within <= 2.0}
    growth = figure(systems, "jct_postgres", "worker_rss_growth", "ratio")
    checks["worker_rss_growth"] = {"target": "< 1.05", "value": growth,
                                   "met": growth is not None and growth < 1.05}
    return checks


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _latency(systems: dict[str, Any], name: str, key: str) -> str:
    p50 = figure(systems, name, key, "p50_ms")
    p99 = figure(systems, name, key, "p99_ms")
    return "—" if p50 is None else f"{_number(p50, 1)} / {_number(p99, 1)}"


def _cpu(systems: dict[str, Any], name: str) -> str:
    window = "enqueue_16" if name == "bare_gunicorn" else "e2e"
    cpu = systems.get(name, {}).get(window, {}).get("cpu_ms_per_task", {})
    parts = [f"{cpu[key]:.1f} {label}" for key, label in CPU_NAMES
             if isinstance(cpu.get(key), int | float) and cpu[key] >= 0.05]
    return " + ".join(parts) or "—"


def _load(systems: dict[str, Any], name: str) -> str:
    """The machine's 1-minute load average when the system's run began → ended."""
    before = figure(systems, name, "load_before", "load_1m")
    after = figure(systems, name, "load_after", "load_1m")
    return "—" if before is None or after is None else f"{before:.1f} → {after:.1f}"


def table(systems: dict[str, Any], errors: dict[str, str]) -> str:
    """One Markdown table: a row per system, in ``LABELS`` order."""
    lines = ["| system | single enqueue/s, 1 client | 16 clients | batch enqueue/s (per task) |"
             " end to end/s | start p50 / p99 ms, idle | under load | CPU ms per task | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, label in LABELS.items():
        if name in errors:
            lines.append(f"| {label} | failed: {errors[name][:80]} | | | | | | | |")
            continue
        if name not in systems:
            continue
        lines.append(" | ".join([
            f"| {label}", _number(figure(systems, name, "enqueue_1", "per_s")),
            _number(figure(systems, name, "enqueue_16", "per_s")),
            _number(figure(systems, name, "enqueue_batch", "per_s")),
            _number(figure(systems, name, "e2e", "per_s")),
            _latency(systems, name, "latency_idle"), _latency(systems, name, "latency_load"),
            _cpu(systems, name), _load(systems, name)]) + " |")
    return "\n".join(lines)


def summary(found: dict[str, float | None], checks: dict[str, Any]) -> str:
    lines = [f"{name:<44} {_number(value, 3)}" for name, value in found.items()]
    lines.append("")
    lines.extend(f"target {name:<37} {check['target']:<8} value {_number(check['value'], 3):<8}"
                 f" {'met' if check['met'] else 'not met'}" for name, check in checks.items())
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

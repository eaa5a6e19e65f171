"""What every measured system gets: the shared servers, the probe, the plan, a work directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.plan import Plan
from bench.postgres_server import SharedPostgres
from bench.probe import ProbeListener
from bench.rabbitmq import RabbitMQ

ROOT = Path(__file__).resolve().parent.parent  # the repository: cwd and PYTHONPATH of workers


@dataclass(frozen=True)
class BenchContext:
    postgres: SharedPostgres
    rabbitmq: RabbitMQ
    probe: ProbeListener
    probe_addr: str
    plan: Plan
    workdir: Path

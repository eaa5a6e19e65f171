"""The figures a measurement produces: rates and latency percentiles."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """``count`` tasks in ``seconds``."""

    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"per_s": round(self.per_s, 1), "count": self.count, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Latency:
    """Percentiles of a list of delays, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "max_ms": round(self.max_ms, 2)}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was actually observed."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_of(delays_s: list[float]) -> Latency:
    """Percentiles of delays given in seconds."""
    ms = [d * 1000 for d in delays_s]
    return Latency(n=len(ms), p50_ms=percentile(ms, 50), p99_ms=percentile(ms, 99), max_ms=max(ms))

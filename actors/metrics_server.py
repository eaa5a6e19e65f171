"""The worker pool's own ``/metrics`` (``JCT_WORKER_METRICS_PORT``), for a worker host that has
no API beside it (compose's ``worker``, ``jct worker`` on a host of its own): the counters and
histograms of this pool's worker processes, added up from their multiprocess directory.

It runs as a child of the pool, not a thread in it: the pool forks its worker processes and must
hold no thread when it does. The database's gauges are the API's alone (one copy per system).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from config import Settings
from logging_setup import log_event

logger = logging.getLogger("jct.worker_metrics")


def serve_metrics(settings: Settings, metrics_dir: Path) -> int:
    """Serve ``http://JCT_HOST:JCT_WORKER_METRICS_PORT/metrics`` until SIGTERM."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    assert settings.worker_metrics_port is not None
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(metrics_dir))
    start_http_server(settings.worker_metrics_port, addr=settings.host, registry=registry)
    log_event(logger, "worker_metrics_serving", f"worker metrics on http://{settings.host}:"
              f"{settings.worker_metrics_port}/metrics", port=settings.worker_metrics_port)
    while True:
        signal.pause()  # SIGTERM (default action) ends the process

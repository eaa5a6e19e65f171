"""gunicorn settings for ``jct up`` and the compose ``api`` service: threaded workers with a
deadline on request heads (slow clients cannot stall the API), a private umask, and JSON logs
through the same formatter and context filter as the rest of JCT, with the request's trace id
on access lines."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from gunicorn.glogging import Logger

import tracing
from config import load_settings
from errors import ConfigError
from gunicorn_worker import head_deadline_worker
from logging_setup import configure_logging
from observability import multiprocess
from private_files import PRIVATE_UMASK

try:
    _settings = load_settings()
except ConfigError as exc:  # one line naming the variable, not a traceback
    print(f"jct: {exc}", file=sys.stderr)
    sys.exit(2)

os.umask(PRIVATE_UMASK)  # before the workers fork: logs and spool under JCT_HOME stay private
# Before any worker imports prometheus_client: the workers share one multiprocess directory
# (the supervisor's under jct up; else this gunicorn's own, emptied now).
_metrics_dir = multiprocess.join_or_start(os.environ, _settings.home, "api")

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.api_workers
# Threads, not the sync worker: a sync worker reads each request in its only thread, so as
# many clients dripping headers as there are workers stall the API (docs/security.md has the
# figures). The worker closes a connection whose request head is not in within the deadline.
worker_class = head_deadline_worker(_settings.api_head_timeout_s)
threads = _settings.api_threads
wsgi_app = "app:create_app()"
accesslog = "-"
timeout = 60  # threaded workers: how long the main loop may be silent, not a request deadline
graceful_timeout = 20
# Whose X-Forwarded-Proto is believed (a TLS-terminating proxy): the scheme decides the
# session cookie's Secure flag.
forwarded_allow_ips = _settings.forwarded_allow_ips


class JctGunicornLogger(Logger):
    """gunicorn's error and access loggers, re-pointed at the JSON handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging("api", _settings.log_file)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True
        self.access_log.setLevel(logging.INFO)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        trace_id = environ.get("jct.trace_id")
        with tracing.bound(trace_id=trace_id):
            status = str(getattr(resp, "status", "") or "").split(" ")[0]
            self.access_log.info(
                "%s %s %s", environ.get("REQUEST_METHOD"), environ.get("RAW_URI") or environ.get("PATH_INFO"),
                status, extra={"event": "http_access", "method": environ.get("REQUEST_METHOD"),
                               "path": environ.get("PATH_INFO"), "status": int(status or 0),
                               "duration_ms": int(request_time.total_seconds() * 1000),
                               "remote_addr": environ.get("REMOTE_ADDR")})


logger_class = JctGunicornLogger


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker exited: its live gauges go, its counters stay in the sum."""
    multiprocess.mark_process_dead(worker.pid, _metrics_dir)

"""gunicorn settings for ``jct up`` and the compose ``api`` service: JSON logs through the same
formatter and context filter as the rest of JCT, with the request's trace id on access lines."""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn.glogging import Logger

import tracing
from config import load_settings
from errors import ConfigError
from logging_setup import configure_logging

try:
    _settings = load_settings()
except ConfigError as exc:  # one line naming the variable, not a traceback
    print(f"jct: {exc}", file=sys.stderr)
    sys.exit(2)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.api_workers
wsgi_app = "app:create_app()"
accesslog = "-"
timeout = 60
graceful_timeout = 20
forwarded_allow_ips = "127.0.0.1"


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

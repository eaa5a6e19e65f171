"""The runtime: what a process needs to do JCT's work — its settings, the database, the broker,
the artifact store, the clock, the attempts' log collector, the worker's shutdown state, and
the security context of its actions (where they may connect, where secrets come from, and the
registry of secret values its log lines must never show).

Each entry point builds exactly one (the web app factory keeps it on ``app.extensions``, the
worker boot module, the CLI, the supervisor) and passes it down; nothing below reads the
environment or keeps a module-level handle. The broker and the store connect on first use, so
a process that never sends or stores never connects.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from broker import TaskBroker
from clock import Clock
from config import Settings, load_settings
from credentials import SecretSource
from egress.policy import EgressPolicy
from errors import ConfigError
from holder import Holder, this_process
from logging_setup import AttemptLogCollector, configure_logging
from models.db import Database
from observability.spans import Spans
from redaction import SecretRegistry
from storage.s3 import ArtifactStore

if TYPE_CHECKING:  # prometheus_client is imported on first use, after the entry point has
    # named the multiprocess directory (observability.multiprocess)
    from observability.metrics import Metrics

T = TypeVar("T")


@dataclass
class Shutdown:
    """This worker process was asked to stop: attempts still running after the grace period
    are interrupted at their next interruptible point and given back."""

    deadline: float | None = None

    def begin(self, grace_s: float, now: float) -> None:
        self.deadline = now + grace_s

    def past_grace(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class Runtime:
    def __init__(self, settings: Settings, *, component: str, clock: Clock | None = None,
                 attempt_logs: AttemptLogCollector | None = None,
                 secret_registry: SecretRegistry | None = None, spans: Spans | None = None) -> None:
        self.settings = settings
        self.component = component
        self.clock = clock or Clock()
        self.attempt_logs = attempt_logs or AttemptLogCollector()
        self.secret_registry = secret_registry or SecretRegistry()
        self.shutdown = Shutdown()
        self.egress = EgressPolicy(allowed=settings.http_allowed_hosts,
                                   own_endpoints=settings.own_endpoints)
        self.secrets = SecretSource(settings.secrets_dir, os.environ)
        self._db: Database | None = None
        self._broker: TaskBroker | None = None
        self._store: ArtifactStore | None = None
        self._holder: Holder | None = None
        self._metrics: Metrics | None = None
        self._spans = spans
        self._parts: dict[str, Any] = {}
        self._guard = threading.Lock()

    @property
    def db(self) -> Database:
        with self._guard:
            if self._db is None:
                if self.settings.database_url is None:
                    raise ConfigError("JCT_DATABASE_URL is not set and no `jct up` is running in "
                                      f"{self.settings.home}; start it (make run) or point "
                                      "JCT_DATABASE_URL at a server")
                self._db = Database(self.settings.database_url,
                                    prepared_statements=self.settings.database_prepared_statements)
            return self._db

    @property
    def broker(self) -> TaskBroker:
        with self._guard:
            if self._broker is None:
                self._broker = TaskBroker(self.settings)
            return self._broker

    @property
    def store(self) -> ArtifactStore:
        with self._guard:
            if self._store is None:
                self._store = ArtifactStore(self.settings)
            return self._store

    @property
    def metrics(self) -> Metrics:
        """This process's counters and histograms (``observability.metrics``)."""
        if self._metrics is not None:  # every task reads it: no lock once built
            return self._metrics
        with self._guard:
            if self._metrics is None:
                from observability.metrics import Metrics

                self._metrics = Metrics()
            return self._metrics

    @property
    def spans(self) -> Spans:
        """OpenTelemetry spans, on when an OTLP endpoint is configured (``observability.otel``)."""
        spans = self._spans
        if spans is not None:
            return spans
        with self._guard:
            if self._spans is None:
                from observability.otel import build_spans

                self._spans = build_spans(self.component, enabled=self.settings.otel_enabled)
            return self._spans

    def once(self, name: str, build: Callable[[], T]) -> T:
        """A part of this runtime that the layers above build on first use (the worker's lease
        keeper): one per runtime, closed with it if it has a ``close``."""
        with self._guard:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]

    @property
    def holder(self) -> Holder:
        """This process, as recorded on the attempts it runs (host, pid, boot, start)."""
        if self._holder is None or self._holder.pid != os.getpid():
            self._holder = this_process()
        return self._holder

    @property
    def worker_name(self) -> str:
        """``host:pid`` of this process."""
        return self.holder.name

    def close(self) -> None:
        """Close the broker, the database pool and the store's connections (the process is
        done with them)."""
        with self._guard:
            broker, db, store = self._broker, self._db, self._store
            self._broker, self._db, self._store = None, None, None
            spans, self._spans = self._spans, None
            parts, self._parts = list(self._parts.values()), {}
        for part in parts:
            if hasattr(part, "close"):
                part.close()
        if broker is not None:
            broker.close()
        if db is not None:
            db.close()
        if store is not None:
            store.close()
        if spans is not None:
            spans.close()


def build_runtime(component: str, settings: Settings | None = None, *,
                  configure_logs: bool = True, clock: Clock | None = None) -> Runtime:
    """The runtime of one process: its settings (from the environment unless given) and, unless
    told otherwise, JSON logging for ``component`` set up first."""
    settings = settings or load_settings()
    registry = SecretRegistry()
    attempt_logs = (configure_logging(component, settings.log_file, secret_registry=registry)
                    if configure_logs else None)
    return Runtime(settings, component=component, clock=clock, attempt_logs=attempt_logs,
                   secret_registry=registry)

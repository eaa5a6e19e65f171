"""What ``dramatiq actors.worker`` loads: logging, the configured broker, the middleware, then
the actors (which register on that broker when they are declared)."""

from __future__ import annotations

from broker import get_broker
from config import get_settings
from logging_setup import configure_logging
from models.db import init_database

_settings = get_settings()
configure_logging("worker", _settings.log_file)
if _settings.database_url:
    init_database(_settings.database_url)

from actors.middleware import (  # noqa: E402
    GracefulShutdownMiddleware,
    MaintenanceMiddleware,
    TraceMiddleware,
)

broker = get_broker()
broker.add_middleware(TraceMiddleware())
broker.add_middleware(MaintenanceMiddleware())
broker.add_middleware(GracefulShutdownMiddleware())

from actors.process_task import process_task  # noqa: E402

__all__ = ["broker", "process_task"]

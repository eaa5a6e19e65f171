"""Where the real services for tests are: RabbitMQ on this machine, or a skip (a failure in CI)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

from drills.rabbitmq import delete_queue  # noqa: F401 - the tests' import path

RABBITMQ_URL = os.environ.get("JCT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


def require_rabbitmq() -> str:
    """The RabbitMQ URL; skips where it is absent, but fails under CI=true."""
    if reachable(RABBITMQ_URL):
        return RABBITMQ_URL
    message = f"RabbitMQ not reachable at {RABBITMQ_URL}"
    if in_ci():
        pytest.fail(f"{message}; under CI=true broker tests must run, not skip")
    pytest.skip(message)
    raise AssertionError("unreachable")

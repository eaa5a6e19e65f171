"""The e2e tier: the processes as ``make run`` starts them (``jct up``), one stack per broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.downstream import Downstream, start_downstream
from harness.stack import Stack, start_stack
from tests.support.services import delete_queue, require_rabbitmq


@pytest.fixture(scope="session")
def postgres_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The system on all-embedded defaults: PostgreSQL, its broker, rclone S3."""
    stack = start_stack(tmp_path_factory.mktemp("jct-pg") / "home")
    yield stack
    assert stack.stop() == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"


@pytest.fixture(scope="session")
def rabbitmq_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same system with RabbitMQ (127.0.0.1:5672) as the broker, on a queue of its own."""
    url = require_rabbitmq()
    queue = f"jct_e2e_{uuid.uuid4().hex[:8]}"
    stack = start_stack(tmp_path_factory.mktemp("jct-rmq") / "home", JCT_BROKER_URL=url,
                        JCT_QUEUE=queue)
    yield stack
    code = stack.stop()
    delete_queue(url, queue)
    assert code == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"


@pytest.fixture(params=["postgres", "rabbitmq"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each e2e test that takes ``stack`` runs against both brokers."""
    return request.getfixturevalue(f"{request.param}_stack")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def downstream() -> Iterator[Downstream]:
    server = start_downstream()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and other output for people to look at."""
    path = Path(__file__).resolve().parents[2] / "test-output"
    path.mkdir(exist_ok=True)
    return path

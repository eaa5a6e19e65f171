"""The e2e tier: the processes as ``make run`` starts them (``jct up``), one stack per broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.downstream import Downstream, start_downstream
from harness.stack import Stack, start_stack
from tests.support.services import delete_queue, in_ci, require_rabbitmq


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


OPERATE_TOKEN = "e2e-operate-7c1f"
READ_TOKEN = "e2e-read-52ab"


@pytest.fixture(scope="session")
def tokens_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The system with API tokens on (``ops`` may operate, ``viewer`` may read) and a short
    request-head deadline (2 s), for the edge's tests."""
    stack = start_stack(tmp_path_factory.mktemp("jct-tokens") / "home",
                        JCT_API_TOKENS=f"ops:operate:{OPERATE_TOKEN},viewer:read:{READ_TOKEN}",
                        JCT_API_HEAD_TIMEOUT_S="2")
    yield stack
    assert stack.stop() == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"


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


# ── the browser (Debian's Chromium driven by Playwright) ──────────────────────────────────

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (make browser installs Debian's chromium)"
        if in_ci():
            pytest.fail(f"{message}; under CI=true the browser tests must run, not skip")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any script error or console error (a blocked
    resource or a Content-Security-Policy violation shows up there)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(DEADLINE_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(f"{message.text} at {message.location}")
            if message.type == "error" and not _favicon(message.location) else None)
    yield page
    context.close()
    assert errors == [], f"errors in the console: {errors}"


def _favicon(location: dict[str, Any]) -> bool:
    """Chromium asks for /favicon.ico on a raw artifact (no HTML there to name the icon)."""
    return str(location.get("url", "")).endswith("/favicon.ico")

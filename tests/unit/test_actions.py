"""Actions in isolation: deadlines, cancellation, status expectations, allowed hosts."""

from __future__ import annotations

import time

import pytest

from actions.base import ActionContext
from actions.fail import FailAction
from actions.http import HttpAction, _check_status
from actions.sleep import SleepAction
from config import load_settings
from errors import (
    ActionTimeout,
    AttemptInterrupted,
    PermanentActionError,
    RetryableActionError,
    TaskCancelled,
)
from services.attempt import retry_delay_s


def test_sleep_stops_at_the_deadline() -> None:
    ctx = ActionContext(deadline=time.monotonic() + 0.2, poll_s=0.05)
    with pytest.raises(ActionTimeout):
        SleepAction().run({"seconds": 30}, ctx)


def test_sleep_stops_when_cancelled() -> None:
    calls = iter([None, None, "cancelled"])
    ctx = ActionContext(stop_reason=lambda: next(calls, "cancelled"), poll_s=0.01)
    with pytest.raises(TaskCancelled):
        SleepAction().run({"seconds": 30}, ctx)


def test_sleep_stops_when_the_worker_shuts_down() -> None:
    ctx = ActionContext(stop_reason=lambda: "worker_shutdown", poll_s=0.01)
    with pytest.raises(AttemptInterrupted) as caught:
        SleepAction().run({"seconds": 30}, ctx)
    assert caught.value.reason == "worker_shutdown"


def test_fail_is_retryable_unless_told_otherwise() -> None:
    action = FailAction()
    with pytest.raises(RetryableActionError, match="boom"):
        action.run(action.validate({"message": "boom"}, "s"), ActionContext())
    with pytest.raises(PermanentActionError):
        action.run(action.validate({"message": "boom", "retryable": False}, "s"), ActionContext())


@pytest.mark.parametrize(("status", "expected", "error"), [
    (200, None, None), (204, None, None), (404, [404], None),
    (404, None, PermanentActionError), (500, None, RetryableActionError),
    (429, None, RetryableActionError), (200, [201], PermanentActionError),
])
def test_status_expectations(status: int, expected: list[int] | None,
                             error: type[Exception] | None) -> None:
    if error is None:
        _check_status(status, expected)
    else:
        with pytest.raises(error, match=str(status)):
            _check_status(status, expected)


def test_http_refuses_hosts_outside_the_allow_list() -> None:
    action = HttpAction()
    params = action.validate({"url": "http://169.254.169.254/latest"}, "s")
    with pytest.raises(PermanentActionError, match="JCT_HTTP_ALLOWED_HOSTS"):
        action.run(params, ActionContext(allowed_hosts=("127.0.0.1",)))


def test_retry_delay_grows_and_is_capped() -> None:
    settings = load_settings({"JCT_RETRY_BACKOFF_S": "1"})
    first = [retry_delay_s(settings, 1) for _ in range(50)]
    fourth = [retry_delay_s(settings, 4) for _ in range(50)]
    assert all(0.5 <= d < 1.5 for d in first)
    assert all(4 <= d < 12 for d in fourth)
    assert max(retry_delay_s(settings, 30) for _ in range(10)) <= settings.retry_backoff_max_s

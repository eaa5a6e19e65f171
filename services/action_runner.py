"""ActionRunner: runs a task's steps in order and records one ``action_invocations`` row each.

A failing step ends the attempt; the runner says why and whether another attempt can help.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actions import get_action
from actions.base import ActionContext, ActionResult
from errors import (
    ActionError,
    ActionTimeout,
    AttemptInterrupted,
    JctError,
    PermanentActionError,
    TaskCancelled,
)
from logging_setup import log_event
from models import invocations
from models.invocations import Invocation
from models.state_machine import Attempt
from runtime import Runtime
from services.artifacts import store_or_spool
from services.spec import inputs_hash
from states import InvocationStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptResult:
    """``error`` is ``None`` when every step succeeded."""

    error: str | None = None
    retryable: bool = False
    cancelled: bool = False
    interrupted: str | None = None  # worker_shutdown | lease_lost: not the task's fault


class ActionRunner:
    """Runs the steps and keeps their ``Invocation`` records: a step that ends quickly is
    written with the attempt's end (one statement for all); ``write_if_slow``, called by the
    attempt's heartbeat, writes the running row of a step that takes longer than
    ``SLOW_STEP_S``, so the console shows it running."""

    SLOW_STEP_S = 0.5

    def __init__(self, rt: Runtime, attempt: Attempt, *,
                 stop_reason: Callable[[], str | None]) -> None:
        self.rt, self.attempt = rt, attempt
        deadline = time.monotonic() + attempt.timeout_s if attempt.timeout_s else None
        self.ctx = ActionContext(deadline=deadline, stop_reason=stop_reason, egress=rt.egress,
                                 secrets=rt.secrets, secret_registry=rt.secret_registry,
                                 max_response_bytes=rt.settings.http_max_response_bytes)
        self.invocations: list[Invocation] = []
        self._current: tuple[Invocation, float] | None = None  # the running step, its start
        self._rows = threading.Lock()  # one writer of a step's row at a time

    def write_if_slow(self) -> None:
        """From the heartbeat thread: the running row of a step that is taking a while."""
        with self._rows:
            if self._current is None:
                return
            step, started = self._current
            if step.written or time.monotonic() - started < self.SLOW_STEP_S:
                return
            with self.rt.db.connection():
                invocations.write_running(self.rt.db, step)
            step.written = True

    def run(self) -> AttemptResult:
        for index, step in enumerate(self.attempt.spec["steps"]):
            try:
                self.ctx.check()  # a step boundary is an interruptible point
            except TaskCancelled:
                return AttemptResult(error="cancelled by operator", cancelled=True)
            except AttemptInterrupted as exc:
                return AttemptResult(error=exc.reason, interrupted=exc.reason)
            except ActionTimeout as exc:
                return AttemptResult(error=f"step {index}: {exc}", retryable=True)
            result = self._run_step(index, step["action"], step.get("params", {}))
            if result is not None:
                return result
        return AttemptResult()

    def _run_step(self, index: int, name: str, params: dict[str, Any]) -> AttemptResult | None:
        attempt = self.attempt
        step = Invocation(task_id=attempt.task_id, job_id=attempt.id, trace_id=attempt.trace_id,
                          step=index, action_name=name, inputs_hash=inputs_hash(params),
                          started_at=self.rt.clock.now())
        self.invocations.append(step)
        log_event(logger, "action_started", f"step {index}: {name}", step=index, action=name,
                  invocation_id=step.id)
        started = time.monotonic()
        with self._rows:
            self._current = (step, started)
        # A client span: what the action calls out to (an http request's traceparent, the
        # command's TRACEPARENT) names it as the parent.
        with self.rt.spans.span(f"jct action {name}", "client",
                                attributes={"jct.action": name, "jct.step": index}) as span:
            outcome, result = self._call(name, params, index)
            if outcome is not None and outcome.error is not None:
                span.end(outcome.error)
        report_id = self._store_report(index, result) if result is not None else None
        error = outcome.error if outcome else None
        with self._rows:
            self._current = None
            step.status = InvocationStatus.FAILED if error else InvocationStatus.OK
            step.completed_at = self.rt.clock.now()
            step.error, step.result_artifact_id = error, report_id
            step.downstream_status = result.downstream_status if result else None
        self.rt.metrics.action_ended(name, "failed" if error else "ok", time.monotonic() - started)
        log_event(logger, "action_finished", f"step {index}: {name} {'failed' if error else 'ok'}",
                  level=logging.WARNING if error else logging.INFO, step=index, action=name,
                  status="failed" if error else "ok", error=error,
                  duration_ms=int((time.monotonic() - started) * 1000),
                  downstream_status=result.downstream_status if result else None)
        return outcome

    def _call(self, name: str, params: dict[str, Any],
              index: int) -> tuple[AttemptResult | None, ActionResult | None]:
        action = get_action(name)
        try:
            if action is None:
                raise PermanentActionError(f"unknown action {name!r}")
            return None, action.run(action.validate(params, f"steps[{index}].params"), self.ctx)
        except TaskCancelled:
            return AttemptResult(error="cancelled by operator", cancelled=True), None
        except AttemptInterrupted as exc:
            return AttemptResult(error=f"step {index} ({name}): {exc.reason}",
                                 interrupted=exc.reason), None
        except ActionError as exc:
            return (AttemptResult(error=f"step {index} ({name}): {exc}", retryable=exc.retryable),
                    exc.result if isinstance(exc.result, ActionResult) else None)
        except JctError as exc:
            return AttemptResult(error=f"step {index} ({name}): {exc}", retryable=False), None
        except Exception as exc:  # a bug in an action must fail the step, not kill the worker
            logger.exception("action raised unexpectedly", extra={"event": "action_crashed"})
            return AttemptResult(error=f"step {index} ({name}): {type(exc).__name__}: {exc}",
                                 retryable=True), None

    def _store_report(self, index: int, result: ActionResult) -> str | None:
        if result.report is None:
            return None
        return store_or_spool(self.rt, self.attempt, kind="report",
                              name=f"step-{index}-{result.report_name}", data=result.report,
                              content_type=result.report_content_type)

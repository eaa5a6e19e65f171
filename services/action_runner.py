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
from actions.base import ActionContext, ActionResult, Output
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
from services.sandboxing import attempt_workspace
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
    TAIL_EVERY_S = 1.0  # how often a running step's output tail is written to its row

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
        self._tail_written = (0, 0.0)  # the output tail's version on the row, and when

    def write_if_slow(self) -> None:
        """From the heartbeat thread: the running row of a step that is taking a while."""
        with self._rows:
            if self._current is None:
                return
            step, started = self._current
            now = time.monotonic()
            if now - started < self.SLOW_STEP_S:
                return
            if not step.written:
                with self.rt.db.connection():
                    invocations.write_running(self.rt.db, step)
                step.written = True
            self._write_tail(step, now)

    def _write_tail(self, step: Invocation, now: float) -> None:
        """The running step's latest output lines, at most every ``TAIL_EVERY_S``."""
        tail = self.ctx.output_tail
        version, at = self._tail_written
        if tail.version == version or now - at < self.TAIL_EVERY_S:
            return
        version = tail.version
        with self.rt.db.connection():
            invocations.write_output_tail(self.rt.db, step.id, tail.text())
        self._tail_written = (version, now)

    def run(self) -> AttemptResult:
        """The steps in order, in one workspace (made if a step needs it), removed after."""
        self.ctx.workspace = attempt_workspace(self.rt)
        try:
            return self._run_steps()
        finally:
            self.ctx.workspace.close()

    def _run_steps(self) -> AttemptResult:
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
        self.ctx.step = index
        self.ctx.output_tail.clear()
        with self._rows:
            self._current = (step, started)
            self._tail_written = (self.ctx.output_tail.version, 0.0)
        # A client span: what the action calls out to (an http request's traceparent, the
        # command's TRACEPARENT) names it as the parent.
        with self.rt.spans.span(f"jct action {name}", "client",
                                attributes={"jct.action": name, "jct.step": index}) as span:
            outcome, result = self._call(name, params, index)
            if outcome is not None and outcome.error is not None:
                span.end(outcome.error)
        result_id = self._store_outputs(index, result) if result is not None else None
        error = outcome.error if outcome else None
        with self._rows:
            self._current = None
            step.status = InvocationStatus.FAILED if error else InvocationStatus.OK
            step.completed_at = self.rt.clock.now()
            step.error, step.result_artifact_id = error, result_id
            step.downstream_status = result.downstream_status if result else None
            _record_figures(step, result, self.ctx.output_tail.text())
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
        except TaskCancelled as exc:
            return AttemptResult(error="cancelled by operator", cancelled=True), _kept(exc)
        except AttemptInterrupted as exc:
            return AttemptResult(error=f"step {index} ({name}): {exc.reason}",
                                 interrupted=exc.reason), _kept(exc)
        except ActionError as exc:
            return (AttemptResult(error=f"step {index} ({name}): {exc}", retryable=exc.retryable),
                    _kept(exc))
        except JctError as exc:
            return AttemptResult(error=f"step {index} ({name}): {exc}", retryable=False), None
        except Exception as exc:  # a bug in an action must fail the step, not kill the worker
            logger.exception("action raised unexpectedly", extra={"event": "action_crashed"})
            return AttemptResult(error=f"step {index} ({name}): {type(exc).__name__}: {exc}",
                                 retryable=True), None

    def _store_outputs(self, index: int, result: ActionResult) -> str | None:
        """Store the step's report and outputs as ``step-<index>-<name>``; returns the id of
        its result artifact (``primary``, else the report)."""
        outputs = list(result.outputs)
        if result.report is not None:
            outputs.insert(0, Output("report", result.report_name, result.report,
                                     result.report_content_type))
        primary = result.primary or (result.report_name if result.report is not None else None)
        result_id = None
        for output in outputs:
            artifact_id = store_or_spool(self.rt, self.attempt, kind=output.kind,
                                         name=f"step-{index}-{output.name}", data=output.data,
                                         content_type=output.content_type)
            if output.name == primary:
                result_id = artifact_id
        return result_id


def _kept(exc: JctError) -> ActionResult | None:
    """What a failed or stopped step produced before it ended, if it kept any."""
    result = getattr(exc, "result", None)
    return result if isinstance(result, ActionResult) else None


def _record_figures(step: Invocation, result: ActionResult | None, tail: str) -> None:
    figures = result.figures if result is not None else None
    if figures is None:
        return
    step.exit_code, step.signal = figures.exit_code, figures.signal
    step.wall_s, step.cpu_s, step.max_rss_bytes = figures.wall_s, figures.cpu_s, figures.max_rss_bytes
    step.output_tail = tail

"""The outcome table: how an ended attempt leaves its task, for the finish and the rescuer."""

from __future__ import annotations

import pytest

from states import AttemptStatus, Event, Outcome, TaskStatus, attempt_outcome

A, T, E = AttemptStatus, TaskStatus, Event


@pytest.mark.parametrize(("case", "expected"), [
    # the worker's own finish
    ((True, False, False, False, False), Outcome(A.DONE, T.DONE, E.TASK_DONE)),
    ((True, False, True, False, False), Outcome(A.DONE, T.DONE, E.TASK_DONE)),
    ((False, True, True, False, False), Outcome(A.FAILED, T.QUEUED, E.RETRY_SCHEDULED)),
    ((False, True, False, False, False), Outcome(A.FAILED, T.FAILED, E.TASK_FAILED)),
    ((False, False, True, False, False), Outcome(A.FAILED, T.FAILED, E.TASK_FAILED)),
    # an operator's cancel wins over a retry, and over a success that raced it
    ((False, True, True, True, False), Outcome(A.CANCELLED, T.CANCELLED, E.TASK_CANCELLED)),
    ((True, False, True, True, False), Outcome(A.CANCELLED, T.CANCELLED, E.TASK_CANCELLED)),
    # the rescuer: the attempt is lost whatever happens to the task
    ((False, True, True, False, True), Outcome(A.LOST, T.QUEUED, E.RETRY_SCHEDULED)),
    ((False, True, False, False, True), Outcome(A.LOST, T.FAILED, E.TASK_FAILED)),
    ((False, True, True, True, True), Outcome(A.LOST, T.CANCELLED, E.TASK_CANCELLED)),
])
def test_outcome_table(case: tuple[bool, bool, bool, bool, bool], expected: Outcome) -> None:
    """``case`` is (ok, retryable, attempts left, cancelled, lost)."""
    ok, retryable, left, cancelled, lost = case
    assert attempt_outcome(ok=ok, retryable=retryable, attempts_left=left, cancelled=cancelled,
                           lost=lost) == expected


def test_terminal_statuses() -> None:
    assert {s for s in TaskStatus if s.terminal} == {T.DONE, T.FAILED, T.CANCELLED}

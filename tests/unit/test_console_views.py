"""The console's logic with plain values: the waterfall's layout, its formatting, the search box."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.console import parse_search
from api.console_format import ago, attrs_text, clock, count_text, filesize, format_ms, short_id, span_ms
from api.waterfall import Span, task_waterfall

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _done_task() -> dict[str, Any]:
    """Enqueued at 0 s, claimed at 2 s, one step from 2 to 6 s, done at 8 s."""
    job = {"id": "j-1", "attempt": 1, "status": "done", "worker": "vm:1", "error": None,
           "started_at": _at(2), "finished_at": _at(8)}
    action = {"job_id": "j-1", "step": 0, "action_name": "http", "status": "ok", "error": None,
              "started_at": _at(2), "completed_at": _at(6), "downstream_status": 200}
    events = [{"event": "task_enqueued", "ts": _at(0), "attrs": {}},
              {"event": "task_done", "ts": _at(8), "attrs": {}}]
    return {"status": "done", "created_at": _at(0), "finished_at": _at(8), "jobs": [job],
            "actions": [action], "events": events}


def test_a_task_waterfall_places_each_bar_on_one_axis() -> None:
    waterfall = task_waterfall(_done_task(), now=T0 + timedelta(hours=1))
    wait, attempt, action, events = waterfall.rows
    assert (wait.kind, wait.span, wait.duration_ms) == ("wait", Span(0.0, 25.0), 2000)
    assert (attempt.kind, attempt.span, attempt.note) == ("attempt", Span(25.0, 75.0), "on vm:1")
    assert (action.label, action.span, action.note) == ("step 0 · http", Span(25.0, 50.0), "HTTP 200")
    assert [(m.left, m.tone) for m in events.marks] == [(0.0, "info"), (100.0, "good")]
    assert waterfall.ticks[0] == (0.0, "+0 ms") and waterfall.ticks[-1] == (100.0, "+8.00 s")


def test_a_running_task_stretches_to_now_and_the_attempt_error_is_not_shown_twice() -> None:
    task = _done_task()
    task.update(status="running", finished_at=None)
    task["jobs"][0].update(status="failed", finished_at=_at(6), error="step 0 (http): boom")
    task["actions"][0].update(status="failed", error="step 0 (http): boom")
    waterfall = task_waterfall(task, now=T0 + timedelta(seconds=12))
    _, attempt, action, _ = waterfall.rows
    assert attempt.span == Span(16.667, 33.333), "2 s to 6 s on an axis from 0 to now (12 s)"
    assert attempt.error is None and action.error == "step 0 (http): boom"


@pytest.mark.parametrize(("ms", "text"), [(None, "—"), (999, "999 ms"), (1500, "1.50 s"),
                                          (125_000, "2 min 5 s"), (3_725_000, "1 h 2 min")])
def test_format_ms(ms: int | None, text: str) -> None:
    assert format_ms(ms) == text


def test_small_formatters() -> None:
    assert short_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736") == "4bf92f35"
    assert clock(_at(1.25)) == "12:00:01.250" and clock(None) == "—" and clock("garbage") == "garbage"
    assert span_ms(_at(0), _at(2.5)) == 2500 and span_ms(None, _at(1)) is None
    assert (filesize(10), filesize(2048), filesize(3 * 1024 ** 3)) == ("10 B", "2.0 KiB", "3.0 GiB")
    assert attrs_text({"a": "x", "b": None, "c": [1, 2]}) == [("a", "x"), ("c", "[1,2]")]
    assert ago(None) == "—"


@pytest.mark.parametrize(("typed", "uuid", "label", "name"), [
    ("", None, None, None),
    ("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", None, None),
    ("team: web", None, ("team", "web"), None),
    ("restart-web", None, None, "restart-web"),
])
def test_the_search_box_tells_ids_labels_and_names_apart(typed: str, uuid: str | None,
                                                          label: tuple[str, str] | None,
                                                          name: str | None) -> None:
    search = parse_search(typed)
    assert (search.uuid, search.label, search.name) == (uuid, label, name)


def test_a_count_past_the_cap_reads_as_the_cap_plus() -> None:
    assert count_text(0, 10_000) == "0"
    assert count_text(10_000, 10_000) == "10,000"
    assert count_text(10_001, 10_000) == "10,000+"

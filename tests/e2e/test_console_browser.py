"""The operator console in a real browser (Debian's Chromium driven by Playwright): from a trace
id to the task's whole story, its artifacts, and acting on it (cancel)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.downstream import Downstream
from harness.stack import Stack
from tests.e2e.conftest import DEADLINE_MS

pytestmark = pytest.mark.browser


def _enqueue(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(stack.api_url + "/enqueue", json=spec, timeout=30)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _http_task_spec(downstream: Downstream) -> dict[str, Any]:
    return {"name": "restart-web", "labels": {"team": "web", "suite": "console"}, "max_attempts": 1,
            "steps": [
                {"action": "echo", "params": {"message": "draining"}},
                {"action": "http", "params": {"method": "POST", "url": f"{downstream.url}/hook",
                                              "json": {"service": "web"}}},
                {"action": "sleep", "params": {"seconds": 0.3}},
            ]}


def test_from_trace_id_to_task_story_and_artifact(postgres_stack: Stack, downstream: Downstream,
                                                 page: Any, artifacts_dir: Path) -> None:
    """Search a trace id, open the task, see one bar per action with its outcome, and follow the
    artifact links to their content."""
    from playwright.sync_api import expect

    enqueued = _enqueue(postgres_stack, _http_task_spec(downstream))
    task_id, trace_id = enqueued["task_id"], enqueued["trace_id"]
    postgres_stack.wait_status(task_id)

    page.goto(postgres_stack.api_url + "/")
    expect(page.locator("table.tasks")).to_be_visible()
    page.fill('input[type="search"]', trace_id)
    page.press('input[type="search"]', "Enter")
    rows = page.locator("tr.task-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", task_id)
    page.screenshot(path=str(artifacts_dir / "console-search.png"), full_page=True)

    rows.first.locator("a.task-link").click()
    expect(page.locator(".task-page")).to_have_attribute("data-task-id", task_id)
    expect(page.locator("h1 .badge")).to_have_text("done")
    bars = page.locator('.wf-row[data-kind="action"]')
    expect(bars).to_have_count(3)
    for action in ("echo", "http", "sleep"):
        bar = page.locator(f'.wf-row[data-kind="action"][data-action="{action}"]')
        expect(bar.locator(".bar")).to_be_visible()
        expect(bar.locator(".outcome")).to_have_text("ok")
        expect(bar.locator(".took")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator('.wf-row[data-action="http"] .note')).to_have_text("HTTP 200")
    expect(page.locator('.wf-row[data-kind="attempt"]')).to_have_count(1)
    expect(page.locator(".error-box")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "console-task.png"), full_page=True)

    report = page.locator('tr.artifact-row[data-kind="report"]')
    expect(report).to_have_count(1)
    report.locator("a.artifact-open").click()
    expect(page.locator("body")).to_contain_text(f"{downstream.url}/hook")
    expect(page.locator("body")).to_contain_text(trace_id)
    page.go_back()

    log = page.locator('tr.artifact-row[data-kind="log"]')
    expect(log).to_have_count(1)
    with page.expect_download() as download:
        log.locator("a.artifact-download").click()
    assert trace_id in Path(download.value.path()).read_text(encoding="utf-8")
    log.locator("a.artifact-view").click()
    expect(page.locator("table.log tbody tr").first).to_be_visible()
    expect(page.locator("table.log")).to_contain_text("task_claimed")
    page.screenshot(path=str(artifacts_dir / "console-artifact.png"), full_page=True)


def test_cancel_a_running_task_from_its_page(postgres_stack: Stack, page: Any,
                                            artifacts_dir: Path) -> None:
    """The Cancel button on a running ``sleep`` task's page cancels it; the page follows live."""
    from playwright.sync_api import expect

    task_id = _enqueue(postgres_stack, {"name": "long-sleep", "steps": [
        {"action": "sleep", "params": {"seconds": 60}}]})["task_id"]
    postgres_stack.wait_status(task_id, ("running",))

    page.goto(f"{postgres_stack.api_url}/ui/tasks/{task_id}")
    expect(page.locator("h1 .badge")).to_have_text("running")
    expect(page.locator('.wf-row[data-kind="action"][data-action="sleep"] .outcome')).to_have_text("running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('form[data-action="cancel"] button')
    expect(page.locator("#flash")).to_contain_text("cancel")

    assert postgres_stack.wait_status(task_id, ("cancelled",), timeout=30)["status"] == "cancelled"
    expect(page.locator("h1 .badge")).to_have_text("cancelled")  # live refresh, no reload
    expect(page.locator('form[data-action="retry"]')).to_be_visible()
    events = requests.get(f"{postgres_stack.api_url}/tasks/{task_id}", timeout=30).json()["events"]
    assert "cancel_requested" in [event["event"] for event in events]
    page.screenshot(path=str(artifacts_dir / "console-cancelled.png"), full_page=True)


def test_trace_page_puts_every_task_on_one_timeline(postgres_stack: Stack, downstream: Downstream,
                                                    page: Any, artifacts_dir: Path) -> None:
    """A batch shares one trace id; its page shows each task as a bar with its actions."""
    from playwright.sync_api import expect

    batch = requests.post(postgres_stack.api_url + "/enqueue/batch", timeout=30, json={"tasks": [
        _http_task_spec(downstream),
        {"name": "warm-cache", "steps": [{"action": "echo", "params": {"message": "warm"}}]},
    ]}).json()
    trace_id = batch["trace_id"]
    for task in batch["tasks"]:
        postgres_stack.wait_status(task["task_id"])

    page.goto(f"{postgres_stack.api_url}/?q={trace_id}")
    page.click("a.trace-link")
    expect(page.locator(".trace-page")).to_have_attribute("data-trace-id", trace_id)
    expect(page.locator('.wf-row[data-kind="task"]')).to_have_count(2)
    expect(page.locator('.wf-row[data-kind="action"]')).to_have_count(4)
    expect(page.locator('table.timeline tr[data-event="task_done"]')).to_have_count(2)
    page.screenshot(path=str(artifacts_dir / "console-trace.png"), full_page=True)


def test_list_refreshes_live_and_escapes_what_users_typed(postgres_stack: Stack, page: Any) -> None:
    """A task enqueued while the filtered list is open appears without a reload; a name full of
    markup is shown as text, never run."""
    from playwright.sync_api import expect

    label = f"live-{uuid.uuid4().hex[:8]}"
    page.goto(f"{postgres_stack.api_url}/?q=suite:{label}")
    expect(page.locator("td.empty")).to_be_visible()
    name = '<img src=x onerror="document.body.dataset.pwned=1">'
    _enqueue(postgres_stack, {"name": name, "labels": {"suite": label},
                              "steps": [{"action": "echo", "params": {"message": "x"}}]})
    expect(page.locator("tr.task-row")).to_have_count(1)
    expect(page.locator("tr.task-row a.task-link")).to_have_text(name)
    assert page.locator("body").get_attribute("data-pwned") is None


def test_pages_read_with_javascript_off(postgres_stack: Stack, downstream: Downstream,
                                       browser: Any) -> None:
    """Reading needs no script: the search form, the task page and its timeline are plain HTML."""
    from playwright.sync_api import expect

    enqueued = _enqueue(postgres_stack, _http_task_spec(downstream))
    postgres_stack.wait_status(enqueued["task_id"])
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(DEADLINE_MS)
        page.goto(postgres_stack.api_url + "/")
        page.fill('input[type="search"]', enqueued["trace_id"])
        page.click('form.search button[type="submit"]')
        page.click("a.task-link")
        expect(page.locator('.wf-row[data-kind="action"]')).to_have_count(3)
        expect(page.locator("tr.artifact-row")).to_have_count(2)
        page.goto(f"{postgres_stack.api_url}/ui/tasks/{uuid.uuid4()}")
        expect(page.locator(".error-page")).to_contain_text("404")
    finally:
        context.close()


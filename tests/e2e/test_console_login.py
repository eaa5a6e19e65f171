"""The console with API tokens on, in Chromium: sign in with a token, get an HttpOnly,
SameSite=Strict session cookie, read and act (cancel) with the page's CSRF token; a write
without it is refused; a read token sees but cannot act; sign out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from harness.stack import Stack
from harness.wait import wait_until
from tests.e2e.conftest import OPERATE_TOKEN, READ_TOKEN

pytestmark = pytest.mark.browser

BEARER = {"Authorization": f"Bearer {OPERATE_TOKEN}"}


def _sleeping_task(stack: Stack) -> str:
    response = requests.post(stack.api_url + "/enqueue", headers=BEARER, timeout=30, json={
        "name": "login-sleep", "steps": [{"action": "sleep", "params": {"seconds": 60}}]})
    assert response.status_code == 202, response.text
    task_id = str(response.json()["task_id"])

    def running() -> bool:
        task = requests.get(f"{stack.api_url}/tasks/{task_id}", headers=BEARER, timeout=30).json()
        return bool(task["status"] == "running")
    wait_until(running, timeout=60, interval=0.2, what=f"task {task_id} running")
    return task_id


def _sign_in(page: Any, stack: Stack, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(stack.api_url + "/")
    expect(page.locator("form.login")).to_be_visible()  # sent to /login, not a bare 401
    assert "/login?next=" in page.url
    page.fill("#token", token)
    page.click('form.login button[type="submit"]')
    expect(page.locator("table.tasks")).to_be_visible()


def test_sign_in_act_with_csrf_and_sign_out(tokens_stack: Stack, page: Any,
                                           artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    stack = tokens_stack
    assert requests.get(stack.api_url + "/", timeout=30, allow_redirects=False).status_code == 302
    unauthorized = requests.get(stack.api_url + "/tasks", timeout=30)
    assert unauthorized.status_code == 401
    assert unauthorized.headers["WWW-Authenticate"] == 'Bearer realm="jct"'

    _sign_in(page, stack, OPERATE_TOKEN)
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("jct_session", True, "Strict")
    assert OPERATE_TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    expect(page.locator(".signed-in")).to_contain_text("ops")
    page.screenshot(path=str(artifacts_dir / "console-signed-in.png"), full_page=True)

    task_id, forged_target = _sleeping_task(stack), _sleeping_task(stack)
    page.goto(f"{stack.api_url}/ui/tasks/{task_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('form[data-action="cancel"] button')
    expect(page.locator("#flash")).to_contain_text("cancel requested")
    expect(page.locator("h1 .badge")).to_have_text("cancelled", timeout=30_000)
    task = requests.get(f"{stack.api_url}/tasks/{task_id}", headers=BEARER, timeout=30).json()
    assert any(e["event"] == "cancel_requested" and e["attrs"].get("by") == "ops"
               for e in task["events"]), "recorded under the signed-in token's name"

    # The session cookie goes along, the page's CSRF token does not: refused, nothing changes.
    forged = page.context.request.post(f"{stack.api_url}/tasks/{forged_target}/cancel")
    assert (forged.status, forged.json()["error"]) == (403, "csrf_failed")
    wrong = page.context.request.post(f"{stack.api_url}/tasks/{forged_target}/cancel",
                                      headers={"X-CSRF-Token": "guessed"})
    assert wrong.status == 403
    still = requests.get(f"{stack.api_url}/tasks/{forged_target}", headers=BEARER, timeout=30).json()
    assert still["status"] == "running" and not still["cancel_requested"]
    requests.post(f"{stack.api_url}/tasks/{forged_target}/cancel", headers=BEARER, timeout=30)

    page.click('.signed-in button[type="submit"]')
    expect(page.locator("form.login")).to_be_visible()
    assert page.context.cookies() == []
    page.goto(f"{stack.api_url}/ui/tasks/{task_id}")
    expect(page.locator("form.login")).to_be_visible()
    assert page.context.request.get(f"{stack.api_url}/tasks/{task_id}").status == 401


def test_a_read_token_signs_in_to_see_but_not_act(tokens_stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    stack = tokens_stack
    task_id = _sleeping_task(stack)
    _sign_in(page, stack, READ_TOKEN)
    page.goto(f"{stack.api_url}/ui/tasks/{task_id}")
    expect(page.locator("h1 .badge")).to_have_text("running")
    expect(page.locator('form[data-action="cancel"]')).to_have_count(0)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = page.context.request.post(f"{stack.api_url}/tasks/{task_id}/cancel",
                                        headers={"X-CSRF-Token": csrf})
    assert (refused.status, refused.json()["error"]) == (403, "forbidden")
    requests.post(f"{stack.api_url}/tasks/{task_id}/cancel", headers=BEARER, timeout=30)

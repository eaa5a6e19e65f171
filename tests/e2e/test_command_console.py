"""Commands seen from outside, on ``jct up`` with real bubblewrap: a running command's lines in
the console before it ends; the worked example of docs/command.md (check out a local
repository, run a script that edits it, see the diff in the console; its screenshot is taken
here), and the CLI listing and fetching the artifacts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.stack import JCT, Stack, start_stack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sources() -> Iterator[Path]:
    """A checkout root the sandbox's uid can read, holding ``app`` (``main``: one commit)."""
    root = Path(tempfile.mkdtemp(prefix="jct-e2e-sources-", dir="/var/tmp"))
    repo = root / "app"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "dev@example.com"],
                 ["config", "user.name", "dev"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    (repo / "config.ini").write_text("[web]\nreplicas = 2\nimage = web:1.4\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "web config"], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def command_stack(tmp_path_factory: pytest.TempPathFactory, sources: Path) -> Iterator[Stack]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is missing (make sandbox-tools installs it)")
    stack = start_stack(tmp_path_factory.mktemp("jct-cmd") / "home", JCT_WORKERS="1",
                        JCT_CHECKOUT_ROOTS=str(sources))
    yield stack
    assert stack.stop() == 0, f"jct up did not stop cleanly; see {stack.home / 'jct-up.out'}"


def _enqueue(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    response = stack.post("/enqueue", json=spec)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_a_running_commands_lines_appear_in_the_console_before_it_ends(
        command_stack: Stack, page: Any) -> None:
    """The task page, left open, shows the command's output as it prints, while the task is
    still running; when it ends, its exit code and resource use."""
    from playwright.sync_api import expect

    script = "for i in 1 2 3; do echo tick-$i; sleep 0.4; done; touch go-on; while :; do " \
             "[ -e stop ] && break; sleep 0.2; done"
    # The command waits for a file nothing creates, so it runs until the test has seen its
    # lines; then its timeout ends it.
    enqueued = _enqueue(command_stack, {"name": "ticker", "max_attempts": 1, "steps": [
        {"action": "command", "params": {"shell": script, "timeout_s": 8}}]})
    page.goto(f"{command_stack.api_url}/ui/tasks/{enqueued['task_id']}")
    run = page.locator(".command-run").first
    expect(run.locator("pre.tail")).to_contain_text("tick-3", timeout=15_000)
    assert command_stack.get(f"/tasks/{enqueued['task_id']}").json()["status"] == "running"
    expect(page.locator("h1 .badge")).to_have_text("running")

    command_stack.wait_status(enqueued["task_id"], timeout=30)
    expect(page.locator("h1 .badge")).to_have_text("failed", timeout=15_000)
    expect(run.locator(".usage .wall")).to_contain_text("s")
    expect(page.locator(".error-box")).to_contain_text("timed out after 8.0s")


EDIT_SCRIPT = """set -e
sed -i 's/replicas = 2/replicas = 3/' config.ini
echo "scaled web to 3 replicas"
printf '{"service": "web", "replicas": 3, "trace": "%s"}' "$JCT_TRACE_ID" > "$JCT_REPORT"
"""


def test_worked_example_checkout_edit_and_the_diff_in_the_console(
        command_stack: Stack, sources: Path, page: Any, artifacts_dir: Path) -> None:
    """docs/command.md: a checkout of a local repository, a script that edits it; the console
    shows the command's exit code, its artifacts, the diff as a diff and the report as a
    table; ``jct artifacts`` lists them and ``jct artifact -o`` fetches the patch."""
    from playwright.sync_api import expect

    spec = {"name": "scale-web", "max_attempts": 1, "steps": [
        {"action": "checkout", "params": {"url": str(sources / "app"), "ref": "main"}},
        {"action": "command", "params": {"argv": ["sh", "-c", EDIT_SCRIPT], "workdir": "repo"}}]}
    enqueued = _enqueue(command_stack, spec)
    task_id, trace_id = enqueued["task_id"], enqueued["trace_id"]
    task = command_stack.wait_status(task_id)
    assert task["status"] == "done", task["error"]

    page.goto(f"{command_stack.api_url}/ui/tasks/{task_id}")
    runs = page.locator(".command-run")
    expect(runs).to_have_count(2)
    command = page.locator('.command-run[data-step="1"]')
    expect(command.locator(".exit-code")).to_have_text("exit 0")
    expect(command.locator("pre.tail")).to_contain_text("scaled web to 3 replicas")
    expect(command.locator(".command-artifacts li")).to_have_count(3)
    page.screenshot(path=str(artifacts_dir / "command-task.png"), full_page=True)

    command.locator('li[data-kind="diff"] a.artifact-view').click()
    expect(page.locator("pre.diff .diff-del")).to_have_text("-replicas = 2")
    expect(page.locator("pre.diff .diff-add")).to_have_text("+replicas = 3")
    page.screenshot(path=str(artifacts_dir / "command-diff.png"), full_page=True)
    page.go_back()
    page.locator('.command-run[data-step="1"] li[data-kind="report"] a.artifact-view').click()
    expect(page.locator("table.report")).to_contain_text(trace_id)

    env = {**os.environ, "JCT_HOME": str(command_stack.home)}
    env.pop("JCT_DATABASE_URL", None)
    listed = subprocess.run([JCT, "artifacts", task_id], env=env, capture_output=True, text=True,
                            check=True).stdout
    diff_line = next(line for line in listed.splitlines() if "step-1-diff-repo.patch" in line)
    patch = artifacts_dir / "command-example.patch"
    subprocess.run([JCT, "artifact", diff_line.split()[0], "-o", str(patch)], env=env, check=True,
                   capture_output=True)
    assert "+replicas = 3" in patch.read_text()

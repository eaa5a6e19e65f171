"""A run from start to end: lines arrive while the command runs; cancel, timeout and a failing
worker kill the whole tree; exit codes and signals are reported as they happened."""

from __future__ import annotations

import contextlib
import secrets
import signal
import time

import psutil
import pytest

from errors import SandboxError
from sandbox.host import SandboxHost
from sandbox.limits import Limits
from sandbox.process import SandboxCommand, run
from sandbox.workspace import Workspace
from tests.integration.sandbox_runs.conftest import processes_with, still_running


def test_lines_arrive_while_the_command_runs(workspace: Workspace, host: SandboxHost) -> None:
    """The command waits for a file the test creates only when the first line has reached
    ``on_line``: if lines were delivered at the end, it would wait until its time limit."""
    events: list[str] = []

    def on_line(stream: str, line: str) -> None:
        events.append(f"{stream}:{line}")
        if line == "first":
            (workspace.path / "go").touch()
            events.append("go")

    result = run(SandboxCommand(
        shell="echo first; echo warn >&2; while [ ! -e go ]; do sleep 0.01; done; echo second",
        limits=Limits(wall_s=120)), workspace, host=host, on_line=on_line)
    events.append("returned")
    assert result.killed_reason is None and result.exit_code == 0
    assert events.index("stdout:first") < events.index("go") < events.index("stdout:second")
    assert events[-1] == "returned" and "stderr:warn" in events
    assert result.output.index(b"first") < result.output.index(b"second")
    assert result.stderr_tail == ["warn"]


TREE = "sleep 1000 & python3 -c 'import time; time.sleep(1000)' {marker} & echo ready; wait"


def tree_command(marker: str, limits: Limits | None = None) -> SandboxCommand:
    return SandboxCommand(shell=TREE.format(marker=marker), limits=limits or Limits())


class TreeWatch:
    """On the ``ready`` line, notes the sandbox's processes as the host sees them."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        # Processes this test process had already (the session's other fixtures: a whole
        # `jct up` for the e2e tier) are not the sandbox's.
        self.before = {proc.pid for proc in psutil.Process().children(recursive=True)}
        self.ready = False
        self.procs: list[psutil.Process] = []
        self.names: set[str] = set()

    def on_line(self, stream: str, line: str) -> None:
        if line == "ready":
            # The background jobs may not have exec'd yet (a forked sh is still named sh):
            # wait until both show as the programs they run, on a busy machine too.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                self._look()
                if processes_with(self.marker) and "sleep" in self.names:
                    break
                time.sleep(0.01)
            self.ready = True

    def _look(self) -> None:
        self.procs = [proc for proc in psutil.Process().children(recursive=True)
                      if proc.pid not in self.before]
        self.names = set()
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                self.names.add(proc.name())


def test_cancel_kills_the_whole_tree(workspace: Workspace, any_host: SandboxHost) -> None:
    marker = f"cancel-{secrets.token_hex(4)}"
    watch = TreeWatch(marker)
    result = run(tree_command(marker), workspace, host=any_host, on_line=watch.on_line,
                 should_stop=lambda: "cancelled" if watch.ready else None)
    assert result.killed_reason == "cancelled"
    assert result.signal == signal.SIGKILL and result.exit_code is None
    # bubblewrap, the launcher (python3), sh, sleep, python3
    assert {"bwrap", "sh", "sleep", "python3"} <= watch.names and len(watch.procs) >= 5
    assert not still_running(watch.procs)
    assert not processes_with(marker)


def test_worker_shutdown_is_a_reason_like_cancel(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"shutdown-{secrets.token_hex(4)}"
    watch = TreeWatch(marker)
    result = run(tree_command(marker), workspace, host=host, on_line=watch.on_line,
                 should_stop=lambda: "worker_shutdown" if watch.ready else None)
    assert result.killed_reason == "worker_shutdown"
    assert watch.procs and not still_running(watch.procs)


def test_timeout_kills_the_whole_tree(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"timeout-{secrets.token_hex(4)}"
    watch = TreeWatch(marker)
    result = run(tree_command(marker, Limits(wall_s=3)), workspace, host=host, on_line=watch.on_line)
    assert result.killed_reason == "timeout"
    assert result.signal == signal.SIGKILL
    assert not still_running(watch.procs)
    assert not processes_with(marker)


def test_the_tasks_deadline_also_stops_it(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"deadline-{secrets.token_hex(4)}"
    result = run(tree_command(marker), workspace, host=host, deadline=time.monotonic() + 2)
    assert result.killed_reason == "timeout"
    assert not processes_with(marker)


def test_a_failing_callback_still_kills_the_tree(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"raise-{secrets.token_hex(4)}"
    watch = TreeWatch(marker)

    def on_line(stream: str, line: str) -> None:
        watch.on_line(stream, line)
        if watch.ready:
            raise RuntimeError("the worker's log sink failed")

    with pytest.raises(RuntimeError, match="log sink"):
        run(tree_command(marker), workspace, host=host, on_line=on_line)
    assert watch.procs and not still_running(watch.procs)
    assert not processes_with(marker)


def test_background_processes_end_with_the_command(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"orphan-{secrets.token_hex(4)}"
    result = run(SandboxCommand(shell=f"setsid python3 -c 'import time; time.sleep(1000)' {marker} "
                                      "</dev/null >/dev/null 2>&1 & echo started"),
                 workspace, host=host)
    assert result.ok and result.output == b"started\n"
    assert not processes_with(marker)


@pytest.mark.parametrize(("script", "exit_code", "signal_number"), [
    ("exit 0", 0, None),
    ("exit 3", 3, None),
    ("kill -TERM $$", None, signal.SIGTERM),
    ("kill -KILL $$", None, signal.SIGKILL),
    ("kill -SEGV $$", None, signal.SIGSEGV),
])
def test_exit_codes_and_signals(workspace: Workspace, host: SandboxHost, script: str,
                                exit_code: int | None, signal_number: int | None) -> None:
    result = run(SandboxCommand(shell=script), workspace, host=host)
    assert (result.exit_code, result.signal, result.killed_reason) == (exit_code, signal_number, None)
    assert result.ok is (exit_code == 0)
    assert result.wall_s > 0 and result.cpu_s >= 0 and result.max_rss_bytes > 0


def test_a_command_that_cannot_start_reports_127(workspace: Workspace, host: SandboxHost) -> None:
    missing = run(SandboxCommand(argv=["no-such-tool"]), workspace, host=host)
    assert missing.exit_code == 127
    assert "no-such-tool" in missing.stderr_tail[-1]
    no_dir = run(SandboxCommand(argv=["true"], workdir="nowhere"), workspace, host=host)
    assert no_dir.exit_code == 127 and "/workspace/nowhere" in no_dir.stderr_tail[-1]


def test_resource_use_is_the_whole_trees(workspace: Workspace, host: SandboxHost) -> None:
    """A child that burns CPU and allocates, then exits: its use counts in the run's figures."""
    script = ("python3 -c 'b = b\"x\" * (64 << 20)\nn = 0\nwhile n < 3 * 10**7: n += 1' ; echo done")
    result = run(SandboxCommand(shell=script), workspace, host=host)
    assert result.ok
    assert result.cpu_s > 0.5
    assert result.max_rss_bytes >= 64 << 20


def test_a_sandbox_that_cannot_be_set_up_is_an_error(workspace: Workspace, host: SandboxHost) -> None:
    with pytest.raises(SandboxError, match="did not start"):
        run(SandboxCommand(argv=["true"]), workspace, host=host,
            ro_binds=[(workspace.base / "does-not-exist", "/jct/src")])

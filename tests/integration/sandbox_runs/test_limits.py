"""Runaway commands are stopped by their limits, say which one, and leave no process behind."""

from __future__ import annotations

import secrets
import signal

import psutil

from sandbox.host import SandboxHost
from sandbox.limits import Limits
from sandbox.process import SandboxCommand, SandboxResult, run
from sandbox.workspace import Workspace
from tests.integration.sandbox_runs.conftest import processes_with, still_running


class Watcher:
    """Collects, while the run goes on, the host processes carrying a marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.seen: list[psutil.Process] = []

    def __call__(self) -> None:
        for proc in processes_with(self.marker):
            if proc.pid not in {p.pid for p in self.seen}:
                self.seen.append(proc)


def run_watched(script: str, limits: Limits, workspace: Workspace, host: SandboxHost,
                marker: str) -> tuple[SandboxResult, Watcher]:
    watcher = Watcher(marker)

    def probe() -> str | None:
        watcher()
        return None

    result = run(SandboxCommand(argv=["python3", "-c", script, marker], limits=limits),
                 workspace, host=host, should_stop=probe)
    return result, watcher


FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""


def test_a_fork_bomb_is_stopped_by_the_process_limit(workspace: Workspace, any_host: SandboxHost) -> None:
    marker = f"bomb-{secrets.token_hex(4)}"
    result, watcher = run_watched(FORK_BOMB, Limits(processes=24, wall_s=120), workspace, any_host, marker)
    assert result.killed_reason == "processes"
    assert result.signal == signal.SIGKILL and result.exit_code is None
    assert len(watcher.seen) > 1
    assert not processes_with(marker)
    assert not still_running(watcher.seen)


def test_the_process_limit_is_the_sandboxs_own(workspace: Workspace, host: SandboxHost) -> None:
    """Forks beyond the limit fail inside, while the same uid on the host is not held by it."""
    script = ("import os, sys\n"
              "kids = []\n"
              "for i in range(20):\n"
              "    try:\n"
              "        pid = os.fork()\n"
              "    except OSError:\n"
              "        print('refused-after', len(kids)); break\n"
              "    if pid == 0:\n"
              "        os.read(0, 1) if False else __import__('time').sleep(30); os._exit(0)\n"
              "    kids.append(pid)\n"
              "for pid in kids: os.kill(pid, 9)\n")
    result = run(SandboxCommand(argv=["python3", "-c", script], limits=Limits(processes=6)),
                 workspace, host=host)
    # 6 tasks for the command: python itself and 5 children (the launcher is not counted in)
    assert result.output == b"refused-after 5\n", result


MEMORY_HOG = """
chunks = []
while True:
    chunks.append(b"x" * (1 << 20))
"""


def test_a_memory_hog_is_stopped_by_the_memory_limit(workspace: Workspace, any_host: SandboxHost) -> None:
    marker = f"hog-{secrets.token_hex(4)}"
    result, watcher = run_watched(MEMORY_HOG, Limits(memory_bytes=96 << 20, wall_s=120),
                                  workspace, any_host, marker)
    assert result.killed_reason == "memory", result
    assert result.max_rss_bytes > 96 << 20
    assert not still_running(watcher.seen)


def test_memory_is_summed_over_the_sandboxs_processes(workspace: Workspace, any_host: SandboxHost) -> None:
    """Four processes of 40 MiB each: none over the 96 MiB budget alone, all together they are."""
    script = ("import os, time\n"
              "for i in range(3):\n"
              "    if os.fork() == 0: break\n"
              "block = b'x' * (40 << 20)\n"
              "print('holding', flush=True)\n"
              "time.sleep(600)\n")
    result = run(SandboxCommand(argv=["python3", "-c", script],
                                limits=Limits(memory_bytes=96 << 20, wall_s=120)),
                 workspace, host=any_host)
    assert result.killed_reason == "memory", result


def test_an_output_flood_is_stopped_at_the_output_cap(workspace: Workspace, host: SandboxHost) -> None:
    lines: list[str] = []
    result = run(SandboxCommand(argv=["yes", "flood"], limits=Limits(output_bytes=256 << 10, wall_s=120)),
                 workspace, host=host, on_line=lambda stream, line: lines.append(line))
    assert result.killed_reason == "output_limit"
    assert result.output_truncated
    kept, marker = result.output[:256 << 10], result.output[256 << 10:]
    assert kept == (b"flood\n" * (256 << 10))[:256 << 10]
    assert marker.startswith(b"\n[jct: output truncated at 262144 bytes")
    whole, cut = divmod(256 << 10, len(b"flood\n"))
    assert lines == ["flood"] * whole + ["flood"[:cut]]  # the cut line is passed on too


def test_cpu_time_is_limited(workspace: Workspace, host: SandboxHost) -> None:
    result = run(SandboxCommand(argv=["python3", "-c", "while True: pass"],
                                limits=Limits(cpu_s=1, wall_s=120)), workspace, host=host)
    assert result.killed_reason == "cpu"
    # RLIMIT_CPU's SIGXCPU, or the worker's kill when its tree-wide sample sees the limit first
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert result.cpu_s > 0.5  # rusage samples differently from the rlimit


def test_cpu_time_is_limited_across_processes(workspace: Workspace, any_host: SandboxHost) -> None:
    """Two busy processes: each stays under the per-process RLIMIT_CPU, the sum does not."""
    script = ("import os\n"
              "os.fork()\n"
              "while True: pass\n")
    result = run(SandboxCommand(argv=["python3", "-c", script],
                                limits=Limits(cpu_s=3, wall_s=120)), workspace, host=any_host)
    assert result.killed_reason == "cpu"
    assert result.cpu_s >= 3


def test_the_file_size_limit(workspace: Workspace, host: SandboxHost) -> None:
    result = run(SandboxCommand(shell="head -c 3000000 /dev/zero > big",
                                limits=Limits(file_size_bytes=1 << 20)), workspace, host=host)
    assert result.killed_reason == "file_size"
    assert (workspace.path / "big").stat().st_size == 1 << 20

"""``JCT_SANDBOX=none``: a command run directly on the worker's host, with the same inputs and
result as a sandboxed run (``process.run``) and none of its isolation.

What still holds: the workspace as the working directory and ``HOME``, an environment of the
spec's variables only (nothing of the worker's), the wall-time deadline, the stop probe, the
output cap, per-process rlimits (CPU, file size, open files), and the kill of the command's
process group on stop. What does not: file-system, user, PID and network isolation (the
command reads and reaches whatever the worker's uid can; ``network`` is not enforced), memory
and process limits, and a kill of processes that left the group. For development hosts without
bubblewrap only; the worker says so at start-up."""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from errors import GitFailed, PathEscape, SandboxError, SpecInvalid
from sandbox.bwrap import SANDBOX_REPORT, SANDBOX_WORKSPACE
from sandbox.git import COMMIT, GIT, GIT_ENV, REF, Checkout, redact
from sandbox.limits import Limits
from sandbox.output_lines import OnLine, OutputLines
from sandbox.paths import confined_parts
from sandbox.process import (
    CHUNK,
    SandboxCommand,
    SandboxResult,
    ShouldStop,
)
from sandbox.workspace import REPORT_NAME, Collected, Workspace

HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
TICK_S = 0.05


def run(command: SandboxCommand, workspace: Workspace, *, on_line: OnLine | None = None,
        should_stop: ShouldStop | None = None, deadline: float | None = None) -> SandboxResult:
    env = {**command.sandbox_env(), "PATH": HOST_PATH, "HOME": str(workspace.path),
           "JCT_REPORT": str(workspace.out / REPORT_NAME)}
    cwd = workspace.path.joinpath(*confined_parts(command.workdir, "workdir", allow_empty=True))
    argv = [_host_path(arg, workspace) for arg in command.full_argv()]
    return _Run(command.limits, on_line, should_stop, deadline).run(argv, env, cwd)


class _Run:
    def __init__(self, limits: Limits, on_line: OnLine | None, should_stop: ShouldStop | None,
                 deadline: float | None) -> None:
        self.limits, self.should_stop = limits, should_stop
        self.started = time.monotonic()
        self.deadline = min(self.started + limits.wall_s, deadline or float("inf"))
        self.lines = OutputLines(on_line, int(limits.output_bytes))
        self.killed_reason: str | None = None

    def run(self, argv: list[str], env: dict[str, str], cwd: Path) -> SandboxResult:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise SandboxError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        for name, (soft, hard) in self.limits.rlimits().items():
            if name in ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE"):
                with contextlib.suppress(OSError, ValueError):
                    resource.prlimit(proc.pid, getattr(resource, name), (soft, hard))
        try:
            self._pump(proc)
        finally:
            # Whatever is left of the group (the command is reaped below, never polled here).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        code = proc.returncode
        return SandboxResult(
            exit_code=code if code >= 0 else None, signal=-code if code < 0 else None,
            wall_s=time.monotonic() - self.started, cpu_s=usage.ru_utime + usage.ru_stime,
            max_rss_bytes=usage.ru_maxrss * 1024, output=self.lines.output,
            stderr_tail=list(self.lines.stderr_tail), killed_reason=self.killed_reason,
            output_truncated=self.lines.truncated)

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
            open_streams = 2
            while open_streams and self.killed_reason is None:
                for key, _ in selector.select(TICK_S):
                    data = os.read(key.fd, CHUNK)
                    if data:
                        self._take(key.data, data)
                    else:
                        selector.unregister(key.fileobj)
                        self.lines.flush(key.data)
                        open_streams -= 1
                reason = self.should_stop() if self.should_stop else None
                if reason is None and time.monotonic() >= self.deadline:
                    reason = "timeout"
                if reason is not None and self.killed_reason is None:
                    self.killed_reason = reason
        proc.stdout.close()
        proc.stderr.close()

    def _take(self, stream: str, data: bytes) -> None:
        if self.lines.take(stream, data):
            self.killed_reason = "output_limit"


def _host_path(arg: str, workspace: Workspace) -> str:
    """The sandbox's ``/workspace`` and ``$JCT_REPORT`` as the host's paths."""
    if arg == SANDBOX_REPORT:
        return str(workspace.out / REPORT_NAME)
    if arg == SANDBOX_WORKSPACE or arg.startswith(SANDBOX_WORKSPACE + "/"):
        return str(workspace.path) + arg[len(SANDBOX_WORKSPACE):]
    return arg


def checkout(workspace: Workspace, url: str, ref: str, dest: str, *,
             allowed_roots: Sequence[Path], env: Mapping[str, str], limits: Limits,
             on_line: OnLine | None, should_stop: ShouldStop | None,
             deadline: float | None) -> Checkout:
    """``git.checkout`` without the sandbox: git runs on the host, in the workspace."""
    parts = confined_parts(dest, "checkout.dest")
    if not REF.match(ref):
        raise SpecInvalid("checkout.ref", "a branch, tag or commit name")
    source = _source(url, allowed_roots)
    git = " ".join(GIT)
    script = (f'set -e\n{git} clone --no-checkout --no-hardlinks --quiet -- "$1" "$2"\ncd "$2"\n'
              f'commit=$({git} rev-parse --verify --quiet "$3^{{commit}}" || '
              f'{git} rev-parse --verify --quiet "origin/$3^{{commit}}") || '
              '{ echo "jct: no commit for ref $3" >&2; exit 2; }\n'
              f'{git} checkout --quiet --detach "$commit" --\necho "$commit"\n')
    target = str(workspace.path.joinpath(*parts))
    command = SandboxCommand(argv=["/bin/sh", "-c", script, "sh", source, target, ref],
                             env={**env, **GIT_ENV}, limits=limits)
    result = run(command, workspace, on_line=on_line, should_stop=should_stop, deadline=deadline)
    lines = result.output.decode(errors="replace").split()
    commit = lines[-1] if lines else ""
    if not result.ok or not COMMIT.match(commit):
        raise GitFailed(f"checkout of {redact(url)} at {ref!r} failed: exit {result.exit_code} "
                        + " | ".join(result.stderr_tail[-5:]), result=result)
    workspace.checkouts["/".join(parts)] = commit
    return Checkout(dest="/".join(parts), commit=commit, result=result)


def diff(workspace: Workspace, dest: str, *, max_bytes: int, should_stop: ShouldStop | None,
         deadline: float | None) -> Collected:
    base = workspace.checkouts[dest]
    git = " ".join(GIT)
    script = (f'set -e\ncd "$1"\n{git} add --intent-to-add --all\n'
              f'{git} diff --no-ext-diff --no-textconv --no-color --binary "$2" --\n')
    command = SandboxCommand(argv=["/bin/sh", "-c", script, "sh",
                                   str(workspace.path.joinpath(*dest.split("/"))), base],
                             env=GIT_ENV, limits=Limits(wall_s=120, output_bytes=max_bytes))
    result = run(command, workspace, should_stop=should_stop, deadline=deadline)
    if result.exit_code != 0 and result.killed_reason != "output_limit":
        raise GitFailed(f"diff of {dest!r} failed: exit {result.exit_code}", result=result)
    patch = result.output[:max_bytes]
    return Collected(dest, patch, len(result.output), result.killed_reason == "output_limit")


def _source(url: str, allowed_roots: Sequence[Path]) -> str:
    if url.startswith("/") or url.startswith("file://"):
        real = Path(os.path.realpath(urlsplit(url).path if url.startswith("file://") else url))
        if not any(real.is_relative_to(os.path.realpath(root)) for root in allowed_roots):
            raise PathEscape(f"checkout.url: {url!r} is not under an allowed source root")
        return str(real)
    if urlsplit(url).scheme not in ("http", "https"):
        raise SpecInvalid("checkout.url", "an http(s):// URL or a local path under an allowed root")
    return url

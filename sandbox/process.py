"""One command run in a bubblewrap sandbox, start to end: its output streamed line by line as it
arrives, its limits watched, its whole process tree killed on cancel, timeout, shutdown or a
limit, and how it ended (exit code or signal, resource use, why it was stopped) reported.

    result = run(SandboxCommand(argv=["make", "check"], workdir="repo", env={"STAGE": "ci"}),
                 workspace, host=host, on_line=emit, should_stop=probe, deadline=task_deadline)

``should_stop`` returns a reason (``"cancelled"``, ``"worker_shutdown"``, ``"lease_lost"``…)
or None; it is asked every ``host.tick_s``. ``deadline`` is a ``time.monotonic()`` instant (the
task's), on top of ``limits.wall_s``. ``on_line(stream, line)`` is called in this thread for
each line of ``stdout``/``stderr`` as it arrives. A command that fails is a result, not an
exception: ``SandboxError`` means the sandbox itself could not be used."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from errors import SandboxError, SpecInvalid
from sandbox import launcher
from sandbox.bwrap import (
    SANDBOX_PATH,
    SANDBOX_PROXY_SOCKET,
    SANDBOX_REPORT,
    SANDBOX_WORKSPACE,
    BwrapPlan,
    Fds,
    build_argv,
)
from sandbox.cgroup import RunCgroup
from sandbox.host import SandboxHost, popen_identity
from sandbox.limits import Limits
from sandbox.output_lines import OnLine, OutputLines
from sandbox.paths import confined_parts
from sandbox.proxy import Allow, Connect, SandboxProxy
from sandbox.tree import namespace_pids, usage
from sandbox.workspace import Workspace

ShouldStop = Callable[[], str | None]

CHUNK = 65536
STARTUP_TIMEOUT_S = 30.0
SAMPLE_COST_FACTOR = 5  # the tree is sampled at most 1/5 of the time
DRAIN_TIMEOUT_S = 10.0  # after the kill, how long the pipes may take to close
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = frozenset({"JCT_REPORT", "JCT_TRACE_ID", "JCT_TASK_ID", "TRACEPARENT", "http_proxy",
                          "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"})
LAUNCHER_SOURCE = Path(launcher.__file__).read_bytes()


@dataclass(frozen=True)
class SandboxCommand:
    """What to run: ``argv`` (no shell), or ``shell`` (a script for ``/bin/sh -c``)."""

    argv: Sequence[str] | None = None
    shell: str | None = None
    workdir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    trace_id: str | None = None
    task_id: str | None = None
    traceparent: str | None = None

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.shell is None):
            raise SpecInvalid("argv", "give argv or shell, not both or neither")
        if self.argv is not None and (not self.argv or not all(
                isinstance(a, str) and "\x00" not in a for a in self.argv)):
            raise SpecInvalid("argv", "must be a non-empty list of strings without NUL")
        if self.shell is not None and "\x00" in self.shell:
            raise SpecInvalid("shell", "must not contain NUL")
        confined_parts(self.workdir, "workdir", allow_empty=True)
        for name, value in self.env.items():
            if not ENV_NAME.match(name) or not isinstance(value, str) or "\x00" in value:
                raise SpecInvalid(f"env.{name}", "names are [A-Za-z_][A-Za-z0-9_]*, values strings")
            if name in RESERVED_ENV:
                raise SpecInvalid(f"env.{name}", "is set by the sandbox")

    def full_argv(self) -> list[str]:
        return list(self.argv) if self.argv is not None else ["/bin/sh", "-c", self.shell or ""]

    def sandbox_env(self) -> dict[str, str]:
        """The command's whole environment: nothing of the worker's."""
        env = {"PATH": SANDBOX_PATH, "HOME": SANDBOX_WORKSPACE, **self.env,
               "JCT_REPORT": SANDBOX_REPORT}
        for name, value in (("JCT_TRACE_ID", self.trace_id), ("JCT_TASK_ID", self.task_id),
                            ("TRACEPARENT", self.traceparent)):
            if value:
                env[name] = value
        return env

    def sandbox_cwd(self) -> str:
        return "/".join((SANDBOX_WORKSPACE, *confined_parts(self.workdir, "workdir", allow_empty=True)))


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None
    signal: int | None
    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    output: bytes  # stdout and stderr interleaved in arrival order, capped
    stderr_tail: list[str]
    killed_reason: str | None  # why the sandbox stopped it, or the limit it ran into
    output_truncated: bool = False
    proxy_decisions: list[tuple[str, int, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


def run(command: SandboxCommand, workspace: Workspace, *, host: SandboxHost,
        on_line: OnLine | None = None, should_stop: ShouldStop | None = None,
        deadline: float | None = None, allow: Allow | None = None, connect: Connect | None = None,
        ro_binds: Sequence[tuple[Path, str]] = ()) -> SandboxResult:
    """Run ``command`` in ``workspace``. ``network=True`` needs ``allow`` (the proxy asks it for
    every destination) unless the host shares its network namespace. ``ro_binds``: extra
    (host path, sandbox path) pairs the sandbox may read."""
    proxied = command.network and not host.share_host_network
    if proxied and allow is None:
        raise SandboxError("network=true needs an allow(host, port) callback for the proxy")
    proxy = None
    if proxied and allow is not None:
        proxy = SandboxProxy(workspace.run_dir / "proxy.sock", allow, connect=connect,
                             owner=host.owner).start()
    try:
        sandbox = _Sandbox(command, workspace, host, proxy=proxy, ro_binds=ro_binds,
                           on_line=on_line, should_stop=should_stop, deadline=deadline)
        return sandbox.run()
    finally:
        if proxy is not None:
            proxy.stop()


# What a run reports for a process whose usage could not be collected.
_NO_RUSAGE = types.SimpleNamespace(ru_utime=0.0, ru_stime=0.0, ru_maxrss=0)


class _Sandbox:
    """The state of one run: pipes, processes, what has been read, why it was stopped."""

    def __init__(self, command: SandboxCommand, workspace: Workspace, host: SandboxHost, *,
                 proxy: SandboxProxy | None, ro_binds: Sequence[tuple[Path, str]],
                 on_line: OnLine | None, should_stop: ShouldStop | None,
                 deadline: float | None) -> None:
        self.command = command
        self.limits = command.limits
        self.workspace = workspace
        self.host = host
        self.proxy = proxy
        self.ro_binds = ro_binds
        self.on_line = on_line
        self.should_stop = should_stop
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.wall_s
        if deadline is not None:
            self.deadline = min(self.deadline, deadline)
        self.killed_reason: str | None = None
        self.lines = OutputLines(on_line, int(self.limits.output_bytes))
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pidfd: int | None = None
        self.pid_namespace: int | None = None
        self.cgroup: RunCgroup | None = None
        self.peak_rss = 0
        self.sampled_cpu = 0.0  # the tree's CPU at the last sample: rusage misses what a kill reaps
        self.pinned_ticks = 0
        self.next_watch = self.started
        self.next_sample = self.started

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> SandboxResult:
        spec = json.dumps({
            "argv": self.command.full_argv(), "env": self.command.sandbox_env(),
            "cwd": self.command.sandbox_cwd(), "rlimits": self.limits.rlimits(),
            "proxy_socket": SANDBOX_PROXY_SOCKET if self.proxy else None,
        }).encode()
        fds: list[int] = []
        try:
            launcher_fd = _memfd("jct-launcher", LAUNCHER_SOURCE)
            fds.append(launcher_fd)
            spec_r, spec_w = _pipe(fds)
            status_r, status_w = _pipe(fds)
            info_r, info_w = _pipe(fds)
            block_r, block_w = _pipe(fds)
            child_fds = Fds(launcher=launcher_fd, spec=spec_r, status=status_w, info=info_w,
                            block=block_r)
            if self.host.cgroup is not None:
                self.cgroup = RunCgroup(self.host.cgroup, self.limits)
            self._spawn(child_fds)
            for fd in (launcher_fd, spec_r, status_w, info_w, block_r):
                fds.remove(fd)
                os.close(fd)
            self._release(info_r, block_w)
            fds.remove(block_w)
            self._pump(spec_w, spec, fds)
            status, rusage = self._reap()
            launcher_status = _read_status(status_r)
            return self._result(status, rusage, launcher_status)
        finally:
            try:
                self._kill_if_running()
            finally:
                self._close(fds)

    def _close(self, fds: list[int]) -> None:
        """Release what the run held — pipes, the pidfd, its cgroup — whatever happened."""
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.init_pidfd is not None:
            os.close(self.init_pidfd)
        if self.cgroup is not None:
            self.cgroup.remove()

    def _spawn(self, fds: Fds) -> None:
        plan = BwrapPlan(
            bwrap=self.host.bwrap, python=self.host.python, workspace=self.workspace.path,
            out=self.workspace.out, empty_file=self.workspace.empty_file, fds=fds,
            tmp_bytes=int(self.limits.memory_bytes),
            system=self.host.system, masks=self.host.masks,
            proxy_socket=self.proxy.path if self.proxy else None,
            share_host_network=self.command.network and self.host.share_host_network,
            ro_binds=self.ro_binds)
        user, group, extra_groups = popen_identity(self.host.run_as)
        try:
            self.proc = subprocess.Popen(
                build_argv(plan), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(fds.launcher, fds.spec, fds.status, fds.info, fds.block),
                env={"PATH": "/usr/bin:/bin"}, user=user, group=group, extra_groups=extra_groups)
        except OSError as exc:
            raise SandboxError(f"cannot start bubblewrap: {exc}") from exc

    def _release(self, info_r: int, block_w: int) -> None:
        """Learn the sandbox's init PID (the launcher's, once it runs) and namespaces, put it in
        the run's cgroup, then let bubblewrap exec the launcher."""
        assert self.proc is not None
        info = _read_line(info_r, time.monotonic() + STARTUP_TIMEOUT_S)
        if info is None:
            self._kill_if_running()
            stderr = self.proc.stderr.read() if self.proc.stderr else b""
            raise SandboxError("bubblewrap did not start the sandbox: "
                               + stderr.decode(errors="replace").strip()[-2000:])
        child_pid = int(info["child-pid"])
        self.pid_namespace = int(info["pid-namespace"])
        self.init_pidfd = os.pidfd_open(child_pid)
        if self.cgroup is not None:
            # Only the sandbox's init: the outer bubblewrap must outlive a cgroup.kill, so that
            # reaping it means its init (and with it the whole PID namespace) is gone.
            # ESRCH: bubblewrap failed while setting up; its stderr says why (see _result).
            with contextlib.suppress(ProcessLookupError):
                self.cgroup.add(child_pid)
        with contextlib.suppress(BrokenPipeError):
            os.write(block_w, b"1")
        os.close(block_w)

    def _pump(self, spec_w: int, spec: bytes, fds: list[int]) -> None:
        """Feed the spec, read both pipes, check limits and the stop probe every tick, until
        both pipes are closed (every process of the sandbox has ended)."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        os.set_blocking(spec_w, False)
        selector.register(spec_w, selectors.EVENT_WRITE, "spec")
        selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
        selector.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
        open_streams = 2
        drain_until: float | None = None
        with selector:
            while open_streams:
                for key, _ in selector.select(self.host.tick_s):
                    if key.data == "spec":
                        spec = spec[_write_some(spec_w, spec):]
                        if not spec:
                            selector.unregister(spec_w)
                            fds.remove(spec_w)
                            os.close(spec_w)
                        continue
                    data = os.read(key.fd, CHUNK)
                    if data:
                        self._take(key.data, data)
                    else:
                        selector.unregister(key.fileobj)
                        self.lines.flush(key.data)
                        open_streams -= 1
                self._watch()
                if self.killed_reason is not None:
                    drain_until = drain_until or time.monotonic() + DRAIN_TIMEOUT_S
                    if time.monotonic() > drain_until:
                        break  # the pipes should have closed with the namespace; stop waiting
        self.proc.stdout.close()
        self.proc.stderr.close()

    def _reap(self) -> tuple[int, Any]:
        assert self.proc is not None
        rusage: Any
        try:
            _, status, rusage = os.wait4(self.proc.pid, 0)
        except ChildProcessError:
            # Reaped by someone else in this process (seen once in a long test run): its status
            # is gone. Taken as killed, so the run still ends and its cgroup is still removed.
            status, rusage = int(signal.SIGKILL), _NO_RUSAGE
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return status, rusage

    # -- output --------------------------------------------------------------------------------

    def _take(self, stream: str, data: bytes) -> None:
        if self.lines.take(stream, data):
            self._kill("output_limit")

    # -- limits and stopping -------------------------------------------------------------------

    def _watch(self) -> None:
        """Once a tick, however much output arrives: the stop probe may be a database read."""
        now = time.monotonic()
        if self.killed_reason is not None or now < self.next_watch:
            return
        self.next_watch = now + self.host.tick_s
        reason = self.should_stop() if self.should_stop is not None else None
        if reason:
            self._kill(reason)
            return
        if time.monotonic() >= self.deadline:
            self._kill("timeout")
            return
        if now < self.next_sample:
            return
        limit = self._limit_reached()
        cost = time.monotonic() - now
        # Reading /proc costs ~0.1 ms a process: with hundreds of them, sample less often
        # rather than spend the worker's CPU on watching.
        self.next_sample = time.monotonic() + max(self.host.tick_s, SAMPLE_COST_FACTOR * cost)
        if limit:
            self._kill(limit)

    def _limit_reached(self) -> str | None:
        if self.cgroup is not None:
            if self.cgroup.oom_killed():
                return "memory"
            if self.cgroup.forks_refused():
                return "processes"
        pids = self._sandbox_pids()
        now = usage(pids)
        self.peak_rss = max(self.peak_rss, now.rss_bytes)
        cpu = self.cgroup.cpu_seconds() if self.cgroup is not None else now.cpu_s
        self.sampled_cpu = max(self.sampled_cpu, cpu)
        if cpu > self.limits.cpu_s:
            return "cpu"
        if now.rss_bytes > self.limits.memory_bytes:
            return "memory"
        self.pinned_ticks = self.pinned_ticks + 1 if now.tasks >= self.limits.task_budget else 0
        if self.pinned_ticks >= self.host.processes_pinned_ticks:
            return "processes"
        return None

    def _sandbox_pids(self) -> list[int]:
        if self.cgroup is not None:
            return self.cgroup.pids()
        return namespace_pids(self.pid_namespace) if self.pid_namespace is not None else []

    def _kill(self, reason: str) -> None:
        """Every process of the sandbox at once: its PID namespace dies with its init."""
        if self.killed_reason is None:
            self.killed_reason = reason
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
        elif self.proc is not None:
            self.proc.kill()  # --die-with-parent takes the sandbox along
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.kill()

    def _kill_if_running(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self._kill(self.killed_reason or "aborted")
        self._reap()

    # -- the result ----------------------------------------------------------------------------

    def _result(self, status: int, rusage: Any, launcher_status: dict[str, Any]) -> SandboxResult:
        if not launcher_status.get("started") and self.killed_reason is None:
            raise SandboxError("the sandbox did not start the command: "
                               + " | ".join(self.lines.stderr_tail)[-2000:])
        exit_code: int | None = launcher_status.get("exit_code")
        signal_number: int | None = launcher_status.get("signal")
        if exit_code is None and signal_number is None:
            # Killed before the launcher could report (by us, or the command killed it).
            code = os.waitstatus_to_exitcode(status)
            signal_number = signal.SIGKILL if self.killed_reason else (code - 128 if code > 128 else None)
            exit_code = None if signal_number else code
        # rusage covers every process reaped normally; those the kernel reaps when the PID
        # namespace is torn down are not accounted to anyone, hence the samples.
        cpu_s = max(rusage.ru_utime + rusage.ru_stime, self.sampled_cpu)
        if self.cgroup is not None:
            cpu_s = max(cpu_s, self.cgroup.cpu_seconds())
        max_rss = max(rusage.ru_maxrss * 1024, self.peak_rss,
                      (self.cgroup.memory_peak() or 0) if self.cgroup else 0)
        return SandboxResult(
            exit_code=exit_code, signal=signal_number, wall_s=time.monotonic() - self.started,
            cpu_s=cpu_s, max_rss_bytes=max_rss, output=self.lines.output,
            stderr_tail=list(self.lines.stderr_tail),
            killed_reason=self.killed_reason or self._limit_hit(exit_code, signal_number, cpu_s,
                                                                rusage.ru_maxrss * 1024),
            output_truncated=self.lines.truncated,
            proxy_decisions=list(self.proxy.decisions) if self.proxy else [])

    def _limit_hit(self, exit_code: int | None, signal_number: int | None, cpu_s: float,
                   largest_rss: int) -> str | None:
        """The limit a command that ended by itself ran into, when its end says so: the signal
        an rlimit sends (or a shell's 128+N for it), or a failure after one process alone went
        over the memory budget (it then met RLIMIT_DATA, or failed between two samples)."""
        if exit_code is not None and exit_code - 128 in (signal.SIGXCPU, signal.SIGXFSZ):
            signal_number = exit_code - 128
        if signal_number == signal.SIGXCPU or (signal_number == signal.SIGKILL
                                               and cpu_s >= self.limits.cpu_s):
            return "cpu"
        if signal_number == signal.SIGXFSZ:
            return "file_size"
        failed = signal_number is not None or (exit_code or 0) != 0
        if failed and largest_rss > self.limits.memory_bytes:
            return "memory"
        return None


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _pipe(opened: list[int]) -> tuple[int, int]:
    r, w = os.pipe()
    opened += [r, w]
    return r, w


def _write_some(fd: int, data: bytes) -> int:
    try:
        return os.write(fd, data[:CHUNK])
    except BlockingIOError:
        return 0
    except BrokenPipeError:
        return len(data)  # the launcher is gone; the run ends without a status


def _read_line(fd: int, until: float) -> dict[str, Any] | None:
    """bubblewrap's first JSON status document (one line), or None if it ended first."""
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data and time.monotonic() < until:
            if not selector.select(max(0.0, until - time.monotonic())):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    if b"\n" not in data:
        return None
    parsed: dict[str, Any] = json.loads(data.split(b"\n", 1)[0])
    return parsed


def _read_status(fd: int) -> dict[str, Any]:
    """The launcher's reports (one JSON object per line), merged; every writer has exited."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, CHUNK):
            data += chunk
    merged: dict[str, Any] = {}
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            report = json.loads(line)
            if isinstance(report, dict):
                merged.update(report)
    return merged

"""What a step that runs processes does with their output: each line goes, as it arrives, into
the attempt's log lines (``command_output``, with the bound trace id like every record) and the
step's live tail; the whole output becomes the step's ``log`` artifact. Secret values the step
resolved are replaced by ``***`` in all of them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator

from actions.base import ActionContext, Output, RunFigures
from logging_setup import log_event
from redaction import MASK, redact_text
from sandbox.process import SandboxResult

logger = logging.getLogger("actions.command")

# Past this many lines a step's output goes on only into its log artifact and live tail: a
# command that floods must not flood the worker's log file too.
LOG_LINES = 5000


class LineSink:
    """``on_line`` for ``sandbox.process.run``: called in the step's thread, so the attempt's
    trace context is bound."""

    def __init__(self, ctx: ActionContext, secrets: Iterable[str], *, source: str) -> None:
        self.ctx, self.secrets, self.source = ctx, tuple(secrets), source
        self.lines = 0

    def __call__(self, stream: str, line: str) -> None:
        shown = redact_text(line, self.secrets) if self.secrets else line
        self.ctx.output_tail.add(shown)
        self.lines += 1
        if self.lines < LOG_LINES:
            log_event(logger, "command_output", shown, stream=stream, step=self.ctx.step,
                      source=self.source)
        elif self.lines == LOG_LINES:
            log_event(logger, "command_output_capped", f"more than {LOG_LINES} lines: the rest "
                      "is in the step's log artifact only", level=logging.WARNING,
                      step=self.ctx.step)


def scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            data = data.replace(value.encode(), MASK.encode())
    return data


def figures(result: SandboxResult) -> RunFigures:
    return RunFigures(exit_code=result.exit_code, signal=result.signal,
                      wall_s=round(result.wall_s, 3), cpu_s=round(result.cpu_s, 3),
                      max_rss_bytes=result.max_rss_bytes)


def log_output(name: str, result: SandboxResult, secrets: Iterable[str]) -> Output:
    return Output(kind="log", name=name, data=scrub(result.output, secrets),
                  content_type="text/plain; charset=utf-8")


def ended(result: SandboxResult) -> str:
    """How a run ended, in words: ``exit code 2``, ``killed by signal 9``, ``stopped (memory)``."""
    if result.killed_reason:
        return f"stopped ({result.killed_reason})"
    if result.signal is not None:
        return f"killed by signal {result.signal}"
    return f"exit code {result.exit_code}"


@contextlib.contextmanager
def hiding_secrets(ctx: ActionContext, secrets: set[str]) -> Iterator[None]:
    """While the step runs, the log scrubber hides the resolved values."""
    if ctx.secret_registry is None or not secrets:
        yield
        return
    with ctx.secret_registry.active(secrets):
        yield

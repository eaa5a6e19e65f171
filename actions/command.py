"""``command``: a process run in the attempt's workspace, in the bubblewrap sandbox.

``argv`` is run as given (no shell); ``shell`` only when the spec says so (``/bin/sh -c``).
``env`` values may be secret references: resolved at run time, they reach the command and are
replaced by ``***`` in its log, live tail, artifacts and error. The command also gets
``JCT_TRACE_ID``, ``JCT_TASK_ID`` and ``TRACEPARENT`` (a new span of the attempt's trace) and
``JCT_REPORT``, where it may write a JSON report.

What it leaves, as artifacts ``step-<n>-<name>``: ``output.log`` (stdout and stderr interleaved;
the step's result artifact), ``diff-<dest>.patch`` for each checkout the workspace holds that
the command changed, ``report.json`` (validated as JSON) and ``file-<path>`` for each workspace
file matching ``artifacts`` (size-capped). Exit code 0 is success; another fails the step with
the code and the last lines of stderr, and another attempt follows only for a code listed in
``retryable_exit_codes``.
"""

from __future__ import annotations

import json
import mimetypes
import re
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

import tracing
from actions.base import ActionContext, ActionParams, ActionResult, Output, validate_params
from actions.step_output import LineSink, ended, figures, hiding_secrets, log_output, scrub
from credentials import find_refs
from errors import (
    ActionError,
    ActionTimeout,
    AttemptInterrupted,
    PathEscape,
    PermanentActionError,
    RetryableActionError,
    TaskCancelled,
)
from redaction import redact_text
from sandbox.limits import Limits
from sandbox.paths import DIR_PATTERN, PATH_PATTERN, confined_parts
from sandbox.process import RESERVED_ENV, SandboxCommand, SandboxResult
from sandbox.workspace import Collected
from validation import WHOLE_NUMBER, SchemaPattern, SecretRef, Text

REPORT_MAX_BYTES = 1 << 20
FILE_MAX_BYTES = 8 << 20
FILES_MAX_BYTES = 32 << 20
FILES_MAX = 50
ERROR_TAIL_LINES = 10
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
STOPPED_BY_OPERATOR = {"cancelled"}
INTERRUPTIONS = {"worker_shutdown", "lease_lost"}


def _env_name(name: str) -> str:
    if name in RESERVED_ENV:
        raise PydanticCustomError("reserved_env", "is set by the sandbox")
    if not re.fullmatch(ENV_NAME_PATTERN, name):
        raise PydanticCustomError("env_name", "names are [A-Za-z_][A-Za-z0-9_]*")
    return name


def confined_path(what: str, *, allow_empty: bool = False) -> AfterValidator:
    """A validator refusing a path that would leave the workspace (``sandbox.paths``); give
    ``SchemaPattern(PATH_PATTERN)`` (or ``DIR_PATTERN`` with ``allow_empty``) beside it, the
    same rule for the document."""
    def check(path: str) -> str:
        try:
            confined_parts(path, what, allow_empty=allow_empty)
        except PathEscape as exc:
            raise PydanticCustomError("path_escape", "{problem}", {"problem": str(exc)}) from None
        return path

    return AfterValidator(check)


EnvName = Annotated[str, AfterValidator(_env_name), SchemaPattern(ENV_NAME_PATTERN)]
RelativePath = Annotated[Text, Field(min_length=1, max_length=500), confined_path("path"),
                         SchemaPattern(PATH_PATTERN)]
ExitCode = Annotated[int, Field(ge=1, le=255), WHOLE_NUMBER]


class CommandParams(ActionParams):
    """Params of `command`: one process in the attempt's sandboxed workspace."""

    # Exactly one of argv and shell, an explicit null counting as absent: the document says
    # what ``_argv_or_shell`` checks.
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"properties": {"argv": {"type": "array"}}, "required": ["argv"]},
        {"properties": {"shell": {"type": "string"}}, "required": ["shell"]}]})
    params_required = True

    argv: Annotated[list[Text], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="The program and its arguments, run without a shell.")
    shell: Text | None = Field(None, description="A script for `/bin/sh -c`, instead of `argv`.")
    workdir: Annotated[Text, confined_path("workdir", allow_empty=True),
                       SchemaPattern(DIR_PATTERN)] = Field(
        "", description="Where it runs, relative to the workspace (`repo` after a checkout).")
    env: dict[EnvName, Text | SecretRef] = Field(
        {}, max_length=200, description="Its whole environment besides PATH, HOME and the JCT_* "
                                        "variables; a value may be a secret reference.")
    files: dict[RelativePath, Text] = Field(
        {}, max_length=100, description="Inline files (path → text) written into the workspace "
                                        "before it runs.")
    timeout_s: float = Field(600.0, gt=0, le=86400, description="Wall-clock (and CPU) limit; "
                             "also bounded by the task's `timeout_s`.")
    network: bool = Field(False, description="true: HTTP(S) through the worker's proxy, to the "
                                             "destinations JCT_HTTP_ALLOWED_HOSTS allows.")
    artifacts: Annotated[list[Annotated[Text, Field(min_length=1, max_length=500),
                                        confined_path("artifacts"), SchemaPattern(PATH_PATTERN)]],
                         Field(max_length=20)] = Field(
        [], description="Globs (`*`, `**`) of workspace files kept as `file` artifacts.")
    retryable_exit_codes: Annotated[list[ExitCode], Field(max_length=50)] = Field(
        [], description="Exit codes after which another attempt follows (others fail the task).")

    @model_validator(mode="after")
    def _argv_or_shell(self) -> CommandParams:
        if (self.argv is None) == (self.shell is None):
            raise PydanticCustomError("argv_or_shell", "give argv or shell, not both or neither")
        return self

    def normalised(self) -> dict[str, Any]:
        data = self.model_dump()
        data["env"] = {name: value.model_dump() if isinstance(value, SecretRef) else value
                       for name, value in self.env.items()}
        return data


class CommandAction:
    name = "command"
    params_model = CommandParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        find_refs(params, where)
        return validate_params(CommandParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        workspace = ctx.require_workspace()
        env, secrets = ctx.secrets.resolve(params["env"])
        with hiding_secrets(ctx, secrets):
            workspace.write_files(params["files"])
            result = workspace.run(_command(params, env), on_line=LineSink(ctx, secrets, source="command"),
                                   should_stop=ctx.stop_reason, deadline=ctx.deadline)
            step = ActionResult(output={"ended": ended(result)}, primary="output.log",
                                figures=figures(result),
                                outputs=[log_output("output.log", result, secrets)])
            problem = _collect(step, params, ctx, secrets)
        error = _failure(result, params, ctx, secrets) or problem
        if error is not None:
            error.result = step
            raise error
        return step


def _command(params: dict[str, Any], env: dict[str, str]) -> SandboxCommand:
    trace_id = tracing.trace_id_var.get()
    timeout = float(params["timeout_s"])
    return SandboxCommand(argv=params["argv"], shell=params["shell"], workdir=params["workdir"],
                          env=env, network=params["network"],
                          limits=Limits(wall_s=timeout, cpu_s=timeout),
                          trace_id=trace_id, task_id=tracing.task_id_var.get(),
                          traceparent=tracing.current_traceparent())


def _collect(step: ActionResult, params: dict[str, Any], ctx: ActionContext,
             secrets: set[str]) -> ActionError | None:
    """The diff of each checkout, the report and the declared files, into ``step``; a report
    that is not JSON is the step's failure."""
    workspace = ctx.require_workspace()
    for patch in workspace.diffs(should_stop=ctx.stop_reason, deadline=None):
        if patch.data:
            name = "diff-" + patch.relpath.replace("/", "_") + ".patch"
            step.outputs.append(Output("diff", name, scrub(patch.data, secrets),
                                       "text/x-diff; charset=utf-8"))
    problem = None
    report = workspace.open().read_report(REPORT_MAX_BYTES)
    if report is not None:
        try:
            json.loads(report.data)
            if report.truncated:
                raise ValueError(f"larger than {REPORT_MAX_BYTES} bytes")
            step.outputs.append(Output("report", "report.json", scrub(report.data, secrets),
                                       "application/json"))
        except ValueError as exc:
            problem = PermanentActionError(f"$JCT_REPORT is not valid JSON: {exc}")
    if params["artifacts"]:
        found = workspace.open().collect(params["artifacts"], max_bytes_each=FILE_MAX_BYTES,
                                         max_total=FILES_MAX_BYTES, max_files=FILES_MAX)
        step.outputs += [_file(item, secrets) for item in found]
    return problem


def _file(item: Collected, secrets: set[str]) -> Output:
    content_type = mimetypes.guess_type(item.relpath)[0] or "application/octet-stream"
    return Output("file", f"file-{item.relpath}", scrub(item.data, secrets), content_type)


Failure = ActionError | TaskCancelled | AttemptInterrupted


def _failure(result: SandboxResult, params: dict[str, Any], ctx: ActionContext,
             secrets: set[str]) -> Failure | None:
    if result.killed_reason is not None:
        return _stopped(result, params, ctx)
    if result.exit_code == 0:
        return None
    tail = [redact_text(line, secrets) for line in result.stderr_tail[-ERROR_TAIL_LINES:]]
    message = ended(result) + ("\n" + "\n".join(tail) if tail else "")
    if result.exit_code in params["retryable_exit_codes"]:
        return RetryableActionError(message)
    return PermanentActionError(message)


def _stopped(result: SandboxResult, params: dict[str, Any], ctx: ActionContext) -> Failure:
    """The sandbox stopped the command: an operator, the worker, a deadline or a limit."""
    reason = result.killed_reason or ""
    if reason in STOPPED_BY_OPERATOR:
        return TaskCancelled("cancelled by operator")
    if reason in INTERRUPTIONS:
        return AttemptInterrupted(reason)
    if reason != "timeout":
        return PermanentActionError(f"{ended(result)}: the command ran into its {reason} limit")
    remaining = ctx.remaining()
    if remaining is not None and remaining <= 0:
        return ActionTimeout("timeout: the attempt ran past the task's timeout_s")
    return RetryableActionError(f"command timed out after {params['timeout_s']}s")

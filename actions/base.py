"""What an action is: declares its params model, runs with a context, returns a result.

Actions know nothing about rows or brokers; the ``ActionRunner`` records what they did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from actions.output_tail import OutputTail
from actions.workspace import AttemptWorkspace
from credentials import SecretSource
from egress.policy import EgressPolicy
from errors import ActionTimeout, PermanentActionError, stop_error
from redaction import SecretRegistry
from validation import SpecModel, field_invalid, first_error

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Output:
    """A blob a step produced, stored as an artifact named ``step-<n>-<name>``."""

    kind: str  # log | diff | report | file
    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class RunFigures:
    """How a process a step ran ended and what it used (recorded on its invocation row)."""

    exit_code: int | None
    signal: int | None
    wall_s: float
    cpu_s: float
    max_rss_bytes: int


@dataclass
class ActionResult:
    """What a step produced. ``report`` (if any) is stored as a ``report`` artifact, then every
    one of ``outputs``; the one named ``primary`` (else the report) is the step's
    ``result_artifact_id``."""

    output: dict[str, Any] = field(default_factory=dict)
    downstream_status: int | None = None
    report: bytes | None = None
    report_name: str = "report.json"
    report_content_type: str = "application/json"
    outputs: list[Output] = field(default_factory=list)
    primary: str | None = None
    figures: RunFigures | None = None


@dataclass
class ActionContext:
    """Limits an action runs under: the attempt's deadline, a reason to stop early (operator
    cancel, worker shutdown, lost lease), where outgoing calls may go (``egress``; when it is
    not given, a policy built from ``allowed_hosts`` with no own endpoints), where secret
    references are resolved (``secrets``; by default nowhere, so a reference fails the step),
    the registry whose values the log scrubber hides, and the response size cap. Steps that
    run processes share the attempt's ``workspace`` and write what they print to
    ``output_tail`` (the runner keeps it on the step's row while it runs); ``step`` is the
    index of the running step."""

    deadline: float | None = None
    stop_reason: Callable[[], str | None] = lambda: None
    allowed_hosts: tuple[str, ...] = ("*",)
    poll_s: float = 0.25
    egress: EgressPolicy | None = None
    secrets: SecretSource = field(default_factory=SecretSource)
    secret_registry: SecretRegistry | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    workspace: AttemptWorkspace | None = None
    output_tail: OutputTail = field(default_factory=OutputTail)
    step: int = 0

    def egress_policy(self) -> EgressPolicy:
        return self.egress if self.egress is not None else EgressPolicy(allowed=self.allowed_hosts)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def require_workspace(self) -> AttemptWorkspace:
        if self.workspace is None:
            raise PermanentActionError("this worker has no workspace for commands")
        return self.workspace

    def check(self) -> None:
        """Raise at an interruptible point if the attempt must stop."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise ActionTimeout("timeout: the attempt ran past the task's timeout_s")
        reason = self.stop_reason()
        if reason is not None:
            raise stop_error(reason)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking up to honour the deadline and cancellation."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            remaining = self.remaining()
            time.sleep(min(left, self.poll_s, remaining if remaining is not None else left))


class ActionParams(SpecModel):
    """An action's params, declared as a model in the action's module; the model validates a
    step's params and is the action's params schema in ``/openapi.json``."""

    # True where no single field is required but ``{}`` is still not valid (one of several
    # fields must be given): the document then says ``params`` is required.
    params_required: ClassVar[bool] = False

    def normalised(self) -> dict[str, Any]:
        """The params as ``run`` receives them (defaults filled in)."""
        return self.model_dump(by_alias=True)


class Action(Protocol):
    name: str

    @property
    def params_model(self) -> type[ActionParams]:
        """The model of this action's params (it validates them and documents them)."""
        ...

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        """Return normalised params or raise ``SpecInvalid`` naming ``where.field``."""
        ...

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult: ...


def validate_params(model: type[ActionParams], params: Any, where: str) -> dict[str, Any]:
    """``model``'s normalised params, or ``SpecInvalid`` naming ``where.<param>``."""
    try:
        return model.model_validate(params).normalised()
    except ValidationError as exc:
        error = first_error(exc)
        raise field_invalid(where, error["loc"], error, params, model) from None

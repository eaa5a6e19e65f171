"""``fail``: always fails with its message; for drills. Retryable (another attempt follows while
``max_attempts`` allows) unless ``retryable`` is false."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import ActionContext, ActionParams, ActionResult, validate_params
from errors import PermanentActionError, RetryableActionError
from validation import Text


class FailParams(ActionParams):
    """Params of `fail`: always fail (for drills)."""

    message: Text = Field("fail action", description="The step's error.")
    retryable: bool = Field(True, description="false: no further attempt.")


class FailAction:
    name = "fail"
    params_model = FailParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        return validate_params(FailParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        error = RetryableActionError if params["retryable"] else PermanentActionError
        raise error(params["message"])

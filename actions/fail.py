"""``fail``: always fails with its message; for drills. Retryable (another attempt follows while
``max_attempts`` allows) unless ``retryable`` is false."""

from __future__ import annotations

from typing import Any

from actions.base import ActionContext, ActionResult, reject_unknown, require_str
from errors import PermanentActionError, RetryableActionError, SpecInvalid


class FailAction:
    name = "fail"

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        reject_unknown(params, {"message", "retryable"}, where)
        retryable = params.get("retryable", True)
        if not isinstance(retryable, bool):
            raise SpecInvalid(f"{where}.retryable", "must be true or false")
        message = require_str(params, "message", where, required=False, default="fail action")
        return {"message": message, "retryable": retryable}

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        error = RetryableActionError if params["retryable"] else PermanentActionError
        raise error(params["message"])

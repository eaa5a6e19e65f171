"""``sleep``: waits ``seconds``, interruptible by the deadline and by cancellation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actions.base import ActionContext, ActionParams, ActionResult, validate_params


class SleepParams(ActionParams):
    """Params of `sleep`: wait, interruptible by timeout and cancel."""

    seconds: float = Field(ge=0, le=86400, description="How long to wait.")


class SleepAction:
    name = "sleep"
    params_model = SleepParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        return validate_params(SleepParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.sleep(params["seconds"])
        return ActionResult(output={"slept_s": params["seconds"]})

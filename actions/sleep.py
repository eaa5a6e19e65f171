"""``sleep``: waits ``seconds``, interruptible by the deadline and by cancellation."""

from __future__ import annotations

from typing import Any

from actions.base import ActionContext, ActionResult, reject_unknown, require_number


class SleepAction:
    name = "sleep"

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        reject_unknown(params, {"seconds"}, where)
        return {"seconds": require_number(params, "seconds", where, minimum=0, maximum=86400)}

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.sleep(params["seconds"])
        return ActionResult(output={"slept_s": params["seconds"]})

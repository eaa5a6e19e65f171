"""``echo``: logs its message. The smallest action that proves the wiring."""

from __future__ import annotations

import logging
from typing import Any

from actions.base import ActionContext, ActionResult, reject_unknown, require_str
from logging_setup import log_event

logger = logging.getLogger(__name__)


class EchoAction:
    name = "echo"

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        reject_unknown(params, {"message"}, where)
        return {"message": require_str(params, "message", where)}

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        log_event(logger, "echo", params["message"])
        return ActionResult(output={"message": params["message"]})

"""``echo``: logs its message. The smallest action that proves the wiring."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from actions.base import ActionContext, ActionParams, ActionResult, validate_params
from logging_setup import log_event
from validation import Text

logger = logging.getLogger(__name__)


class EchoParams(ActionParams):
    """Params of `echo`: log a message."""

    message: Text = Field(description="Written to the attempt's log.")


class EchoAction:
    name = "echo"
    params_model = EchoParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        return validate_params(EchoParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        log_event(logger, "echo", params["message"])
        return ActionResult(output={"message": params["message"]})

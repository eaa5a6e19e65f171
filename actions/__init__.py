"""Built-in actions, one module each, and the registry that finds them by name."""

from __future__ import annotations

from actions.base import Action
from actions.checkout import CheckoutAction
from actions.command import CommandAction
from actions.echo import EchoAction
from actions.fail import FailAction
from actions.http import HttpAction
from actions.sleep import SleepAction

REGISTRY: dict[str, Action] = {
    action.name: action for action in (EchoAction(), SleepAction(), FailAction(), HttpAction(),
                                       CheckoutAction(), CommandAction())
}


def get_action(name: str) -> Action | None:
    return REGISTRY.get(name)

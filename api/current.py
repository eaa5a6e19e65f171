"""The request's view of its process: the runtime the app factory built (kept on
``app.extensions``), and who is asking."""

from __future__ import annotations

from flask import current_app, g

from runtime import Runtime

EXTENSION = "jct"


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]


def actor() -> str:
    """The token's name the request authenticated with (``anonymous`` when tokens are off)."""
    return str(g.get("actor", "anonymous"))

"""JSON as JCT accepts it from outside (request bodies, ``jct enqueue`` files): the JSON
grammar, strictly.

Python's ``json`` accepts more than JSON: ``NaN``/``Infinity`` (not JSON at all), bytes that
are not UTF-8, and it gives up with a ``RecursionError`` on nesting deep enough. Each of these
is ``MalformedJson`` (400) here. What is JSON but cannot be kept — ``1e999`` read as infinity,
a lone surrogate, ``\\u0000``, nesting past 64 levels — is refused by the spec's models
(``validation``: 422 naming the field), where every value of a spec is checked anyway.
"""

from __future__ import annotations

import json
from typing import Any

from errors import MalformedJson


def loads(raw: bytes | str) -> Any:
    """The value of ``raw``, or ``MalformedJson``."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from None
    except RecursionError:  # the C parser's own guard
        raise MalformedJson("malformed JSON: nested too deeply") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

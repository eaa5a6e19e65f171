"""JSON as JCT accepts it from outside (request bodies, ``jct enqueue`` files): the JSON
grammar, and only values every layer behind the edge can hold.

Python's ``json`` accepts more than PostgreSQL's ``jsonb`` and UTF-8 can store, and what it
accepts surfaces later as a 500: ``NaN``/``Infinity`` (not JSON at all), ``1e999`` (read as an
infinite float), a lone surrogate (``"\\ud800"``, not encodable as UTF-8), ``\\u0000``
(``jsonb`` has no NUL), nesting deep enough to exhaust the parser's recursion. Each is refused
here: what is not JSON is ``MalformedJson`` (400); a value that cannot be kept, or nesting
deeper than ``MAX_DEPTH`` (no task spec needs more), is ``SpecInvalid`` naming where (422).
"""

from __future__ import annotations

import json
import math
from typing import Any

from errors import MalformedJson, SpecInvalid

MAX_DEPTH = 64
MAX_INT = 2**63 - 1  # a bigint: the widest integer the rows and every JSON reader agree on


def loads(raw: bytes | str) -> Any:
    """The value of ``raw``, or ``MalformedJson`` / ``SpecInvalid`` (whose field is the path
    from the document's root: ``steps[0].params.message``, ``tasks[2].name``)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from None
    except RecursionError:  # the C parser's own guard, far deeper than MAX_DEPTH
        raise MalformedJson(f"malformed JSON: nested too deeply (at most {MAX_DEPTH} levels)") from None
    check_storable(value)
    return value


def check_storable(value: Any, path: str = "") -> None:
    """``SpecInvalid`` naming the first value ``jsonb``/UTF-8 cannot hold: a string (or key)
    with NUL or a lone surrogate, a number that is not finite or past a bigint."""
    stack: list[tuple[str, Any, int]] = [(path, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if isinstance(item, dict | list) and depth >= MAX_DEPTH:
            raise SpecInvalid(_printable_path(where), f"nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                child_path = f"{where}.{key}" if where else str(key)
                _check_text(key, child_path, "key")
                stack.append((child_path, child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child, depth + 1)
                         for i, child in reversed(list(enumerate(item))))
        elif isinstance(item, str):
            _check_text(item, where, "value")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not -MAX_INT <= item <= MAX_INT:
            raise SpecInvalid(where or "$", f"integer out of range (at most ±{MAX_INT})")
        elif isinstance(item, float) and not math.isfinite(item):
            raise SpecInvalid(where or "$", "number out of range (not a finite double)")


def _check_text(text: str, where: str, what: str) -> None:
    if "\x00" in text:
        raise SpecInvalid(_printable_path(where), f"the {what} contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecInvalid(_printable_path(where),
                          f"the {what} contains a lone surrogate (not valid Unicode)") from None


def _printable_path(where: str) -> str:
    """The path as it can be sent back: a key that is itself the problem is escaped."""
    return (where.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
            or "$")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

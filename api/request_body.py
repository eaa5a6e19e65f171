"""Reading a JSON request body with the contract's errors (415, 400; 413 comes from Flask)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from errors import MalformedJson, UnsupportedMediaType


def json_body() -> Any:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}")
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from None
    except RecursionError:  # nested deeper than the parser can go: bad input, not a server fault
        raise MalformedJson("malformed JSON: nested too deeply") from None

"""Reading a JSON request body with the contract's errors: 415 for another media type, 413 past
the size limit (``Content-Length`` or not), 400 for what is not JSON, 422 for JSON that cannot
be stored (``strict_json``, then the spec models)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

import strict_json
from errors import PayloadTooLarge, UnsupportedMediaType

CHUNK = 64 * 1024


def json_body() -> Any:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}")
    return strict_json.loads(body_bytes(current_app.config["MAX_CONTENT_LENGTH"]))


def body_bytes(limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes. Flask refuses a ``Content-Length`` over the
    limit itself, but a chunked body (no ``Content-Length``) it silently cuts at the limit,
    and a cut body can still be valid JSON: here it is a 413 instead."""
    if request.content_length is not None:
        return request.get_data(cache=True)
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # a server that does not end the stream: not safe to read (werkzeug's rule)
    stream = request.environ["wsgi.input"]
    data = bytearray()
    while chunk := stream.read(min(CHUNK, limit + 1 - len(data))):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    return bytes(data)

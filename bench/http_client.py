"""The one HTTP client every HTTP figure uses (JCT's enqueue and the bare gunicorn baseline):
``http.client`` on one connection per client thread, the cheapest client the standard library
has, so the client's own cost stays small next to the server's. gunicorn's sync workers close
the connection after each response; ``http.client`` reconnects on the next request."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlparse

from errors import BenchError


class JsonPoster:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlparse(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                      timeout=timeout)

    def post(self, path: str, body: bytes) -> Any:
        """POST ``body`` (JSON); returns the decoded answer. Raises ``BenchError``."""
        try:
            self._connection.request("POST", path, body=body,
                                     headers={"Content-Type": "application/json"})
            response = self._connection.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self._connection.close()  # a dropped keep-alive: one fresh attempt
            self._connection.request("POST", path, body=body,
                                     headers={"Content-Type": "application/json"})
            response = self._connection.getresponse()
            payload = response.read()
        if response.status >= 300:
            raise BenchError(f"POST {path} answered {response.status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        self._connection.close()

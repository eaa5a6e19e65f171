"""The one S3 call on every attempt's path — PUT of its log blob — without boto3.

boto3 is general and heavy: for one small PUT it runs event hooks, endpoint rules, parameter
validation, retry bookkeeping, and builds several header dictionaries; measured in the worker it
was a third of the CPU an echo task costs. This module signs the request itself (AWS Signature
Version 4, path-style addressing, as the store is configured) and sends it over a keep-alive
connection per thread. Everything else (HEAD, GET, creating the bucket) stays with boto3.

The payload hash is the blob's sha256, which the artifact row records anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import threading
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from errors import StorageError

_SAFE = "-_.~/"  # S3's canonical URI keeps "/" and the unreserved characters, encodes the rest
TIMEOUT_S = 30.0


class SigV4Put:
    """PUTs objects into one bucket of one endpoint."""

    def __init__(self, endpoint: str, bucket: str, region: str, access_key: str,
                 secret_key: str) -> None:
        parts = urlsplit(endpoint)
        self.https = parts.scheme == "https"
        self.host = parts.netloc
        self.bucket, self.region = bucket, region
        self.access_key, self.secret_key = access_key, secret_key
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, to close them all
        self._guard = threading.Lock()
        self._keys: dict[str, bytes] = {}  # signing key per day

    def put(self, key: str, data: bytes, sha256: str, *, content_type: str,
            metadata: dict[str, str]) -> None:
        """Store ``data`` under ``key``; raises ``StorageError``. A keep-alive connection the
        server closed in between is retried once on a fresh one."""
        path = "/" + quote(f"{self.bucket}/{key}", safe=_SAFE)
        headers = self._signed_headers(path, sha256, content_type, metadata, len(data))
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("PUT", path, body=data, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt == 2 or not isinstance(exc, ConnectionError | http.client.BadStatusLine):
                    raise StorageError(f"upload of {key} failed: {type(exc).__name__}: {exc}") from exc
                continue
            if response.status != 200:
                raise StorageError(f"upload of {key} failed: {response.status} "
                                   f"{body[:300].decode('utf-8', 'replace')}")
            return

    def _signed_headers(self, path: str, sha256: str, content_type: str,
                        metadata: dict[str, str], length: int) -> dict[str, str]:
        now = datetime.now(UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": self.host, "content-type": content_type,
                   "content-length": str(length), "x-amz-content-sha256": sha256,
                   "x-amz-date": stamp,
                   **{f"x-amz-meta-{name.lower()}": value.strip() for name, value in metadata.items()}}
        names = sorted(headers)
        canonical = "\n".join(["PUT", path, "", *(f"{n}:{headers[n]}" for n in names), "",
                               ";".join(names), sha256])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return headers

    def _signing_key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            key = f"AWS4{self.secret_key}".encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {day: key}
        return key

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = (http.client.HTTPSConnection(self.host, timeout=TIMEOUT_S,
                                                      context=ssl.create_default_context())
                          if self.https else http.client.HTTPConnection(self.host, timeout=TIMEOUT_S))
            self._local.connection = connection
            with self._guard:
                self._open.add(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            with self._guard:
                self._open.discard(connection)
        self._local.connection = None

    def close(self) -> None:
        """Close every thread's connection (the store is done)."""
        with self._guard:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

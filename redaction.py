"""Redaction: what a secret looks like where it may surface (headers, URLs, params, text,
log records) and how it is replaced by ``***``.

Two kinds of secret are hidden:
- *known values*: the values of resolved secret references, replaced wherever they appear
  (``redact_text``, and ``SecretScrubber`` on log records while a ``SecretRegistry`` holds
  them);
- *inline credentials*: values of sensitive headers and params (``Authorization``,
  ``Cookie``, ``Set-Cookie``, ``Proxy-Authorization``, ``X-Api-Key``, any name matching
  token/secret/password/key/auth/…), URL user-info and credential-like query parameters.
Secret references themselves are names, not values, and are shown as they are.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

from credentials import is_secret_ref

MASK = "***"
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization",
                               "x-api-key"})
SENSITIVE_NAME = re.compile(r"token|secret|passw|pwd|key|auth|cookie|session|credential|"
                            r"signature|^sig$|^code$", re.IGNORECASE)
_WHOLE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")  # a value that is one URL, as given
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
_JSON_LEVELS = 3
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime"}


def is_sensitive_name(name: str) -> bool:
    """A header, param or query-parameter name whose value is treated as a credential."""
    return name.lower() in SENSITIVE_HEADERS or bool(SENSITIVE_NAME.search(name))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: MASK if is_sensitive_name(name) else value for name, value in headers.items()}


def redact_url(url: str) -> str:
    """``url`` with its user-info and credential-like query (and fragment) parameters as
    ``***``; never fails, whatever the input."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal: fall back to a textual pass
        head, question, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        return (_USERINFO.sub(f"{MASK}@", head) + question + _redact_query(query) + hash_
                + _redact_query(fragment))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query, fragment = _redact_query(parts.query), _redact_query(parts.fragment)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url  # nothing to hide: the URL exactly as given (urlunsplit would normalise it)
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_urls_in(text: str) -> str:
    """Every URL inside ``text`` passed through ``redact_url``."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def redact_text(text: str, secret_values: Iterable[str]) -> str:
    """``text`` with every known secret value (also JSON-escaped or percent-encoded, as it
    appears in a serialised body or a URL) replaced by ``***``."""
    for variant in _variants(secret_values):
        if variant in text:
            text = text.replace(variant, MASK)
    return text


def redact_params(params: Any, key: str | None = None) -> Any:
    """A step's params for display: secret references kept (they are names), the value of any
    sensitive name ``***``, URL credentials ``***``."""
    if is_secret_ref(params):
        return dict(params)
    # None hides nothing, and keeps the document's type (a reference or null) true.
    if key is not None and is_sensitive_name(key) and params is not None:
        return MASK
    if isinstance(params, dict):
        return {name: redact_params(value, name) for name, value in params.items()}
    if isinstance(params, list):
        return [redact_params(value) for value in params]
    if isinstance(params, str):
        return redact_url(params) if _WHOLE_URL.fullmatch(params) else redact_urls_in(params)
    return params


def sensitive_values(params: Any, key: str | None = None) -> set[str]:
    """The values written inline under a sensitive name (an ``Authorization`` header, a
    ``password`` field): they are treated as secrets too, so what echoes them back (a
    downstream's response in a report, an error) is scrubbed like a referenced secret."""
    if is_secret_ref(params):
        return set()
    if isinstance(params, str):
        return {params} if key is not None and is_sensitive_name(key) and len(params) >= 4 else set()
    if isinstance(params, dict):
        return {v for name, value in params.items() for v in sensitive_values(value, name)}
    if isinstance(params, list):
        return {v for value in params for v in sensitive_values(value, key)}
    return set()


def redact_value(value: Any, secret_values: Iterable[str]) -> Any:
    """``redact_text`` applied to every string inside ``value`` (dicts, lists, tuples)."""
    values = tuple(secret_values)
    if not values:
        return value
    if isinstance(value, str):
        return redact_text(value, values)
    if isinstance(value, dict):
        return {k: redact_value(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, values) for v in value]
    return value


class SecretRegistry:
    """The secret values in use in this process right now (counted: two attempts may share a
    secret). ``active(values)`` holds them for the duration of a block."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._snapshot: tuple[str, ...] = ()

    @contextmanager
    def active(self, values: Iterable[str]) -> Iterator[None]:
        held = [v for v in set(values) if v]
        self._change(held, +1)
        try:
            yield
        finally:
            self._change(held, -1)

    def values(self) -> tuple[str, ...]:
        return self._snapshot

    def _change(self, values: list[str], delta: int) -> None:
        if not values:
            return
        with self._lock:
            for value in values:
                self._counts[value] += delta
                if self._counts[value] <= 0:
                    del self._counts[value]
            self._snapshot = tuple(self._counts)


class SecretScrubber(logging.Filter):
    """Replaces the registry's active secret values in a record's message, extra fields,
    exception and stack text. Attach it to every *handler* (a logger's filters do not see
    records propagated from child loggers)."""

    def __init__(self, registry: SecretRegistry) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        # Every handler runs its filters on the same record: scrub it once.
        if "_jct_scrubbed" in record.__dict__:
            return True
        values = self.registry.values()
        if not values:
            return True
        record.__dict__["_jct_scrubbed"] = True
        record.msg = redact_text(record.getMessage(), values)
        record.args = None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRS and not name.startswith("_"):
                setattr(record, name, redact_value(value, values))
        if record.exc_info:
            # Render the traceback now, redacted; formatters print exc_text when exc_info is gone.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, values)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, values)
        return True


def _variants(secret_values: Iterable[str]) -> list[str]:
    """Each value as written, JSON-escaped up to three levels deep (a JSON body quoted inside
    a JSON report inside a JSON log line), and percent-encoded."""
    found: set[str] = set()
    for value in secret_values:
        if not value:
            continue
        level = {value}
        for _ in range(_JSON_LEVELS):
            level = {json.dumps(v, ensure_ascii=ascii_only)[1:-1]
                     for v in level for ascii_only in (True, False)}
            found |= level
        found |= {value, quote(value, safe=""), quote_plus(value)}
    return sorted((v for v in found if v), key=len, reverse=True)


def _redact_query(query: str) -> str:
    if "=" not in query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if equals and is_sensitive_name(unquote_plus(name)) else pair)
    return "&".join(pairs)

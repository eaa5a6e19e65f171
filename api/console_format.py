"""Formatting the console's templates use: short ids, clock times, durations, sizes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def ms_between(begin: datetime, end: datetime) -> int:
    return max(0, int((end - begin).total_seconds() * 1000))



def span_ms(begin: str | None, end: str | None) -> int | None:
    first, last = at(begin), at(end)
    return ms_between(first, last) if first and last else None


def short_id(value: str | None) -> str:
    """The first block of a UUID: enough to tell tasks apart on one screen."""
    return (value or "")[:8]


def clock(value: str | None) -> str:
    """``HH:MM:SS.mmm`` in UTC; the full timestamp goes in a ``title``/``datetime`` attribute."""
    try:
        moment = at(value)
    except ValueError:  # a log line's own timestamp may be in any format
        return str(value)
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] if moment else "—"


def ago(value: str | None) -> str:
    moment = at(value)
    if moment is None:
        return "—"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def format_ms(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def filesize(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def attrs_text(attrs: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An event's attributes as ``(key, value)`` text pairs for a table cell; nulls say nothing."""
    pairs = []
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        pairs.append((key, text))
    return pairs


def seconds(value: float | None) -> str:
    """``0.42 s``, ``12.3 s``; blank for none."""
    if value is None:
        return ""
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def count_text(count: int, cap: int) -> str:
    """A task count as the console shows it: ``1,234``, or ``10,000+`` past the counting cap."""
    return f"{cap:,}+" if count > cap else f"{count:,}"

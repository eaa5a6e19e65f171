"""A process's stdout and stderr as the bytes arrive: kept, interleaved, up to the output cap
(then cut and marked), and cut into lines for ``on_line`` (a line longer than ``LINE_LIMIT``
in pieces of that size, so one endless line cannot grow a buffer without bound); the last
lines of stderr are kept for the error a failed command reports. The bubblewrap run and the
unconfined run read their pipes alike."""

from __future__ import annotations

import collections
from collections.abc import Callable

LINE_LIMIT = 64 * 1024  # a longer line is passed on in pieces of this size
STDERR_TAIL_LINES = 20
TRUNCATION_MARKER = "\n[jct: output truncated at {limit} bytes; the command was stopped]\n"

OnLine = Callable[[str, str], None]


class OutputLines:
    def __init__(self, on_line: OnLine | None, limit: int) -> None:
        self.on_line = on_line
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False
        self.partial = {"stdout": b"", "stderr": b""}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    @property
    def output(self) -> bytes:
        """Everything kept, stdout and stderr interleaved as they came."""
        return b"".join(self.chunks)

    def take(self, stream: str, data: bytes) -> bool:
        """Bytes read from ``stream``: kept up to the cap, their lines passed on. ``True`` when
        they reached the cap — the output is then cut there and marked, and the caller stops
        the command."""
        if self.truncated:
            return False
        room = self.limit - self.kept
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.chunks.append(data)
        self.kept += len(data)
        self.feed(stream, data)
        if self.truncated:
            self.flush(stream)
            self.chunks.append(TRUNCATION_MARKER.format(limit=self.limit).encode())
        return self.truncated

    def feed(self, stream: str, data: bytes) -> None:
        """Bytes read from ``stream``: every line they complete goes on."""
        *lines, rest = (self.partial[stream] + data).split(b"\n")
        while len(rest) >= LINE_LIMIT:
            lines.append(rest[:LINE_LIMIT])
            rest = rest[LINE_LIMIT:]
        self.partial[stream] = rest
        for line in lines:
            self._emit(stream, line)

    def flush(self, stream: str) -> None:
        """``stream`` ended (or was cut): its unfinished last line goes on as it is."""
        if self.partial[stream]:
            self._emit(stream, self.partial[stream])
            self.partial[stream] = b""

    def _emit(self, stream: str, raw: bytes) -> None:
        # PostgreSQL's text (and jsonb) holds no NUL: shown as the replacement character, as
        # bytes that are not UTF-8 are, so a command that prints one still ends with its rows.
        line = raw.decode("utf-8", errors="replace").rstrip("\r").replace("\x00", "\ufffd")
        if stream == "stderr":
            self.stderr_tail.append(line)
        if self.on_line is not None:
            self.on_line(stream, line)

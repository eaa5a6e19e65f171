"""A process's stdout and stderr cut into lines as the bytes arrive: each line is passed to
``on_line`` (a line longer than ``LINE_LIMIT`` in pieces of that size, so one endless line
cannot grow a buffer without bound), and the last lines of stderr are kept for the error a
failed command reports. The bubblewrap run and the unconfined run read their pipes alike."""

from __future__ import annotations

import collections
from collections.abc import Callable

LINE_LIMIT = 64 * 1024  # a longer line is passed on in pieces of this size
STDERR_TAIL_LINES = 20

OnLine = Callable[[str, str], None]


class OutputLines:
    def __init__(self, on_line: OnLine | None) -> None:
        self.on_line = on_line
        self.partial = {"stdout": b"", "stderr": b""}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

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
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if stream == "stderr":
            self.stderr_tail.append(line)
        if self.on_line is not None:
            self.on_line(stream, line)

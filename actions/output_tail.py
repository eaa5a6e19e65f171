"""The last lines a running step printed, shared between the thread that runs it and the
heartbeat that writes them on the step's row (the console's live tail)."""

from __future__ import annotations

import collections
import threading

TAIL_LINES = 40
LINE_CHARS = 500


class OutputTail:
    def __init__(self, lines: int = TAIL_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._guard = threading.Lock()
        self.version = 0  # bumped by every line: the writer skips a tail it has written

    def add(self, line: str) -> None:
        with self._guard:
            self._lines.append(line[:LINE_CHARS])
            self.version += 1

    def clear(self) -> None:
        with self._guard:
            self._lines.clear()
            self.version += 1

    def text(self) -> str:
        with self._guard:
            return "\n".join(self._lines)

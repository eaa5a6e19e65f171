"""Text from task data on an operator's terminal: names, errors, log messages and event
attributes are written by task authors and downstream services, and an escape sequence in them
would act on the terminal (recolour, retitle, rewrite what was printed, on some terminals
answer back). ``printable`` is applied to every field the CLI prints."""

from __future__ import annotations

import re

# C0 controls but tab, DEL, and C1 controls (0x80-0x9f: 0x9b is a one-byte CSI). Newlines are
# shown escaped too: a field must not forge a line of its own.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``value`` as text with control characters shown as escapes (``\\x1b``), not sent."""
    return _CONTROL.sub(lambda match: match.group(0).encode("unicode_escape").decode("ascii"),
                        "" if value is None else str(value))

"""CLI output: control characters from task data are shown, not sent to the terminal."""

from __future__ import annotations

from terminal import printable


def test_escape_sequences_are_shown_escaped() -> None:
    shown = printable("deploy \x1b[31mred\x1b]0;title\x07 \x9b2J done\r\nforged line\x00")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert shown == "deploy \\x1b[31mred\\x1b]0;title\\x07 \\x9b2J done\\r\\nforged line\\x00"


def test_ordinary_text_is_unchanged() -> None:
    assert printable("déploiement\t✓ 🚀") == "déploiement\t✓ 🚀"
    assert printable(None) == ""
    assert printable(42) == "42"

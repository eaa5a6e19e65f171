"""The document's patterns for workspace paths say exactly what ``confined_parts`` accepts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errors import PathEscape
from sandbox.paths import DIR_PATTERN, PATH_PATTERN, confined_parts

PIECES = ["a", "b.c", ".", "..", "...", "..x", ".h", "/", "//", "\x00"]


def _accepted(path: str, allow_empty: bool) -> bool:
    try:
        confined_parts(path, "p", allow_empty=allow_empty)
    except PathEscape:
        return False
    return True


@pytest.mark.parametrize(("path", "as_path", "as_dir"), [
    ("repo", True, True), ("repo/out/x.json", True, True), ("./a", True, True),
    ("a//b/./c/", True, True), ("...", True, True), (".hidden", True, True),
    ("", False, True), (".", False, True), ("./", False, True), ("./.", False, True),
    ("..", False, False), ("a/..", False, False), ("../a", False, False), ("/etc", False, False),
    ("a\x00b", False, False),
])
def test_examples(path: str, as_path: bool, as_dir: bool) -> None:
    assert (re.match(PATH_PATTERN, path) is not None) == as_path == _accepted(path, False)
    assert (re.match(DIR_PATTERN, path) is not None) == as_dir == _accepted(path, True)


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_the_patterns_and_the_check_agree(path: str) -> None:
    assert (re.match(PATH_PATTERN, path) is not None) == _accepted(path, False)
    assert (re.match(DIR_PATTERN, path) is not None) == _accepted(path, True)

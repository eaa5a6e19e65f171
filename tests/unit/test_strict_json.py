"""strict_json: what is not JSON is a 400 (what cannot be stored is the spec models' 422:
tests/unit/test_hostile_bodies.py)."""

from __future__ import annotations

import pytest

import strict_json
from errors import MalformedJson


@pytest.mark.parametrize("text", [
    '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1', "[" * 100_000 + "]" * 100_000,
    b'{"a": "\xff"}', '\ufeff{"a": 1}',
])
def test_not_json_is_malformed(text: str | bytes) -> None:
    with pytest.raises(MalformedJson):
        strict_json.loads(text)


def test_ordinary_json_is_read_as_json() -> None:
    text = ('{"name": "déploiement ✓ 🚀", "n": [1, -2.5, 9223372036854775807, true, null], '
            '"nested": ' + "[" * 60 + "]" * 60 + ', "escaped": "\\ud83d\\ude80 \\u001b"}')
    value = strict_json.loads(text.encode())
    assert value["name"] == "déploiement ✓ 🚀"
    assert value["escaped"] == "🚀 \x1b", "a surrogate pair is one character, not a lone surrogate"
    assert value["n"][2] == 2**63 - 1

"""strict_json: what is not JSON is a 400, what cannot be stored is a 422 naming where."""

from __future__ import annotations

import pytest

import strict_json
from errors import MalformedJson, SpecInvalid


@pytest.mark.parametrize("text", [
    '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1', "[" * 100_000 + "]" * 100_000,
    b'{"a": "\xff"}', '\ufeff{"a": 1}',
])
def test_not_json_is_malformed(text: str | bytes) -> None:
    with pytest.raises(MalformedJson):
        strict_json.loads(text)


@pytest.mark.parametrize(("text", "field"), [
    ('{"name": "a\\u0000b"}', "name"),
    ('{"steps": [{"params": {"message": "\\ud800"}}]}', "steps[0].params.message"),
    ('{"labels": {"\\udfff": "x"}}', "labels.\\udfff"),
    ('{"labels": {"a\\u0000": "x"}}', "labels.a\\u0000"),
    ('{"steps": [{"params": {"n": 1e999}}]}', "steps[0].params.n"),
    ('{"steps": [{"params": {"n": -1e400}}]}', "steps[0].params.n"),
    ('{"timeout_s": 9223372036854775808}', "timeout_s"),
    ('{"tasks": [{}, {"name": "\\u0000"}]}', "tasks[1].name"),
    ('{"a": ' + "[" * 70 + "]" * 70 + "}", "a" + "[0]" * 63),
    ('"\\u0000"', "$"),
])
def test_values_that_cannot_be_stored_name_their_field(text: str, field: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        strict_json.loads(text)
    assert caught.value.field == field


def test_ordinary_json_is_read_as_json() -> None:
    text = ('{"name": "déploiement ✓ 🚀", "n": [1, -2.5, 9223372036854775807, true, null], '
            '"nested": ' + "[" * 60 + "]" * 60 + ', "escaped": "\\ud83d\\ude80 \\u001b"}')
    value = strict_json.loads(text.encode())
    assert value["name"] == "déploiement ✓ 🚀"
    assert value["escaped"] == "🚀 \x1b", "a surrogate pair is one character, not a lone surrogate"
    assert value["n"][2] == 2**63 - 1

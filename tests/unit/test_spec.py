"""Task spec validation names the failing field; inputs_hash is canonical."""

from __future__ import annotations

from typing import Any

import pytest

from errors import SpecInvalid, UnknownAction
from services.spec import inputs_hash, validate_spec


def test_minimal_spec_gets_defaults() -> None:
    spec = validate_spec({"steps": [{"action": "echo", "params": {"message": "hi"}}]})
    assert spec == {"name": None, "steps": [{"action": "echo", "params": {"message": "hi"}}],
                    "max_attempts": 3, "timeout_s": None, "priority": 0, "labels": {}}


def test_contract_example_is_valid() -> None:
    spec = {
        "name": "restart-web",
        "steps": [
            {"action": "http", "params": {"method": "POST", "url": "http://127.0.0.1:9000/hook",
                                          "json": {"x": 1}}},
            {"action": "echo", "params": {"message": "hello"}},
        ],
        "max_attempts": 3, "timeout_s": 60, "priority": 0, "labels": {"team": "web"},
    }
    assert validate_spec(spec)["steps"] == spec["steps"]


@pytest.mark.parametrize(("spec", "field"), [
    ([], "$"),
    ({}, "steps"),
    ({"steps": []}, "steps"),
    ({"steps": "echo"}, "steps"),
    ({"steps": [{"action": "echo"}]}, "steps[0].params.message"),
    ({"steps": [{"params": {}}]}, "steps[0].action"),
    ({"steps": [{"action": "echo", "params": {"message": 1}}]}, "steps[0].params.message"),
    ({"steps": [{"action": "echo", "params": {"message": "x", "extra": 1}}]}, "steps[0].params.extra"),
    ({"steps": [{"action": "sleep", "params": {"seconds": -1}}]}, "steps[0].params.seconds"),
    ({"steps": [{"action": "http", "params": {"url": "ftp://x"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "method": "BREW"}}]},
     "steps[0].params.method"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "expect_status": [99]}}]},
     "steps[0].params.expect_status"),
    ({"steps": [{"action": "echo", "params": {"message": "x"}}], "max_attempts": 0}, "max_attempts"),
    ({"steps": [{"action": "echo", "params": {"message": "x"}}], "max_attempts": True}, "max_attempts"),
    ({"steps": [{"action": "echo", "params": {"message": "x"}}], "timeout_s": 0}, "timeout_s"),
    ({"steps": [{"action": "echo", "params": {"message": "x"}}], "labels": {"a": 1}}, "labels"),
    ({"steps": [{"action": "echo", "params": {"message": "x"}}], "colour": "red"}, "colour"),
])
def test_invalid_spec_names_the_field(spec: Any, field: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        validate_spec(spec)
    assert caught.value.field == field
    assert caught.value.status == 422


def test_unknown_action_is_its_own_error() -> None:
    with pytest.raises(UnknownAction) as caught:
        validate_spec({"steps": [{"action": "echo", "params": {"message": "x"}},
                                 {"action": "launch-missiles"}]})
    assert caught.value.code == "unknown_action"
    assert caught.value.field == "steps[1].action"


def test_inputs_hash_ignores_key_order_but_not_values() -> None:
    assert inputs_hash({"a": 1, "b": [1, 2]}) == inputs_hash({"b": [1, 2], "a": 1})
    assert inputs_hash({"a": 1}) != inputs_hash({"a": 2})
    assert len(inputs_hash({})) == 64

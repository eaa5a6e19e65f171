"""Task spec validation names the failing field; inputs_hash is canonical."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actions.http import HttpAction
from errors import SpecInvalid, UnknownAction
from services.spec import inputs_hash, validate_batch, validate_spec

ECHO = {"action": "echo", "params": {"message": "x"}}


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
    # strict types: no coercion between JSON types
    ({"steps": [ECHO], "max_attempts": 3.5}, "max_attempts"),
    ({"steps": [ECHO], "priority": "1"}, "priority"),
    ({"steps": [ECHO], "priority": None}, "priority"),
    ({"steps": [ECHO], "timeout_s": True}, "timeout_s"),
    ({"steps": [ECHO], "labels": None}, "labels"),
    ({"steps": [ECHO], "name": ""}, "name"),
    ({"steps": [ECHO], "name": "x" * 201}, "name"),
    ({"steps": [ECHO], "labels": {"k" * 101: "v"}}, "labels"),
    ({"steps": [ECHO] * 101}, "steps"),
    ({"steps": [{"action": "sleep", "params": {"seconds": "1"}}]}, "steps[0].params.seconds"),
    ({"steps": [{"action": "fail", "params": {"retryable": 1}}]}, "steps[0].params.retryable"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "timeout_s": 0}}]},
     "steps[0].params.timeout_s"),
    # a step's shape
    (["echo"], "$"),
    ({"steps": ["echo"]}, "steps[0]"),
    ({"steps": [ECHO, {"action": "echo", "params": {"message": "x"}, "when": "now"}]}, "steps[1].when"),
    ({"steps": [{"action": "echo", "params": ["x"]}]}, "steps[0].params"),
    ({"steps": [{"action": 7}]}, "steps[0].action"),
    # http params the document states
    ({"steps": [{"action": "http", "params": {"url": "http://x", "json": {}, "body": ""}}]},
     "steps[0].params.body"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "body": None}}]},
     "steps[0].params.body"),
    ({"steps": [{"action": "http", "params": {"url": "http://user:pw@x/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://[::1/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://[1:2:3]/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http:// x/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://x:70000/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://.x/"}}]}, "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://bücher.example/"}}]},
     "steps[0].params.url"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "expect_status": True}}]},
     "steps[0].params.expect_status"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "expect_status": []}}]},
     "steps[0].params.expect_status"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "headers": {"A": 1}}}]},
     "steps[0].params.headers"),
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


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# What issue 9 found as 500s: each must be refused as a 422 naming the field. The first ones are
# parsed from JSON text, as the API receives them (Python's json reads NaN, Infinity and 1e999).
@pytest.mark.parametrize(("spec", "field"), [
    (json.loads('{"steps": [{"action": "echo", "params": {"message": "x"}}], "timeout_s": NaN}'),
     "timeout_s"),
    (json.loads('{"steps": [{"action": "echo", "params": {"message": "x"}}], "timeout_s": 1e999}'),
     "timeout_s"),
    (json.loads('{"steps": [{"action": "sleep", "params": {"seconds": -Infinity}}]}'),
     "steps[0].params.seconds"),
    (json.loads('{"steps": [{"action": "http", "params": {"url": "http://x", "json": {"a": [NaN]}}}]}'),
     "steps[0].params.json"),
    (json.loads('{"steps": [{"action": "http", "params": {"url": "http://x", "json": 1e999}}]}'),
     "steps[0].params.json"),
    (json.loads('{"steps": [{"action": "echo", "params": {"message": "a\\u0000b"}}]}'),
     "steps[0].params.message"),
    (json.loads('{"steps": [{"action": "echo", "params": {"message": "\\ud800"}}]}'),
     "steps[0].params.message"),
    (json.loads('{"steps": [{"action": "echo", "params": {"message": "x"}}], "name": "\\udfff"}'),
     "name"),
    ({"steps": [ECHO], "labels": {"team\x00": "web"}}, "labels"),
    ({"steps": [ECHO], "labels": {"team": "\ud83d"}}, "labels"),
    ({"steps": [{"action": "fail", "params": {"message": "\x00"}}]}, "steps[0].params.message"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "headers": {"X-A": "\x00"}}}]},
     "steps[0].params.headers"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "json": {"\x00": 1}}}]},
     "steps[0].params.json"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "json": ["ok", "\ud800"]}}]},
     "steps[0].params.json"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "body": "\x00"}}]},
     "steps[0].params.body"),
    ({"steps": [{"action": "http", "params": {"url": "http://x", "json": _deep(100)}}]},
     "steps[0].params.json"),
])
def test_unstorable_values_are_refused_naming_the_field(spec: Any, field: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        validate_spec(spec)
    assert caught.value.field == field
    assert caught.value.status == 422


def test_an_action_that_is_not_a_string_is_invalid_not_unknown() -> None:
    with pytest.raises(SpecInvalid) as caught:
        validate_spec({"steps": [{"action": ["echo"]}]})
    assert caught.value.code == "invalid_spec"
    assert caught.value.field == "steps[0].action"


def test_the_problem_says_what_is_wrong() -> None:
    with pytest.raises(SpecInvalid) as unknown:
        validate_spec({"steps": [ECHO], "colour": "red"})
    assert "allowed: name, steps, max_attempts, timeout_s, priority, labels" in unknown.value.problem
    with pytest.raises(SpecInvalid) as label:
        validate_spec({"steps": [ECHO], "labels": {"team": 1}})
    assert "'team'" in label.value.problem
    with pytest.raises(SpecInvalid) as nested:
        validate_spec({"steps": [{"action": "http", "params": {"url": "http://x",
                                                                "json": {"a": [1, float("nan")]}}}]})
    assert "['a'][1]" in nested.value.problem


def test_params_are_stored_as_given_and_normalised_when_run() -> None:
    """The stored spec keeps the caller's params (so ``inputs_hash`` and the idempotency hash
    are what they were); the action's ``validate`` gives ``run`` the normalised form."""
    params = {"url": "http://x/hook", "method": "post", "json": None, "expect_status": 201}
    spec = validate_spec({"steps": [{"action": "http", "params": params}], "timeout_s": 5})
    assert spec["steps"] == [{"action": "http", "params": params}]
    assert spec["timeout_s"] == 5.0 and isinstance(spec["timeout_s"], float)
    assert inputs_hash(spec["steps"][0]["params"]) == inputs_hash(dict(params))
    assert HttpAction().validate(params, "steps[0].params") == {
        "method": "POST", "url": "http://x/hook", "headers": {}, "json": None, "has_json": True,
        "body": None, "timeout_s": 30.0, "expect_status": [201]}


def test_a_whole_json_number_is_an_integer() -> None:
    """JSON (and JSON Schema) do not tell 3.0 from 3: both are the integer 3."""
    spec = validate_spec({"steps": [{"action": "http", "params": {"url": "http://x",
                                                                   "expect_status": 201.0}}],
                          "max_attempts": 3.0, "priority": -1.0})
    assert (spec["max_attempts"], spec["priority"]) == (3, -1)
    assert type(spec["max_attempts"]) is int and type(spec["priority"]) is int
    assert HttpAction().validate(spec["steps"][0]["params"], "s")["expect_status"] == [201]


def test_a_stored_spec_validates_to_itself() -> None:
    """The worker and the batch path may validate a stored spec again: nothing changes."""
    spec = validate_spec({"name": "n", "steps": [{"action": "fail"}], "timeout_s": 1,
                          "labels": {"a": "b"}})
    assert validate_spec(spec) == spec


@pytest.mark.parametrize(("body", "field", "code"), [
    ([], "$", "invalid_spec"),
    ({}, "tasks", "invalid_spec"),
    ({"tasks": []}, "tasks", "invalid_spec"),
    ({"tasks": [{"steps": [ECHO]}], "priority": 1}, "priority", "invalid_spec"),
    ({"tasks": [{"steps": [ECHO]}, 5]}, "tasks[1]", "invalid_spec"),
    ({"tasks": [{"steps": [ECHO]}, {"steps": []}]}, "tasks[1].steps", "invalid_spec"),
    ({"tasks": [{"steps": [ECHO]}, {"steps": [ECHO, {"action": "teleport"}]}]},
     "tasks[1].steps[1].action", "unknown_action"),
    ({"tasks": [{"steps": [{"action": "echo", "params": {"message": 2}}]}]},
     "tasks[0].steps[0].params.message", "invalid_spec"),
])
def test_invalid_batch_names_the_task_and_field(body: Any, field: str, code: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        validate_batch(body)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_a_valid_batch_is_each_task_as_stored() -> None:
    tasks = [{"steps": [ECHO]}, {"name": "b", "steps": [{"action": "sleep", "params": {"seconds": 0}}]}]
    assert validate_batch({"tasks": tasks}) == [validate_spec(task) for task in tasks]

"""``/openapi.json`` is generated from the models that validate requests: every action's params
model is in it, a new or changed model shows up by itself, and the document's schemas accept and
refuse what the server accepts and refuses."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from pydantic import Field

from actions import REGISTRY
from actions.base import ActionContext, ActionParams, ActionResult, validate_params
from api.openapi import TRACE_ID_PATTERN, openapi_document
from app import create_app
from config import load_settings
from errors import InvalidTraceId, SpecInvalid
from runtime import build_runtime
from services.spec import task_spec_model, validate_spec
from tracing import canonical_trace_id
from validation import SecretRef, Text

REF = "#/components/schemas/"


def _step_mapping(document: dict[str, Any]) -> dict[str, str]:
    steps = document["components"]["schemas"]["TaskSpec"]["properties"]["steps"]
    return steps["items"]["discriminator"]["mapping"]  # type: ignore[no-any-return]


def _params_schema(document: dict[str, Any], action: str) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    step = schemas[_step_mapping(document)[action].removeprefix(REF)]
    return schemas[step["properties"]["params"]["$ref"].removeprefix(REF)]  # type: ignore[no-any-return]


def test_every_registered_action_has_its_params_in_the_document() -> None:
    document = openapi_document()
    assert set(_step_mapping(document)) == set(REGISTRY)
    for name, action in REGISTRY.items():
        fields = {field.alias or key for key, field in action.params_model.model_fields.items()}
        params = _params_schema(document, name)
        assert params["title"] == action.params_model.__name__
        assert set(params["properties"]) == fields
        assert params["additionalProperties"] is False
    validate_openapi(document)


class ProbeParams(ActionParams):
    """Params of a probe that runs a command (the shape issue 10's `command` will have)."""

    argv: list[Text] = Field(min_length=1)
    env: dict[Text, Text | SecretRef] = Field(default_factory=dict)


class ProbeParamsWithTimeout(ProbeParams):
    timeout_s: float = Field(60.0, gt=0, le=600)


class ProbeAction:
    name = "run-probe"

    def __init__(self, params_model: type[ActionParams] = ProbeParams) -> None:
        self.params_model = params_model

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        return validate_params(self.params_model, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        return ActionResult()


def test_a_new_action_appears_in_the_document_by_declaring_its_params_model() -> None:
    document = openapi_document({**REGISTRY, "run-probe": ProbeAction()})
    validate_openapi(document)
    schemas = document["components"]["schemas"]
    assert _step_mapping(document)["run-probe"] == f"{REF}RunProbeStep"
    probe = _params_schema(document, "run-probe")
    assert probe["required"] == ["argv"]
    assert probe["properties"]["argv"]["minItems"] == 1
    assert probe["properties"]["env"]["additionalProperties"]["anyOf"][1] == {"$ref": f"{REF}SecretRef"}
    assert schemas["SecretRef"]["required"] == ["secret"]
    assert "ProbeParams" not in openapi_document()["components"]["schemas"]


def test_a_changed_params_model_changes_the_document() -> None:
    before = _params_schema(openapi_document({"run-probe": ProbeAction(), **REGISTRY}), "run-probe")
    after = _params_schema(openapi_document({"run-probe": ProbeAction(ProbeParamsWithTimeout),
                                             **REGISTRY}), "run-probe")
    assert set(after["properties"]) - set(before["properties"]) == {"timeout_s"}
    assert after["properties"]["timeout_s"]["maximum"] == 600


def test_a_new_action_is_validated_by_its_params_model() -> None:
    model = task_spec_model({**REGISTRY, "run-probe": ProbeAction()})
    step = {"action": "run-probe", "params": {"argv": ["make"], "env": {"T": {"secret": "tok"}}}}
    assert validate_spec({"steps": [step]}, model)["steps"] == [step]
    for params, field in [({"argv": []}, "steps[0].params.argv"),
                          ({"argv": ["x"], "env": {"T": {"secret": 1}}}, "steps[0].params.env"),
                          ({"argv": ["x"], "shell": "rm -rf /"}, "steps[0].params.shell")]:
        with pytest.raises(SpecInvalid) as caught:
            validate_spec({"steps": [{"action": "run-probe", "params": params}]}, model)
        assert caught.value.field == field


ECHO = {"action": "echo", "params": {"message": "x"}}
HTTP = {"action": "http", "params": {"url": "http://127.0.0.1:9000/hook"}}


def _http(**params: Any) -> dict[str, Any]:
    return {"steps": [{"action": "http", "params": {"url": "http://x/", **params}}]}


# Specs a JSON Schema validator can judge: the document must accept exactly those the server
# accepts. (Lone surrogates, NaN and depth are beyond JSON Schema; test_spec.py covers them.)
AGREEMENT = [
    {"steps": [ECHO]},
    {"steps": [ECHO, HTTP], "name": "n", "max_attempts": 100, "timeout_s": 0.5, "priority": -100,
     "labels": {"team": "web"}},
    {"steps": [{"action": "fail"}], "name": None, "timeout_s": None},
    {"steps": [{"action": "sleep", "params": {"seconds": 86400}}]},
    _http(method="post", json={"a": [1, None, True, "s"]}, headers={"X": "1"}, expect_status=201),
    _http(method="DeLeTe", body="text", timeout_s=0.1, expect_status=[200, 404]),
    _http(url="https://[::1]:8443/p?q#f"),
    _http(url="HTTP://Example.COM"),
    [],
    {},
    {"steps": []},
    {"steps": [ECHO] * 101},
    {"steps": [{"action": "echo"}]},
    {"steps": [{"action": "echo", "params": {}}]},
    {"steps": [{"action": "echo", "params": {"message": 1}}]},
    {"steps": [{"action": "teleport"}]},
    {"steps": [{"params": {}}]},
    {"steps": [ECHO], "max_attempts": True},
    {"steps": [ECHO], "max_attempts": 0},
    {"steps": [ECHO], "max_attempts": 1.5},
    {"steps": [ECHO], "timeout_s": 0},
    {"steps": [ECHO], "timeout_s": 86401},
    {"steps": [ECHO], "priority": 101},
    {"steps": [ECHO], "name": ""},
    {"steps": [ECHO], "name": "x" * 201},
    {"steps": [ECHO], "labels": {"a": 1}},
    {"steps": [ECHO], "labels": {f"k{i}": "v" for i in range(51)}},
    {"steps": [ECHO], "labels": {"k" * 101: "v"}},
    {"steps": [ECHO], "labels": {"k": "v" * 201}},
    {"steps": [ECHO], "labels": {"k\x00": "v"}},
    {"steps": [ECHO], "colour": "red"},
    {"steps": [{"action": "echo", "params": {"message": "a\x00"}}]},
    {"steps": [{"action": "echo", "params": {"message": "x"}, "extra": 1}]},
    {"steps": [{"action": "sleep", "params": {"seconds": -1}}]},
    {"steps": [{"action": "fail", "params": {"retryable": "no"}}]},
    _http(url="ftp://x/"),
    _http(url="http://user@x/"),
    _http(url="http://x y/"),
    _http(url="http:///path"),
    _http(url="http://x\\y/"),
    _http(url="http://x:65536/"),
    _http(url="http://*.x/"),
    _http(url="http://xn--bcher-kva.example:65535/"),
    _http(url="http://bücher.example/"),
    _http(method="BREW"),
    _http(json={"a": 1}, body="b"),
    _http(body=None),
    _http(expect_status=[99]),
    _http(expect_status=[]),
    _http(expect_status=True),
    _http(timeout_s=0.05),
    _http(headers={"X": 1}),
    _http(json={"a": "\x00"}),
]


def _accepted(spec: Any) -> bool:
    try:
        validate_spec(spec)
    except SpecInvalid:
        return False
    return True


@pytest.mark.parametrize("spec", AGREEMENT)
def test_the_document_accepts_what_the_server_accepts(spec: Any) -> None:
    components = openapi_document()["components"]
    validator = Draft202012Validator({"$ref": f"{REF}TaskSpec", "components": components})
    assert validator.is_valid(spec) == _accepted(spec)


def test_the_agreement_table_has_both_kinds() -> None:
    verdicts = [_accepted(spec) for spec in AGREEMENT]
    assert verdicts.count(True) >= 8 and verdicts.count(False) >= 30


TRACE_IDS = [str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex, uuid.uuid4().hex.upper(),
             "", "not-a-uuid", uuid.uuid4().hex[:31], uuid.uuid4().hex + "0",
             "{" + str(uuid.uuid4()) + "}", "urn:uuid:" + str(uuid.uuid4()),
             "-".join([uuid.uuid4().hex[:8], uuid.uuid4().hex[:8], uuid.uuid4().hex[:16]]),
             str(uuid.uuid4()).replace("-", "", 1) + "-", "g" * 32]


@pytest.mark.parametrize("value", TRACE_IDS)
def test_the_trace_id_pattern_is_what_the_server_accepts(value: str) -> None:
    try:
        canonical_trace_id(value)
        accepted = True
    except InvalidTraceId:
        accepted = False
    assert bool(re.fullmatch(TRACE_ID_PATTERN, value)) == accepted


def test_a_method_a_path_does_not_list_is_405_with_allow() -> None:
    """As the document's description and ``MethodNotAllowed`` response say, for every path."""
    document = openapi_document()
    assert "Allow" in document["components"]["responses"]["MethodNotAllowed"]["headers"]
    client = create_app(build_runtime("api", load_settings({}), configure_logs=False)).test_client()
    for path, item in document["paths"].items():
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method, headers in (("TRACE", {}), ("PUT", {}), ("DELETE", {}),
                                ("TRACE", {"X-Trace-Id": ""}), ("TRACE", {"X-Trace-Id": "x"})):
            response = client.open(url, method=method, headers=headers)
            assert response.status_code == 405, (method, path)
            assert response.get_json()["error"] == "method_not_allowed"
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert {m.upper() for m in item} <= allowed, (path, allowed)

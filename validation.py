"""Request shapes as pydantic models: the strict base every spec and params model extends, the
field types that keep input storable, and the translation of a pydantic error into the contract's
``SpecInvalid(field, problem)`` (``steps[0].params.message``).

The models are the single declaration of a shape: they validate requests, and ``/openapi.json``
is generated from them. So a constraint pydantic cannot state in JSON Schema by itself is added to
the schema here (``SchemaPattern``), next to the check that enforces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

from credentials import NAME_RULE, SECRET_NAME
from errors import SpecInvalid

NO_NUL = r"^[^\x00]*$"
MAX_JSON_DEPTH = 64


class SpecModel(BaseModel):
    """Closed (unknown fields are errors), strict (``true`` is not a number, ``"1"`` not an
    integer), and finite (NaN and ±Infinity are refused: JSON has no such numbers and PostgreSQL
    would refuse them later)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class SchemaPattern:
    """Adds ``pattern`` to a field's JSON Schema: the regular expression that the field's own
    validator enforces (the validator gives the readable error; the document states the rule)."""

    pattern: str

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


def storable_text(value: str) -> str:
    """PostgreSQL stores neither NUL nor a lone surrogate (which JSON's ``\\ud800`` can carry)."""
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("lone_surrogate",
                                  "must be valid Unicode (a lone surrogate cannot be stored)") from None
    return value


Text = Annotated[str, AfterValidator(storable_text), SchemaPattern(NO_NUL)]


def _secret_name(value: str) -> str:
    if not SECRET_NAME.fullmatch(value):
        raise PydanticCustomError("secret_name", NAME_RULE)
    return value


def whole_number(value: Any) -> Any:
    """JSON has one number type: ``3.0`` is the integer 3, as JSON Schema says; ``3.5``, ``true``
    and ``"3"`` stay refused (strict)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Last in an ``Annotated[int, Field(...), WHOLE_NUMBER]``: after the constraints, so that they
# stay JSON Schema keywords.
WHOLE_NUMBER = BeforeValidator(whole_number)


def storable_json(value: Any) -> Any:
    """Any JSON value whose strings are storable text and whose numbers are finite, at most
    ``MAX_JSON_DEPTH`` levels deep."""
    _check_json(value, "", MAX_JSON_DEPTH)
    return value


def _check_json(value: Any, at: str, depth: int) -> None:
    if depth <= 0:
        raise _json_error(at, f"nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, at)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _json_error(at, "must be a finite number")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{at}[{index}]", depth - 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{at}[{key!a}] (the key)")
            _check_json(item, f"{at}[{key!a}]", depth - 1)
    elif value is not None and not isinstance(value, bool | int | float):
        raise _json_error(at, "must be a JSON value")


def _check_text(value: Any, at: str) -> None:
    if not isinstance(value, str):
        raise _json_error(at, "must be a string")
    try:
        storable_text(value)
    except PydanticCustomError as exc:
        raise _json_error(at, exc.message()) from None


def _json_error(at: str, text: str) -> PydanticCustomError:
    return PydanticCustomError("json_value", "{at}{text}",
                               {"at": f"at {at.strip()}: " if at else "", "text": text})


# The shape the document states; the validator above checks it (pydantic's own union validation
# would report one error per union member and cannot bound the depth).
JsonValue = TypeAliasType(
    "JsonValue", "bool | int | float | Text | list[JsonValue] | dict[Text, JsonValue] | None")
StorableJson = Annotated[Any, PlainValidator(storable_json, json_schema_input_type=JsonValue)]


class SecretRef(SpecModel):
    """``{"secret": "name"}``: a value the worker resolves at run time from the configured
    secret source (``credentials``); the name is stored and shown, never the value."""

    secret: Annotated[str, SchemaPattern(f"^{SECRET_NAME.pattern}$"),
                      AfterValidator(_secret_name)] = Field(description=NAME_RULE)


# ── errors ─────────────────────────────────────────────────────────────────────────────────


def first_error(exc: ValidationError) -> ErrorDetails:
    """The error to report: pydantic lists them in field order; the contract names one field."""
    return exc.errors(include_url=False, include_context=True)[0]


def field_invalid(where: str, loc: Sequence[int | str], error: ErrorDetails, data: Any,
                  model: type[BaseModel] | None) -> SpecInvalid:
    """``SpecInvalid`` naming ``where`` plus the first segment of ``loc`` (a field of ``model``);
    deeper segments (a label's key, an item of a list param) are told in the problem."""
    if not loc:
        return SpecInvalid(where or "$", problem(error, model))
    name = str(loc[0])
    field = f"{where}.{name}" if where else name
    inner = data.get(name) if isinstance(data, dict) else None
    return SpecInvalid(field, problem(error, model, _sub_path(inner, loc[1:])))


def problem(error: ErrorDetails, model: type[BaseModel] | None, at: str = "") -> str:
    kind = error["type"]
    if kind == "missing":
        text = "is required"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        text = "must be an object"
    elif kind in ("too_short", "too_long") and isinstance(error.get("input"), str):
        # pydantic counts "items" once a validator wraps the string; these are characters
        context = error.get("ctx", {})
        text = (f"must have at least {context.get('min_length')} character(s)" if kind == "too_short"
                else f"must have at most {context.get('max_length')} character(s)")
    elif kind == "extra_forbidden" and model is not None and not at:
        allowed = ", ".join(f.alias or name for name, f in model.model_fields.items())
        text = f"unknown field; allowed: {allowed}"
    else:
        text = error["msg"]
    return f"at {at}: {text}" if at else text


def _sub_path(node: Any, segments: Sequence[int | str]) -> str:
    """Where inside a field the error is, following the input: segments that are not keys or
    indexes of the input (the names pydantic gives union members) are skipped."""
    path = ""
    for segment in segments:
        if isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            path, node = f"{path}[{segment}]", node[segment]
        elif isinstance(node, dict) and segment in node:
            path, node = f"{path}[{segment!a}]", node[segment]
    return path

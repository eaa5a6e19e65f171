"""The task spec: its model, validation that names the failing field, and the canonical hash of
a step's params.

``TaskSpec``'s steps are a union of one step model per registered action (its ``params`` is the
action's params model, chosen by ``action``), so an action added to the registry is validated
and documented in ``/openapi.json`` without a change here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from actions import REGISTRY
from actions.base import Action, ActionParams
from errors import SpecInvalid, UnknownAction
from validation import WHOLE_NUMBER, SpecModel, Text, field_invalid, first_error

MAX_STEPS = 100
MAX_BATCH = 1000
DEFAULT_MAX_ATTEMPTS = 3

Name = Annotated[Text, Field(min_length=1, max_length=200)]
LabelKey = Annotated[Text, Field(max_length=100)]
LabelValue = Annotated[Text, Field(max_length=200)]


def _params_required_if_needed(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Absent params are validated as ``{}``; where the action requires some, the document says
    ``params`` is required (the error still names the missing param)."""
    params = model.model_fields["params"].annotation
    if isinstance(params, type) and issubclass(params, BaseModel) and (
            getattr(params, "params_required", False)
            or any(field.is_required() for field in params.model_fields.values())):
        schema["required"] = sorted({*schema.get("required", []), "params"})


class Step(SpecModel):
    """One step; ``step_model`` makes each action's variant."""

    model_config = ConfigDict(json_schema_extra=_params_required_if_needed)

    action: str
    params: ActionParams


class TaskSpec(SpecModel):
    """A task: only `steps` is required; steps run in order and a failing step fails the
    attempt."""

    # ``task_spec_model`` makes the concrete model, whose steps are the registered actions'.

    params_models: ClassVar[dict[str, type[ActionParams]]] = {}

    name: Name | None = Field(None, description="Shown in lists and logs; need not be unique.")
    steps: Sequence[Step] = Field(min_length=1, max_length=MAX_STEPS)
    max_attempts: Annotated[int, Field(ge=1, le=100), WHOLE_NUMBER] = Field(
        DEFAULT_MAX_ATTEMPTS, description="Attempts in all, the first included.")
    timeout_s: float | None = Field(None, gt=0, le=86400,
                                    description="Each attempt's deadline, in seconds.")
    priority: Annotated[int, Field(ge=-100, le=100), WHOLE_NUMBER] = Field(
        0, description="Higher runs first.")
    labels: dict[LabelKey, LabelValue] = Field({}, max_length=50,
                                               description="Free-form `key: value` tags.")


class BatchRequest(SpecModel):
    """Several tasks, stored in one transaction under one trace id: all or none."""

    task_spec: ClassVar[type[TaskSpec]] = TaskSpec

    tasks: Sequence[TaskSpec] = Field(min_length=1, max_length=MAX_BATCH)


def step_model(action: Action) -> type[Step]:
    """``<Action>Step``: ``action`` is the action's name, ``params`` its params model (absent
    params are ``{}``, validated like any other)."""
    title = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", action.name))
    tag: Any = Literal[action.name]
    return create_model(
        f"{title}Step", __base__=Step, __doc__=f"A step running the `{action.name}` action.",
        action=(tag, ...),
        params=(action.params_model, Field(default_factory=dict, validate_default=True)))


def task_spec_model(actions: Mapping[str, Action]) -> type[TaskSpec]:
    """The task spec model whose steps are ``actions``' steps, told apart by ``action``."""
    variants = tuple(step_model(action) for action in actions.values())
    step: Any = Annotated[Union[variants], Field(discriminator="action")]  # noqa: UP007
    model = create_model("TaskSpec", __base__=TaskSpec, __doc__=TaskSpec.__doc__,
                         steps=(list[step], Field(min_length=1, max_length=MAX_STEPS)))
    model.params_models = {name: action.params_model for name, action in actions.items()}
    return model


def batch_request_model(task_spec: type[TaskSpec]) -> type[BatchRequest]:
    tasks: Any = list[task_spec]  # type: ignore[valid-type]
    model = create_model("BatchRequest", __base__=BatchRequest, __doc__=BatchRequest.__doc__,
                         tasks=(tasks, Field(min_length=1, max_length=MAX_BATCH)))
    model.task_spec = task_spec
    return model


TASK_SPEC = task_spec_model(REGISTRY)
BATCH_REQUEST = batch_request_model(TASK_SPEC)


def validate_spec(raw: Any, model: type[TaskSpec] = TASK_SPEC) -> dict[str, Any]:
    """The spec as stored, or ``SpecInvalid`` (``UnknownAction``) naming the field."""
    try:
        spec = model.model_validate(raw)
    except ValidationError as exc:
        error = first_error(exc)
        raise _spec_invalid("", error["loc"], error, raw, model) from None
    return _stored(spec, raw)


def validate_batch(raw: Any, model: type[BatchRequest] = BATCH_REQUEST) -> list[dict[str, Any]]:
    """Each task of a batch request as stored; errors name ``tasks[i].<field>``."""
    try:
        batch = model.model_validate(raw)
    except ValidationError as exc:
        error = first_error(exc)
        loc = error["loc"]
        if len(loc) > 1 and loc[0] == "tasks" and isinstance(loc[1], int):
            raise _spec_invalid(f"tasks[{loc[1]}]", loc[2:], error, raw["tasks"][loc[1]],
                                model.task_spec) from None
        raise field_invalid("", loc, error, raw, model) from None
    return [_stored(spec, raw_spec) for spec, raw_spec in zip(batch.tasks, raw["tasks"], strict=True)]


def _stored(spec: TaskSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """Params are stored as the caller gave them (the action normalises them when it runs), so
    ``inputs_hash`` and the idempotency hash cover exactly what was sent."""
    return {
        "name": spec.name,
        "steps": [{"action": step.action, "params": raw_step.get("params", {})}
                  for step, raw_step in zip(spec.steps, raw["steps"], strict=True)],
        "max_attempts": spec.max_attempts,
        "timeout_s": spec.timeout_s,
        "priority": spec.priority,
        "labels": spec.labels,
    }


def _spec_invalid(where: str, loc: Sequence[int | str], error: ErrorDetails, raw: Any,
                  model: type[TaskSpec]) -> SpecInvalid:
    if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int):
        prefix = f"{where}." if where else ""
        return _step_invalid(f"{prefix}steps[{loc[1]}]", loc[2:], error, raw["steps"][loc[1]],
                             model.params_models)
    return field_invalid(where, loc, error, raw, model)


def _step_invalid(where: str, loc: Sequence[int | str], error: ErrorDetails, raw: Any,
                  params_models: dict[str, type[ActionParams]]) -> SpecInvalid:
    """Below ``steps[i]`` pydantic's location starts with the action (the union's tag)."""
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        action = raw.get("action")
        if isinstance(action, str):
            return UnknownAction(f"{where}.action",
                                 f"unknown action {action!r}; known: {sorted(params_models)}")
        return SpecInvalid(f"{where}.action", "is required and must be a string")
    if not loc:
        return SpecInvalid(where, "must be an object with action and params")
    action, rest = str(loc[0]), loc[1:]
    if rest[:1] == ("params",):
        return field_invalid(f"{where}.params", rest[1:], error, raw.get("params", {}),
                             params_models[action])
    return field_invalid(where, rest, error, raw, Step)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inputs_hash(params: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a step's params: same inputs, same hash."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()

"""Task spec validation: returns a normalised spec or raises ``SpecInvalid`` naming the field."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from actions import REGISTRY, get_action
from errors import SpecInvalid, UnknownAction

TOP_LEVEL = {"name", "steps", "max_attempts", "timeout_s", "priority", "labels"}
MAX_STEPS = 100
DEFAULT_MAX_ATTEMPTS = 3


def validate_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise SpecInvalid("$", "the task spec must be a JSON object")
    unknown = sorted(set(spec) - TOP_LEVEL)
    if unknown:
        raise SpecInvalid(unknown[0], f"unknown field; allowed: {sorted(TOP_LEVEL)}")
    return {
        "name": _name(spec.get("name")),
        "steps": _steps(spec.get("steps")),
        "max_attempts": _int(spec, "max_attempts", DEFAULT_MAX_ATTEMPTS, 1, 100),
        "timeout_s": _timeout(spec.get("timeout_s")),
        "priority": _int(spec, "priority", 0, -100, 100),
        "labels": _labels(spec.get("labels", {})),
    }


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise SpecInvalid("name", "must be a string of 1 to 200 characters")
    return value


def _steps(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise SpecInvalid("steps", "is required: a list of 1 or more steps")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_STEPS:
        raise SpecInvalid("steps", f"must be a list of 1 to {MAX_STEPS} steps")
    return [_step(step, f"steps[{i}]") for i, step in enumerate(value)]


def _step(step: Any, where: str) -> dict[str, Any]:
    if not isinstance(step, dict):
        raise SpecInvalid(where, "must be an object with action and params")
    unknown = sorted(set(step) - {"action", "params"})
    if unknown:
        raise SpecInvalid(f"{where}.{unknown[0]}", "unknown field; allowed: action, params")
    name = step.get("action")
    if not isinstance(name, str):
        raise SpecInvalid(f"{where}.action", "is required and must be a string")
    action = get_action(name)
    if action is None:
        raise UnknownAction(f"{where}.action", f"unknown action {name!r}; known: {sorted(REGISTRY)}")
    params = step.get("params", {})
    if not isinstance(params, dict):
        raise SpecInvalid(f"{where}.params", "must be an object")
    action.validate(params, f"{where}.params")
    return {"action": name, "params": params}


def _int(spec: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecInvalid(key, f"must be a whole number from {low} to {high}")
    return value


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise SpecInvalid("timeout_s", "must be a number of seconds, more than 0 and at most 86400")
    return float(value)


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 50 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 100 and len(v) <= 200
            for k, v in value.items()):
        raise SpecInvalid("labels", "must be an object of up to 50 string keys and string values")
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inputs_hash(params: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a step's params: same inputs, same hash."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()

"""The request schemas of ``/openapi.json``, generated from the models that validate requests
(``services/spec.py`` and each action's params model), so the document cannot drift from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

REF_TEMPLATE = "#/components/schemas/{model}"


class DocumentSchema(GenerateJsonSchema):
    """pydantic's JSON Schema with one correction: a dict whose key type has a pattern gets
    ``propertyNames`` (pydantic writes ``patternProperties``, which lets every other key
    through with any value)."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            json_schema["additionalProperties"] = values
            json_schema["propertyNames"] = {**json_schema.get("propertyNames", {}), "pattern": pattern}
        return json_schema


def request_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """Component schemas for ``models`` and every model and alias they refer to, by name."""
    _, top = models_json_schema([(model, "validation") for model in models],
                                ref_template=REF_TEMPLATE, schema_generator=DocumentSchema)
    return dict(top.get("$defs", {}))

"""Action input: from HTTP to a validated dict (jsonschema), with errors that name fields.

One JSON Schema per action does two jobs: it validates requests here and describes the
action in the OpenAPI document. Query strings carry only text, so for GET and DELETE the
values are first read as the types the schema asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from ..errors import ValidationFailed
from ..types import Action

QUERY_METHODS = frozenset({"GET", "DELETE"})


class InputValidator:
    def __init__(self, action: Action) -> None:
        Draft202012Validator.check_schema(action.input_schema)
        self.action = action
        self.schema = action.input_schema
        self._validator = Draft202012Validator(action.input_schema, format_checker=FormatChecker())

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        value = dict(data)
        found = [p for err in self._validator.iter_errors(value) for p in _describe(err)]
        # jsonschema reports "required" once per missing name, each naming them all.
        problems = list({(p["field"], p["problem"]): p for p in found}.values())
        if problems:
            problems.sort(key=lambda p: p["field"])
            summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
            raise ValidationFailed(f"invalid input: {summary}", details=problems)
        return value

    def from_query(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        """Read query parameters as the types the schema's properties declare."""
        props = self.schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, values in query.items():
            spec = props.get(key, {})
            kind = spec.get("type")
            if kind == "array":
                items = [v for raw in values for v in raw.split(",") if v != ""]
                out[key] = [_coerce(v, spec.get("items", {}).get("type")) for v in items]
            else:
                out[key] = _coerce(values[-1], kind) if len(values) == 1 else [_coerce(v, kind) for v in values]
        return out


def _coerce(value: str, kind: Any) -> Any:
    kinds = kind if isinstance(kind, list) else [kind]
    if "integer" in kinds:
        try:
            return int(value)
        except ValueError:
            return value
    if "number" in kinds:
        try:
            return float(value)
        except ValueError:
            return value
    if "boolean" in kinds:
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return value


def _describe(err: SchemaError) -> list[dict[str, str]]:
    base = ".".join(str(p) for p in err.absolute_path)

    def at(name: str) -> str:
        return f"{base}.{name}" if base else name

    if err.validator == "required" and isinstance(err.instance, Mapping):
        return [{"field": at(name), "problem": "is required"} for name in err.validator_value if name not in err.instance]
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        known = set(err.schema.get("properties", {}))
        return [{"field": at(str(name)), "problem": "is not a known field"} for name in err.instance if name not in known]
    problem = err.message
    if len(problem) > 200:
        problem = problem[:200] + "..."
    return [{"field": base or "(input)", "problem": problem}]

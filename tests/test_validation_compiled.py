"""Action input passes through a compiled check when it is valid; anything the compiled
check does not accept is decided, and worded, by jsonschema as before."""

from __future__ import annotations

from typing import Any

import pytest
from support import make_registry

import hub.validation as V
from hub import schemacheck, yamlprov
from hub import Action, CallContext
from hub.errors import ValidationFailed


async def handler(ctx: CallContext) -> Any:
    return {}


def validator(schema: dict[str, Any]) -> V.InputValidator:
    return V.InputValidator(Action(name="a", method="POST", path="a", handler=handler, input_schema=schema))


SCHEMA = {
    "type": "object",
    "properties": {
        "day": {"type": "string", "format": "date", "maxLength": 10},
        "when": {"type": "string", "format": "date-time", "maxLength": 40},
        "mail": {"type": "string", "format": "email", "maxLength": 254},
        "code": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 20},
        "n": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3, "uniqueItems": True},
    },
    "required": ["day"],
    "additionalProperties": False,
}


def test_valid_input_never_reaches_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    v = validator(SCHEMA)

    class Refuse:
        def iter_errors(self, *_a: Any) -> Any:
            raise AssertionError("jsonschema ran on valid input")

    monkeypatch.setattr(v, "_validator", Refuse())
    assert v.validate({"day": "2026-02-28", "tags": ["a", "b"], "n": 3}) == {"day": "2026-02-28", "tags": ["a", "b"], "n": 3}


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ({"day": "2026-02-30"}, "day", "is not a 'date'"),  # the hub's own date rule, not the compiler's
        ({"day": "2026-02-28", "when": "2026-02-28T25:00:00Z"}, "when", "is not a 'date-time'"),
        ({"day": "2026-02-28", "mail": "no-at-sign"}, "mail", "is not a 'email'"),
        ({"day": "2026-02-28", "code": "ABC"}, "code", "does not match"),
        ({"day": "2026-02-28", "n": -1}, "n", "less than the minimum"),
        ({"day": "2026-02-28", "tags": ["a", "a"]}, "tags", "non-unique"),
        ({"day": "2026-02-28", "tags": ["a", "b", "c", "d"]}, "tags", "has 4 items, at most 3 allowed"),
        ({"day": "2026-02-28", "other": 1}, "other", "is not a known field"),
        ({}, "day", "is required"),
    ],
)
def test_invalid_input_is_refused_with_jsonschemas_words(value: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validator(SCHEMA).validate(value)
    problems = caught.value.details
    assert any(p["field"] == field and problem in p["problem"] for p in problems), problems


def test_a_schema_the_compiler_refuses_is_checked_by_jsonschema_alone() -> None:
    # \Z (end of text) is Python's alone: the compiler's regex engine refuses the pattern.
    v = validator({"type": "object", "properties": {"x": {"type": "string", "pattern": r"\Aab\Z"}}})
    assert v._valid is schemacheck._never
    assert v.validate({"x": "ab"}) == {"x": "ab"}
    with pytest.raises(ValidationFailed):
        v.validate({"x": "abc"})


def test_a_ref_outside_the_schema_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    monkeypatch.setattr(schemacheck, "_no_retrieval", lambda uri: fetched.append(uri) or (_ for _ in ()).throw(LookupError(uri)))
    check = schemacheck.compiled_check({"$ref": "http://127.0.0.1:9/schema.json"})
    assert check is schemacheck._never and fetched == ["http://127.0.0.1:9/schema.json"]


def test_an_integer_too_wide_for_the_compiler_is_decided_by_jsonschema() -> None:
    v = validator({"type": "object", "properties": {"n": {"type": "integer", "maximum": 10**30}}})
    assert v.validate({"n": 10**25}) == {"n": 10**25}
    with pytest.raises(ValidationFailed):
        v.validate({"n": 10**31})


def _variants(schema: Any, example: dict[str, Any]) -> list[Any]:
    """The example, and the example spoilt in the ways input usually is."""
    out: list[Any] = [dict(example), {}, {**example, "unknown_field": 1}]
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for name in props:
        for bad in (None, 0, -1, 1.5, True, "", "x" * 5000, "2026-13-45", "not an email", [], ["a", "a"], {"a": 1}, ["x"] * 500):
            out.append({**example, name: bad})
        out.append({k: v for k, v in example.items() if k != name})
    return out


def test_the_compiled_check_never_accepts_what_jsonschema_refuses() -> None:
    """Over every built-in action's schema and a spread of spoilt inputs: wherever the
    compiled check says yes, jsonschema finds nothing wrong."""
    registry = make_registry()
    registry.load_provider_files(sorted(p.stem for p in yamlprov.CATALOGUE.glob("*.yaml")))
    assert not registry.failures
    checked = 0
    for plugin in registry.providers.values():
        for action in plugin.actions:
            v = V.InputValidator(action)
            for example in action.examples or ({},):
                for value in _variants(action.input_schema, dict(example)):
                    if V.too_deep(value) is not None or V.size_problems(v.schema, value):
                        continue
                    jsonschema_ok = not list(v._validator.iter_errors(value))
                    if v._valid(value):
                        assert jsonschema_ok, (plugin.name, action.name, value)
                    checked += 1
    assert checked > 1000


def test_the_meta_schema_check_is_made_once_per_unchanged_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry and the runtime both build an action's validator at start-up: the second
    skips the meta-schema walk, unless the schema changed in between."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    checked: list[Any] = []
    real = Draft202012Validator.check_schema
    monkeypatch.setattr(Draft202012Validator, "check_schema", lambda schema: (checked.append(schema), real(schema)))
    schema: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    validator(schema)
    validator(schema)
    assert len(checked) == 1
    schema["properties"]["n"]["type"] = "whole"  # changed since: checked again, and refused
    with pytest.raises(SchemaError):
        validator(schema)
    with pytest.raises(SchemaError):
        validator(schema)
    assert len(checked) == 3

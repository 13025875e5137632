"""The compiled yes/no that lets valid action input skip jsonschema (hub/validation.py),
and the meta-schema check of an action's schemas, made once per schema.

jsonschema walks a schema in Python on every call: about 30 µs for a small action's input.
jsonschema-rs compiles the schema once and answers in about 1 µs, but its own refusals
are worded its own way, and clients and tests rely on the hub's. So only its yes is used:
valid input, the common case, is done with; anything else goes to jsonschema as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from .formats import FORMATS


def check_schema(schema: Mapping[str, Any]) -> None:
    """Draft 2020-12's meta-schema check of ``schema`` (raises jsonschema's ``SchemaError``),
    skipped for the same schema object, unchanged, once it has passed. The registry checks
    an action's input schema as it loads the plugin, the runtime's validator again right
    after; each check walks the meta-schema in jsonschema, about 2 ms, and twice over the
    21 actions of three plugins that was some 45 ms of the hub's start-up (P6)."""
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        text = None
    if text is not None and _PASSED.get(id(schema)) == (schema, text):
        return
    Draft202012Validator.check_schema(schema)
    if text is not None:
        if len(_PASSED) >= 10_000:  # plugins loaded again and again (tests): start afresh
            _PASSED.clear()
        _PASSED[id(schema)] = (schema, text)  # kept, so that its id stays its own


# Schemas that passed the meta-schema check, by id, each with its JSON text when it passed.
_PASSED: dict[int, tuple[Mapping[str, Any], str]] = {}


def compiled_check(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A fast yes/no for ``schema``: the schema compiled by jsonschema-rs, with the formats
    checked by the hub's own rules (:data:`FORMATS`, the same functions jsonschema calls).

    Only a yes is taken from it. Anything else, a no or any error in it, sends the input
    through jsonschema, which finds and words the problems as before; so input the
    compiled check wrongly refuses costs time, never a wrong answer. A schema it cannot
    compile (a pattern its regex engine does not know, say) is always checked by
    jsonschema alone."""
    formats = {name: _format_rule(name) for name in set(_formats_in(schema))}
    try:
        compiled = jsonschema_rs.Draft202012Validator(
            dict(schema), formats=formats, validate_formats=True, ignore_unknown_formats=True, retriever=_no_retrieval
        )
    except Exception:  # noqa: BLE001 - any refusal of the compiler means: no fast path
        return _never

    def valid(instance: Any) -> bool:
        try:
            return bool(compiled.is_valid(instance))
        except Exception:  # noqa: BLE001 - e.g. an integer wider than 64 bits: jsonschema decides
            return False

    return valid


def _no_retrieval(uri: str) -> Any:
    # A $ref outside the schema is never fetched (jsonschema-rs would try the network when
    # the plugin loads): the schema is left to jsonschema alone, as it always was.
    raise LookupError(f"{uri} is not fetched")


def _never(_instance: Any) -> bool:
    return False


def _format_rule(name: str) -> Callable[[str], bool]:
    # FormatChecker.conforms: True for a format it has no rule for, as jsonschema treats one.
    return lambda value: FORMATS.conforms(value, name)


def _formats_in(schema: Any) -> Iterator[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("format"), str):
                yield node["format"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)

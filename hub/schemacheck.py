"""The compiled yes/no that lets valid action input skip jsonschema (hub/validation.py).

jsonschema walks a schema in Python on every call: about 30 µs for a small action's input.
jsonschema-rs compiles the schema once and answers in about 1 µs, but its own refusals
are worded its own way, and clients and tests rely on the hub's. So only its yes is used:
valid input, the common case, is done with; anything else goes to jsonschema as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema_rs

from .formats import FORMATS


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

"""Action input: from HTTP to a validated dict (jsonschema), with errors that name fields.

One JSON Schema per action does two jobs: it validates requests here and describes the
action in the OpenAPI document. Query strings carry only text, so for GET and DELETE the
values are first read as the types the schema asks for.

Validation runs on the event loop, so its cost must follow the size of the input, never
its square. Three things see to that: nesting is bounded (:data:`MAX_DEPTH`) before
anything else looks at the input; every ``maxItems``, ``maxLength`` and ``maxProperties``
the schema states unconditionally is checked in one cheap pass before jsonschema runs at
all; and inside jsonschema the keywords that walk an array, an object or a string skip
any instance already over its size limit, while ``uniqueItems`` compares hashable keys
instead of every pair. Input that passes the size pass then goes to a compiled check
(jsonschema-rs): when it says the input is valid, jsonschema does not run at all; any
other answer leaves the decision and the wording to jsonschema (:func:`compiled_check`).
The plugin loader refuses action schemas whose arrays have no
``maxItems`` (:func:`unbounded_arrays`), so every array an action accepts is bounded.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError as InvalidSchema
from jsonschema.exceptions import ValidationError as SchemaError

from .errors import ValidationFailed
from .formats import FORMATS
from .schemacheck import check_schema, compiled_check
from .types import Action

QUERY_METHODS = frozenset({"GET", "DELETE"})
# How deeply action input (and any JSON body) may nest, the outermost value counting as
# one level. Deep enough for any real payload (Slack's richest blocks stay under ten);
# shallow enough that every recursive step after it (validation, redaction, the JSON
# encoder) stays far from Python's recursion limit.
MAX_DEPTH = 64
# More problems than this in one answer help nobody and cost time to build.
MAX_PROBLEMS = 50

# The keywords that walk an instance, by the size keyword that bounds it: when the size is
# already wrong they are skipped (the size keyword reports the instance on its own).
_ARRAY_WALKERS = ("items", "prefixItems", "contains", "uniqueItems", "unevaluatedItems")
_OBJECT_WALKERS = ("properties", "patternProperties", "additionalProperties", "propertyNames",
                   "unevaluatedProperties", "dependentSchemas", "dependentRequired")
_STRING_WALKERS = ("pattern", "format")
# Keywords that make a subschema about arrays: each needs a maxItems beside it.
_ARRAY_KEYWORDS = frozenset({"items", "prefixItems", "contains", "uniqueItems", "minItems",
                             "unevaluatedItems", "minContains", "maxContains"})


class InputValidator:
    def __init__(self, action: Action) -> None:
        check_schema(action.input_schema)
        self.action = action
        self.schema = action.input_schema
        self._validator = _BoundedValidator(action.input_schema, format_checker=FORMATS)
        self._valid = compiled_check(action.input_schema)

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        value = dict(data)
        deep = too_deep(value)
        if deep is not None:
            problem = {"field": deep, "problem": f"nests deeper than {MAX_DEPTH} levels"}
            raise ValidationFailed(f"invalid input: {deep}: nested deeper than {MAX_DEPTH} levels", details=[problem])
        found = size_problems(self.schema, value)
        if not found and self._valid(value):
            return value
        if not found:
            errors = itertools.islice(self._validator.iter_errors(value), MAX_PROBLEMS)
            found = [p for err in errors for p in _describe(err)]
        # jsonschema reports "required" once per missing name, each naming them all.
        problems = list({(p["field"], p["problem"]): p for p in found}.values())[:MAX_PROBLEMS]
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


# --- nesting -------------------------------------------------------------------------


def too_deep(value: Any, limit: int = MAX_DEPTH, root: str = "(input)") -> str | None:
    """The top-level field under which ``value`` nests deeper than ``limit`` levels (the
    value itself counting as one; ``root`` when the value is not an object), or ``None``
    when it stays within them."""
    if not _deeper(value, limit):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if _deeper(item, limit - 1):
                return str(key)
    return root


def _deeper(value: Any, limit: int) -> bool:
    # Level by level rather than recursively, so that it answers for values far too deep
    # for anything recursive; about as fast as json.loads was to build the value.
    level = [value] if value.__class__ in _CONTAINERS else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            below.extend([v for v in (node.values() if node.__class__ is dict else node) if v.__class__ in _CONTAINERS])
        level = below
        depth += 1
    return False


_CONTAINERS = (dict, list)


# --- sizes first ---------------------------------------------------------------------


def size_problems(schema: Any, instance: Any) -> list[dict[str, str]]:
    """Every ``maxItems``, ``maxLength`` and ``maxProperties`` that ``schema`` applies to
    ``instance`` whatever else holds (through ``properties``, ``items``, ``prefixItems``,
    ``additionalProperties`` and ``allOf``), checked without running any other keyword.

    Conditional branches (``anyOf``, ``oneOf``, ``if``) are left to the validator, whose
    walking keywords skip an instance over its size limit (:class:`_BoundedValidator`).

    It runs on every call, so where a value lies is kept as a chain of (parent, name)
    pairs and spelt out only for a value at fault.
    """
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, Any, Any]] = [(schema, instance, None)]
    push = stack.append
    while stack and len(problems) < MAX_PROBLEMS:
        node, value, where = stack.pop()
        if node.__class__ is not dict and not isinstance(node, Mapping):
            continue
        for sub in node.get("allOf") or ():
            push((sub, value, where))
        kind = value.__class__
        if kind is dict:
            problem = _too_many(value, node.get("maxProperties"), "properties")
        elif kind is list:
            problem = _too_many(value, node.get("maxItems"), "items")
        elif kind is str:
            problem = _too_many(value, node.get("maxLength"), "characters")
        else:
            problem = _size_problem(node, value)
        if problem is not None:
            problems.append({"field": _spelt(where), "problem": problem})
            continue
        if isinstance(value, list):
            prefix = node.get("prefixItems") or ()
            rest = node.get("items")
            # A walk over items only where some schema applies to them: bounded by maxItems,
            # which the loader demands of any schema that has items.
            if prefix or isinstance(rest, Mapping):
                for i, item in enumerate(value):
                    sub = prefix[i] if i < len(prefix) else rest
                    if isinstance(sub, Mapping):
                        push((sub, item, (where, i)))
        elif isinstance(value, dict):
            props = node.get("properties") or {}
            for name, sub in props.items():
                if name in value:
                    push((sub, value[name], (where, name)))
            extra = node.get("additionalProperties")
            if isinstance(extra, Mapping) and extra and not node.get("patternProperties"):
                for name, item in value.items():
                    if name not in props:
                        push((extra, item, (where, name)))
    return problems


def _spelt(where: Any) -> str:
    """``a.b.0`` from the chain ``((None, "a"), "b"), 0)``; ``(input)`` for the root."""
    parts: list[str] = []
    while where is not None:
        where, name = where
        parts.append(str(name))
    return ".".join(reversed(parts)) or "(input)"


def _size_problem(node: Mapping[str, Any], value: Any) -> str | None:
    if isinstance(value, list):
        return _too_many(value, node.get("maxItems"), "items")
    if isinstance(value, str):
        return _too_many(value, node.get("maxLength"), "characters")
    if isinstance(value, dict):
        return _too_many(value, node.get("maxProperties"), "properties")
    return None


def _too_many(value: Any, limit: Any, unit: str) -> str | None:
    if (limit.__class__ is int or (isinstance(limit, int) and not isinstance(limit, bool))) and len(value) > limit:
        return f"has {len(value)} {unit}, at most {limit} allowed"
    return None


# --- jsonschema, with the walking keywords bounded -------------------------------------


Keyword = Callable[[Any, Any, Any, Mapping[str, Any]], Iterator[SchemaError]]
_BASE: Mapping[str, Keyword] = Draft202012Validator.VALIDATORS


def _within(keyword: str, size: str, kind: type) -> Keyword:
    walk = _BASE[keyword]

    def bounded(validator: Any, value: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[SchemaError]:
        limit = schema.get(size)
        if isinstance(instance, kind) and isinstance(limit, int) and len(instance) > limit:
            return
        yield from walk(validator, value, instance, schema)

    return bounded


def _size_keyword(kind: type, unit: str) -> Keyword:
    def check(validator: Any, limit: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[SchemaError]:
        if isinstance(instance, kind):
            problem = _too_many(instance, limit, unit)
            if problem is not None:
                yield SchemaError(problem)

    return check


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[SchemaError]:
    if not unique or not isinstance(instance, list):
        return
    limit = schema.get("maxItems")
    if isinstance(limit, int) and len(instance) > limit:
        return
    seen: set[Any] = set()
    for item in instance:
        key = _json_key(item)
        if key in seen:
            yield SchemaError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


def _json_key(value: Any) -> Any:
    """A hashable key equal for two values exactly when JSON Schema calls them equal:
    ``1 == 1.0``, but ``true`` is not ``1``; objects compare by members, arrays in order.
    Recursion is safe: input reaches here only within :data:`MAX_DEPTH`."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, dict):
        return ("o", frozenset((k, _json_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("a", tuple(_json_key(v) for v in value))
    if value is None:
        return ("z",)
    return ("?", repr(value))


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[SchemaError]:
    # jsonschema lists every unknown name, sorted, in its message; _describe reads the
    # names from the instance anyway, so a short message is enough.
    limit = schema.get("maxProperties")
    if isinstance(instance, dict) and isinstance(limit, int) and len(instance) > limit:
        return
    if extra is False and isinstance(instance, dict):
        if any(True for _ in _unknown(instance, schema)):
            yield SchemaError("has properties the schema does not allow")
        return
    yield from _BASE["additionalProperties"](validator, extra, instance, schema)


def _unknown(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[str]:
    props = schema.get("properties") or {}
    patterns = [re.compile(p) for p in schema.get("patternProperties") or ()]
    for name in instance:
        if name not in props and not any(p.search(name) for p in patterns):
            yield name


_BoundedValidator = validators.extend(
    Draft202012Validator,
    {
        **{k: _within(k, "maxItems", list) for k in _ARRAY_WALKERS if k in _BASE},
        **{k: _within(k, "maxProperties", dict) for k in _OBJECT_WALKERS if k in _BASE},
        **{k: _within(k, "maxLength", str) for k in _STRING_WALKERS},
        "maxItems": _size_keyword(list, "items"),
        "maxLength": _size_keyword(str, "characters"),
        "maxProperties": _size_keyword(dict, "properties"),
        "uniqueItems": _unique_items,
        "additionalProperties": _additional_properties,
    },
)


# --- what a plugin's schema must bound -------------------------------------------------


def unbounded_arrays(schema: Any) -> list[str]:
    """JSON pointers to the subschemas of ``schema`` that describe arrays without a
    ``maxItems``: a schema that types an instance as an array or uses any array keyword."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, Mapping):
            continue
        kinds = node.get("type")
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        if ("array" in kinds or _ARRAY_KEYWORDS & node.keys()) and not _is_int(node.get("maxItems")):
            found.append(where or "/")
        stack.extend(_subschemas(node, where))
    return sorted(found)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subschemas(node: Mapping[str, Any], where: str) -> Iterator[tuple[Any, str]]:
    for key in ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames",
                "unevaluatedItems", "unevaluatedProperties"):
        if key in node:
            yield node[key], f"{where}/{key}"
    for key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
        group = node.get(key)
        if isinstance(group, Mapping):
            yield from ((sub, f"{where}/{key}/{name}") for name, sub in group.items())
    for key in ("prefixItems", "allOf", "anyOf", "oneOf"):
        group = node.get(key)
        if isinstance(group, list):
            yield from ((sub, f"{where}/{key}/{i}") for i, sub in enumerate(group))


# --- what an action declares about itself -----------------------------------------------


def declaration_problem(action: Action) -> str | None:
    """What is wrong with the action's ``output_schema`` and ``examples``, or ``None``:
    the output schema must be a valid JSON Schema, and every example an object that a
    request could carry (path parameters as text; scalars or lists of them in a query
    string) and that passes the action's own input validation."""
    output = action.output_schema
    if output is not None:
        if not isinstance(output, Mapping):
            return "output_schema must be a JSON Schema object (a mapping) or None"
        try:
            check_schema(output)
        except InvalidSchema as exc:
            where = "/" + "/".join(str(p) for p in exc.absolute_path)
            return f"output_schema is not a valid JSON Schema at {where}: {exc.message}"
        answers = output.get("examples", [])
        for i, answer in enumerate(answers if isinstance(answers, list) else []):
            wrong = next(iter(Draft202012Validator(output, format_checker=FORMATS).iter_errors(answer)), None)
            if wrong is not None:
                where = "/" + "/".join(str(p) for p in wrong.absolute_path)
                return f"output_schema examples[{i}] does not pass output_schema at {where}: {wrong.message}"
    if not isinstance(action.examples, tuple):
        return "examples must be a tuple (or list) of input objects"
    if not action.examples:
        return None
    try:
        validator = InputValidator(action)
    except InvalidSchema as exc:
        return f"input_schema is not a valid JSON Schema: {exc.message}"
    for i, example in enumerate(action.examples):
        problem = _example_problem(action, validator, example)
        if problem is not None:
            return f"examples[{i}] {problem}"
    return None


def _example_problem(action: Action, validator: InputValidator, example: Any) -> str | None:
    if not isinstance(example, Mapping):
        return "is not an object of input fields"
    for name in action.path_params:
        if not isinstance(example.get(name), str) or not example[name]:
            return f"needs the path parameter {name!r} as a non-empty string"
    if action.method in QUERY_METHODS:
        for key, value in example.items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (str, int, float, bool)) for v in values):
                return f"field {key!r} cannot travel in a query string (scalars or lists of scalars only)"
    try:
        json.dumps(example, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"is not JSON: {exc}"
    try:
        validator.validate(example)
    except ValidationFailed as exc:
        return f"is not valid against input_schema: {exc.message.removeprefix('invalid input: ')}"
    return None


# --- reading and reporting -------------------------------------------------------------


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
        names = itertools.islice(_unknown(err.instance, err.schema), MAX_PROBLEMS)
        return [{"field": at(str(name)), "problem": "is not a known field"} for name in names]
    if err.validator in ("anyOf", "oneOf") and isinstance(err.validator_value, list):
        return [{"field": base or "(input)", "problem": _alternatives(err)}]
    problem = err.message
    if len(problem) > 200:
        problem = problem[:200] + "..."
    return [{"field": base or "(input)", "problem": problem}]


def _alternatives(err: SchemaError) -> str:
    """What would make an ``anyOf``/``oneOf`` valid, in the schema's own terms: the fields
    each branch requires, or its type, title or description."""
    hints = [_branch_hint(branch) for branch in err.validator_value]
    known = [h for h in hints if h]
    several = err.validator == "oneOf" and "is valid under each of" in err.message
    if len(known) == len(hints) and all(isinstance(b, Mapping) and set(b) == {"required"} for b in err.validator_value):
        if several:
            return "give exactly one of: " + ", ".join(known)
        return ("give " if err.validator == "oneOf" else "give at least ") + "one of: " + ", ".join(known)
    if several:
        return "matches more than one of the allowed forms; it must match exactly one" + (f" ({'; '.join(known)})" if known else "")
    return "matches none of the allowed forms" + (f": {'; or '.join(known)}" if known else "")


def _branch_hint(branch: Any) -> str:
    if not isinstance(branch, Mapping):
        return ""
    if branch.get("required"):
        return " and ".join(str(name) for name in branch["required"])
    for key in ("title", "description"):
        if isinstance(branch.get(key), str):
            return branch[key][:80]
    if "const" in branch:
        return repr(branch["const"])
    if isinstance(branch.get("type"), str):
        return f"a {branch['type']}"
    return ""

"""Reading a provider file: YAML, then the typed shape (``schema.py``), then the rules
the shape alone cannot say (a path parameter the input does not declare, a schema that
does not compile, a name the hub's own routes use). Every problem names the file and
the YAML path, as the config's errors do."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from .schema import ActionDef, Definition
from .values import pick

# The hub's own route names under /api/integrations/<provider>/ (hub.registry.RESERVED,
# which this layer may not import; tests/test_yaml_providers.py keeps the two equal).
RESERVED = frozenset({"connect", "callback", "tokens", "refresh", "status", "logs", "stats", "disconnect", "webhook", "proxy"})
MAX_FILE_BYTES = 512 * 1024


class DefinitionError(Exception):
    """A provider file that cannot be used; ``problems`` holds one ``yaml.path: message`` each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def read_file(path: str | Path) -> Definition:
    """The definition in ``path``, or :class:`DefinitionError` naming what is wrong."""
    source = str(path)
    try:
        raw_bytes = Path(path).read_bytes()
    except OSError as exc:
        raise DefinitionError(source, [f"cannot read the file: {exc.strerror}"]) from None
    if len(raw_bytes) > MAX_FILE_BYTES:
        raise DefinitionError(source, [f"larger than {MAX_FILE_BYTES} bytes"])
    try:
        raw = yaml.safe_load(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise DefinitionError(source, ["not UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DefinitionError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    return parse(raw, source)


def parse(raw: Any, source: str) -> Definition:
    if not isinstance(raw, Mapping):
        raise DefinitionError(source, ["(top level): must be a mapping (name:, title:, api:, auth:, ...)"])
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError(source, [_describe(err) for err in exc.errors()]) from None
    problems = semantic_problems(definition)
    if problems:
        raise DefinitionError(source, problems)
    return definition


def semantic_problems(d: Definition) -> list[str]:
    problems: list[str] = []
    if pick(d.identity.example, d.identity.id) in (None, ""):
        problems.append(f"identity.id: {d.identity.id!r} names nothing in identity.example")
    seen: dict[str, int] = {}
    for i, action in enumerate(d.actions):
        where = f"actions.{i}"
        if action.name in seen:
            problems.append(f"{where}.name: {action.name!r} is also the name of actions.{seen[action.name]}")
        seen.setdefault(action.name, i)
        problems.extend(f"{where}.{p}" for p in _action_problems(action))
    for i, rule in enumerate(d.errors):
        if rule.code is not None and rule.example is not None and rule.code not in ("status",) and pick(rule.example, rule.code) is None:
            problems.append(f"errors.{i}.code: {rule.code!r} names nothing in errors.{i}.example")
    return problems


def _action_problems(action: ActionDef) -> list[str]:
    problems: list[str] = []
    first = action.path.strip("/").split("/")[0]
    if action.name in RESERVED or first in RESERVED:
        problems.append(f"name: {action.name!r} at path {action.path!r} uses a name of the hub's own routes ({', '.join(sorted(RESERVED))})")
    try:
        Draft202012Validator.check_schema(action.input)
    except SchemaError as exc:
        problems.append(f"input: not a valid JSON Schema at /{'/'.join(map(str, exc.absolute_path))}: {exc.message}")
        return problems
    if action.input.get("type") != "object":
        problems.append("input.type: must be 'object'")
    props = action.input.get("properties") or {}
    required = set(action.input.get("required") or ())
    for param in _params(action.path) | _params(action.upstream or action.path):
        if param not in props:
            problems.append(f"path: the parameter {{{param}}} is not in input.properties")
        elif param not in required and param in _params(action.path):
            problems.append(f"input.required: must list the path parameter {param!r}")
    for name, place in action.inputs.items():
        if name not in props:
            problems.append(f"inputs.{name}: not in input.properties")
        elif place == "path" and name not in _params(action.upstream or action.path):
            problems.append(f"inputs.{name}: 'path', but the path has no {{{name}}}")
    try:
        Draft202012Validator.check_schema(action.output.schema_)
    except SchemaError as exc:
        problems.append(f"output.schema: not a valid JSON Schema at /{'/'.join(map(str, exc.absolute_path))}: {exc.message}")
    if action.output.pick and pick(action.output.example, action.output.pick) is None:
        problems.append(f"output.pick: {action.output.pick!r} names nothing in output.example")
    if action.paging and action.paging.param in props:
        problems.append(f"paging.param: {action.paging.param!r} is also an input; the hub's input for it is 'cursor'")
    if action.paging and "cursor" in props:
        problems.append("input.properties.cursor: a paged action gets its 'cursor' input from the hub; leave it out")
    return problems


def _params(path: str) -> set[str]:
    return {seg[1:-1] for seg in path.strip("/").split("/") if seg.startswith("{") and seg.endswith("}")}


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err["loc"] if p not in ("function-after[_complete(), Auth]",)]
    path = ".".join(p for p in loc if not p.startswith("function-")) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if err["type"] == "missing":
        return f"{path}: required"
    if err["type"] == "literal_error":
        return f"{path}: {err['msg'].replace('Input should be', 'must be')}"
    return f"{path}: {str(err['msg']).removeprefix('Value error, ')}"

"""The OpenAPI paths of every enabled provider's actions, each with named components
(``SlackPostMessageInput``, ``SlackPostMessageOutput`` and its envelope
``SlackPostMessageAnswer``) and an operationId ``<provider>_<action>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..validation import QUERY_METHODS
from .deprecation import mark
from .openapi_components import envelope, ref

if TYPE_CHECKING:
    from ..core.hub import Hub
    from ..types import Action

# The errors any action may answer (besides 400 and 401).
ACTION_ERRORS = (403, 404, 405, 409, 413, 415, 422, 429, 502, 503, 504)


def class_name(provider: str, action: str) -> str:
    """``google_calendar`` + ``create_event`` -> ``GoogleCalendarCreateEvent``."""
    return _camel(f"{provider}_{action}")


def responses(answer: dict[str, Any], *errors: int, created: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"201" if created else "200": {"description": "OK", "content": {"application/json": {"schema": answer}}}}
    for status in sorted({400, 401, *errors}):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def named_alternatives(node: Any, name: str, into: dict[str, Any]) -> Any:
    """The same schema, with each object whose ``anyOf``/``oneOf`` only adds ``required``
    (``{"anyOf": [{"title": "WithText", "required": ["text"]}, ...]}``) spelled out as whole,
    named objects in ``into`` (``SlackPostMessageWithText``) and referred to, so generators
    make one class per alternative instead of ``Any``. It accepts exactly what the original
    accepts."""
    if isinstance(node, list):
        return [named_alternatives(v, name, into) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: ({p: named_alternatives(s, _camel(p), into) for p, s in v.items()} if k == "properties" and isinstance(v, dict)
               else named_alternatives(v, name, into)) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        branches = out.get(key)
        if not (isinstance(branches, list) and "properties" in out
                and all(isinstance(b, dict) and set(b) <= {"title", "required", "description"} for b in branches)):
            continue
        base = {k: v for k, v in out.items() if k not in (key, "title", "description")}
        base.setdefault("type", "object")
        prefix = out.get("title") or name
        refs = []
        for i, branch in enumerate(branches):
            title = f"{prefix}{branch.get('title', f'Option{i}')}"
            whole = {**base, **branch, "title": title, "required": [*base.get("required", []), *branch.get("required", [])]}
            while into.get(title, whole) != whole:  # another schema took the name: qualify it
                title = whole["title"] = f"{name}{title}"
            into[title] = whole
            refs.append(ref(title))
        return {k: v for k, v in out.items() if k in ("title", "description")} | {key: refs}
    return out


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", "_").split("_") if part)


def action_paths(hub: Hub) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) for every action of every enabled provider."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for name in sorted(hub.providers):
        rt = hub.providers[name]
        for action in rt.plugin.actions:
            op = _operation(name, rt.info.title, action, schemas)
            paths.setdefault(f"/api/integrations/{name}/{action.path}", {})[action.method.lower()] = op
    return paths, schemas


def _operation(provider: str, title: str, action: Action, schemas: dict[str, Any]) -> dict[str, Any]:
    cls = class_name(provider, action.name)
    schema = dict(action.input_schema)
    schemas[f"{cls}Output"] = {"title": f"{cls}Output", **named_alternatives(dict(action.output_schema or {"type": "object"}), f"{cls}Output", schemas)}
    schemas[f"{cls}Answer"] = envelope(ref(f"{cls}Output"), f"{cls}Answer")
    properties = schema.get("properties", {})
    params = [
        {"name": p, "in": "path", "required": True, "schema": properties.get(p, {"type": "string"})}
        for p in action.path_params
    ]
    op: dict[str, Any] = {
        "summary": action.summary or action.name,
        "description": action.description,
        "operationId": f"{provider}_{action.name}",
        "tags": [title],
        "responses": responses(ref(f"{cls}Answer"), *ACTION_ERRORS),
    }
    answers = (action.output_schema or {}).get("examples") or []
    if answers:
        op["responses"]["200"]["content"]["application/json"]["examples"] = {
            f"answer{i}": {"value": {"success": True, "data": data, "message": f"{action.name} succeeded"}} for i, data in enumerate(answers)
        }
    rest = {k: v for k, v in properties.items() if k not in action.path_params}
    if action.method in QUERY_METHODS:
        required = set(schema.get("required", []))
        params += [
            {"name": k, "in": "query", "required": k in required, "schema": v, "style": "form", "explode": False}
            for k, v in rest.items()
        ]
        if action.examples:
            for param in params:
                values = [ex[param["name"]] for ex in action.examples if param["name"] in ex]
                if values:
                    param["example"] = values[0]
    else:
        body = {**schema, "title": f"{cls}Input", "properties": rest,
                "required": [r for r in schema.get("required", []) if r not in action.path_params]}
        # minProperties counts what is in the body: path parameters are not.
        if "minProperties" in body:
            in_path = sum(1 for p in action.path_params if p in properties)
            body["minProperties"] = max(0, body["minProperties"] - in_path)
        schemas[f"{cls}Input"] = {"title": f"{cls}Input", **named_alternatives({k: v for k, v in body.items() if k != "title"}, cls, schemas)}
        content: dict[str, Any] = {"schema": ref(f"{cls}Input")}
        if action.examples:
            content["examples"] = {
                f"example{i}": {"value": {k: v for k, v in ex.items() if k not in action.path_params}}
                for i, ex in enumerate(action.examples)
            }
        op["requestBody"] = {"required": bool(body["required"] or body.get("minProperties")), "content": {"application/json": content}}
    op["parameters"] = params
    mark(op, action.deprecated)
    return op

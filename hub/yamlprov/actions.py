"""A definition's actions as :class:`hub.Action` objects: the input schema (with the hub's
``cursor`` for paged actions), the output schema (wrapped as ``{items, nextCursor}`` when
paged) and one generic handler that places each input, sends the call and picks the answer."""

from __future__ import annotations

from typing import Any

from ..types import Action, CallContext
from ..upstream import UpstreamResponse
from ..validation import QUERY_METHODS
from .schema import ActionDef, Definition, Paging
from .values import next_link_param, pick

CURSOR = {"type": "string", "minLength": 1, "maxLength": 1000, "description": "nextCursor of the previous page"}
NEXT_CURSOR = {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}


def build_actions(d: Definition) -> list[Action]:
    return [build_action(d, a) for a in d.actions]


def build_action(d: Definition, a: ActionDef) -> Action:
    schema = dict(a.input)
    if a.paging is not None:
        cursor = dict(CURSOR)
        if a.paging.style in ("offset", "page"):
            cursor["pattern"] = "^[0-9]{1,9}$"
        schema["properties"] = {**(schema.get("properties") or {}), "cursor": cursor}
    picked = pick(a.output.example, a.output.pick)
    if a.paging is None:
        output = {**a.output.schema_, "examples": [picked]}
    else:
        output = {
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {"items": a.output.schema_, "nextCursor": NEXT_CURSOR},
            "examples": [{"items": picked, "nextCursor": None}],
        }
    return Action(
        name=a.name, method=a.method, path=a.path.strip("/"), handler=_handler(d, a), input_schema=schema,
        summary=a.summary, description=a.description, output_schema=output, examples=tuple(a.examples),
    )


def placement(a: ActionDef, name: str) -> str:
    """Where input ``name`` goes upstream: ``path``, ``query`` or ``body``."""
    if name in a.inputs:
        return a.inputs[name]
    if f"{{{name}}}" in (a.upstream or a.path):
        return "path"
    return "query" if a.method in QUERY_METHODS else "body"


def _handler(d: Definition, a: ActionDef) -> Any:
    key_param = d.auth.key.query if d.auth.key is not None else None

    async def handler(ctx: CallContext) -> Any:
        values = dict(ctx.input)
        cursor = values.pop("cursor", None)
        parts: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "body": {}}
        for name, value in values.items():
            parts[placement(a, name)][name] = value
        size = _page_request(a.paging, cursor, parts, a.method)
        if key_param:
            parts["query"][key_param] = ctx.access_token
        body: Any = parts["body"] if parts["body"] or a.method not in QUERY_METHODS else None
        if body is not None and a.body_key:
            body = {a.body_key: body}
        response = await ctx.http.request(
            a.method, (a.upstream or a.path).strip("/"), path_params=parts["path"], params=parts["query"] or None, json=body,
        )
        answer = response.json()
        picked = pick(answer, a.output.pick)
        if a.paging is None:
            return picked
        return {"items": picked, "nextCursor": next_cursor(a.paging, response, answer, picked, cursor, size)}

    handler.__name__ = a.name
    return handler


def _page_request(paging: Paging | None, cursor: str | None, parts: dict[str, dict[str, Any]], method: str) -> int | None:
    """Put the paging parameters in the request (the query of a GET or DELETE, else the
    body); returns the page size asked for, if known."""
    if paging is None:
        return None
    where = parts["query"] if method in QUERY_METHODS else parts["body"]
    size = None
    if paging.size_param:
        found = next((p[paging.size_param] for p in parts.values() if paging.size_param in p), None)
        size = int(found) if isinstance(found, (int, str)) and str(found).isdigit() else paging.page_size
        if found is None:
            where[paging.size_param] = size
    if cursor is not None:
        where[paging.param] = int(cursor) if paging.style in ("offset", "page") else cursor
    return size


def next_cursor(paging: Paging, response: UpstreamResponse, body: Any, items: Any, cursor: str | None, size: int | None) -> str | None:
    if paging.style == "cursor":
        found = pick(body, paging.next_field)
        return str(found) if found not in (None, "", False) else None
    if paging.style == "link":
        return next_link_param(response.headers.get("Link", ""), paging.param)
    count = len(items) if isinstance(items, list) else 0
    more = bool(pick(body, paging.more_field)) if paging.more_field else (size is not None and count >= size > 0)
    if not more or count == 0:
        return None
    if paging.style == "page":
        return str(int(cursor or 1) + 1)
    return str(int(cursor or 0) + count)


__all__ = ["build_actions", "next_cursor", "placement"]

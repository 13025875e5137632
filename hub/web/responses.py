"""The one response shape: ``{"success": true, "data", "message"}`` or the error envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import jsontext
from .openapi_components import DETAIL_KEYS


def _json(value: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    # What web.json_response sends (the same Content-Type), encoded straight to bytes.
    return web.Response(body=jsontext.dumps(value, default=str), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def ok(data: Any, message: str = "OK", status: int = 200) -> web.Response:
    return _json({"success": True, "data": data, "message": message}, status)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    shaped = error_details(message, details)
    if shaped is not None:
        err["details"] = shaped
    return {"success": False, "error": err}


def error_details(message: str, details: Any) -> dict[str, Any] | None:
    """Every error's ``details`` in one shape (docs/api.md, "Errors"): an object whose members
    are all optional - ``field`` (the first input field at fault), ``problems`` (every
    ``{"field", "problem"}`` found), ``status`` and ``allowedTransitions`` (the integration's
    state), ``providerError`` (the provider's own code), ``missing`` (settings a provider
    lacks), ``retryAfterSeconds`` and ``info`` (anything else a plugin attached)."""
    if details is None:
        return None
    if isinstance(details, list):
        problems = [p for p in details if isinstance(p, dict) and "field" in p]
        if len(problems) == len(details) and problems:
            return {"field": problems[0]["field"], "problems": problems}
        return {"info": details}
    if not isinstance(details, dict):
        return {"info": details}
    shaped = {k: v for k, v in details.items() if k in DETAIL_KEYS}
    extra = {k: v for k, v in details.items() if k not in DETAIL_KEYS}
    if extra:  # anything else a plugin attached goes under info, so the shape stays one
        info = shaped.get("info")
        shaped["info"] = {**info, **extra} if isinstance(info, dict) else ({**extra, "value": info} if "info" in shaped else extra)
    field = shaped.get("field")
    if isinstance(field, str) and "problems" not in shaped:
        prefixes = (f"{field}: ", f"{field.strip('()')}: ")
        problem = next((message[len(p):] for p in prefixes if message.startswith(p)), message)
        shaped["problems"] = [{"field": field, "problem": problem}]
    return shaped


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    return _json(error_body(code, message, details), status, headers)

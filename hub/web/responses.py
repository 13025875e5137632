"""The one response shape: ``{"success": true, "data", "message"}`` or the error envelope."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def ok(data: Any, message: str = "OK", status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data, "message": message}, status=status, dumps=_dumps)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"success": False, "error": err}


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(code, message, details), status=status, headers=headers, dumps=_dumps)

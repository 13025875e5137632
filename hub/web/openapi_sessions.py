"""The OpenAPI path items and schemas of the connect-session routes (web/sessions.py).

The browser pages under ``/connect/`` answer HTML to a browser, not JSON to a client, and
are left out, as the dashboard is."""

from __future__ import annotations

from typing import Any

from .openapi_actions import responses
from .openapi_components import envelope, ref

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 40},
       "description": "the session's id (cs_...)"}
_NULLABLE = {"type": ["string", "null"]}


def schemas(return_url_pattern: str) -> dict[str, Any]:
    session = {
        "type": "object", "title": "ConnectSession",
        "required": ["id", "status", "providers", "expiresAt", "createdAt"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["pending", "opened", "completed", "cancelled", "expired"]},
            "providers": {"type": "array", "items": {"type": "string"}},
            "url": {"type": "string", "description": "the link to send the user's browser to; in the answer to POST only, once"},
            "returnUrl": _NULLABLE,
            "openerOrigin": _NULLABLE,
            "connectedProvider": _NULLABLE,
            "createdAt": {"type": "string"},
            "expiresAt": {"type": "string"},
            "openedAt": _NULLABLE,
            "finishedAt": _NULLABLE,
        },
    }
    body = {
        "type": "object", "title": "ConnectSessionRequest", "additionalProperties": False,
        "properties": {
            "providers": {"type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": True, "items": {"type": "string", "minLength": 1},
                          "description": "the providers the page offers; default: every enabled and configured one"},
            "return_url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": return_url_pattern,
                           "description": "where the browser goes afterwards; must be on server.allowed_redirects"},
            "opener_origin": {"type": "string", "minLength": 1, "maxLength": 300,
                              "description": "the origin to postMessage the outcome to; must be on connect_sessions.opener_origins"},
        },
    }
    return {"ConnectSession": session, "ConnectSessionRequest": body, "ConnectSessionAnswer": envelope(ref("ConnectSession"))}


def paths() -> dict[str, Any]:
    answer = ref("ConnectSessionAnswer")
    return {
        "/api/connect-sessions": {
            "post": {
                "operationId": "connect_sessions_create",
                "summary": "A single-use link that connects an account in the browser that opens it (docs/connect-sessions.md)",
                "parameters": [],
                "requestBody": {"required": False, "content": {"application/json": {"schema": ref("ConnectSessionRequest")}}},
                "responses": responses(answer, 413, 415, 503, created=True),
            }
        },
        "/api/connect-sessions/{id}": {
            "get": {"operationId": "connect_sessions_get", "summary": "One of the caller's connect sessions", "parameters": [_ID],
                    "responses": responses(answer, 404)},
            "delete": {"operationId": "connect_sessions_cancel", "summary": "Cancel a connect session: its link and page stop working",
                       "parameters": [_ID], "responses": responses(answer, 404)},
        },
    }

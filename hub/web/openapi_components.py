"""The OpenAPI document's shared schemas: the success envelope per route, the one error
answer (its ``code`` an enum of hub/web/errorcodes.py, its ``details`` one shape), and the
core routes' data."""

from __future__ import annotations

from typing import Any

from ..events import EVENT_STATUSES
from ..activity import EXACT_PERCENTILES_UP_TO, LOG_STATUSES
from .errorcodes import CODES

REF = "#/components/schemas/"
# What the hub accepts as a token: printable ASCII without spaces, as every provider issues.
TOKEN = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[\\x21-\\x7e]+$"}
# Every member of an error's details (hub/web/responses.py:error_details keeps to them).
DETAIL_KEYS = ("field", "problems", "status", "allowedTransitions", "providerError", "missing", "retryAfterSeconds", "info")
ERROR_STATUSES = {
    400: "bad input (details name the field)", 401: "missing or invalid JWT (WWW-Authenticate says why)",
    403: "the provider refuses: the grant lacks a scope, or the resource is not the user's to change",
    404: "unknown provider, action or integration", 405: "wrong method",
    409: "the integration's state does not allow this", 410: "the provider no longer has the resource",
    413: "body too large", 415: "a body that is not application/json", 422: "the Idempotency-Key was used for another request",
    429: "rate limited (Retry-After)", 502: "provider error", 503: "provider not configured / database unavailable",
    504: "provider timeout",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def envelope(data: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """The success envelope around ``data``."""
    out: dict[str, Any] = {
        "type": "object",
        "required": ["success", "data", "message"],
        "properties": {"success": {"const": True}, "data": data, "message": {"type": "string"}},
    }
    if title:
        out["title"] = title
    return out


def error_responses() -> dict[str, Any]:
    return {
        f"E{status}": {"description": text, "content": {"application/json": {"schema": ref("ErrorAnswer")}}}
        for status, text in ERROR_STATUSES.items()
    }


def error_schemas() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "ErrorCode": {
            "title": "ErrorCode",
            "enum": list(CODES),
            "description": "every code the hub answers with (docs/api.md, \"Error codes\")",
        },
        "Problem": {
            "type": "object", "required": ["field", "problem"], "additionalProperties": False,
            "properties": {"field": text, "problem": text},
        },
        "ErrorDetails": {
            "type": "object",
            "additionalProperties": False,
            "description": "one shape for every error; every member is optional",
            "properties": {
                "field": {"type": "string", "description": "the first input field at fault (a.b for nested, (body) for the whole body)"},
                "problems": {"type": "array", "items": ref("Problem"), "description": "every problem found"},
                "status": {"type": "string", "description": "the integration's current status"},
                "allowedTransitions": {"type": "array", "items": text, "description": "the statuses it may move to from here"},
                "providerError": {"type": "string", "description": "the provider's own error code"},
                "missing": {"type": "array", "items": text, "description": "settings the provider lacks"},
                "retryAfterSeconds": {"type": "integer", "minimum": 0},
                "info": {"description": "anything else the provider's plugin attached"},
            },
        },
        "ErrorAnswer": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"const": False},
                "error": {
                    "type": "object",
                    "title": "Error",
                    "required": ["code", "message"],
                    "properties": {"code": ref("ErrorCode"), "message": text, "details": ref("ErrorDetails")},
                },
            },
        },
    }


def core_schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    schemas: dict[str, Any] = {
        "Integration": {
            "type": "object",
            "required": ["provider", "status", "account", "scopes"],
            "properties": {
                "provider": {"type": "string"},
                "title": {"type": "string"},
                "status": {"enum": ["ACTIVE", "EXPIRED", "ERROR", "INACTIVE", "DELETED"]},
                "statusReason": nullable_str,
                "account": {"type": "object"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "tokenExpiresAt": nullable_str,
                "hasCredentials": {"type": "boolean", "description": "false after a disconnect: reactivating needs a new connect"},
                "hasRefreshToken": {"type": "boolean"},
                "connectedAt": nullable_str,
                "updatedAt": nullable_str,
                "lastSyncAt": nullable_str,
                "checked": {"type": "boolean"},
                "stats": {"type": "object"},
            },
        },
        "ConnectStart": {
            "type": "object", "required": ["authUrl", "expiresAt"],
            "properties": {"authUrl": {"type": "string"}, "expiresAt": {"type": "string"}},
        },
        "Catalogue": {
            "type": "object",
            "required": ["providers", "failures"],
            "properties": {"providers": {"type": "array", "items": {"type": "object"}}, "failures": {"type": "array", "items": {"type": "object"}}},
        },
        "LogEntry": {
            "type": "object",
            "required": ["id", "kind", "action", "status", "durationMs", "createdAt"],
            "properties": {
                "id": {"type": "integer"}, "kind": {"type": "string"}, "action": {"type": "string"},
                "status": {"enum": list(LOG_STATUSES)}, "requestData": {}, "responseData": {},
                "errorMessage": nullable_str, "durationMs": {"type": "integer"}, "createdAt": {"type": "string"},
            },
        },
        "LogPage": {
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {"items": {"type": "array", "items": ref("LogEntry")}, "nextCursor": nullable_str},
        },
        "DailyCount": {
            "type": "object",
            "required": ["date", "successful", "failed"],
            "properties": {"date": {"type": "string", "format": "date"}, "successful": {"type": "integer"}, "failed": {"type": "integer"}},
        },
        "Daily": {
            "type": "object",
            "required": ["period", "days"],
            "properties": {"period": {"type": "string"}, "days": {"type": "array", "items": ref("DailyCount")}},
        },
        "ActionCount": {
            "type": "object", "required": ["action", "count"],
            "properties": {"action": {"type": "string"}, "count": {"type": "integer"}},
        },
        "Stats": {
            "type": "object",
            "required": ["period", "totalRequests", "successfulRequests", "failedRequests", "successRate", "averageDuration", "actionBreakdown"],
            "properties": {
                "period": {"type": "string"},
                "totalRequests": {"type": "integer"},
                "successfulRequests": {"type": "integer"},
                "failedRequests": {"type": "integer"},
                "successRate": {"type": "string", "pattern": "^\\d+\\.\\d{2}%$"},
                "averageDuration": {"type": "integer"},
                "p50Duration": {"type": "integer"},
                "p95Duration": {"type": "integer"},
                "percentilesEstimated": {
                    "type": "boolean",
                    "description": f"true when p50/p95 were read from duration buckets (the window holds over {EXACT_PERCENTILES_UP_TO:,} "
                    "calls): within 5% of the exact value, and exact under 20 ms",
                },
                "actionBreakdown": {"type": "array", "items": ref("ActionCount")},
            },
        },
        "Health": {"type": "object"},
        "WebhookReceived": {
            "type": "object", "title": "WebhookReceived", "required": ["routed", "duplicates"], "additionalProperties": False,
            "properties": {
                "routed": {"type": "integer", "minimum": 0, "description": "events emitted, one per integration an event concerns"},
                "duplicates": {"type": "integer", "minimum": 0, "description": "events already received for those integrations, skipped"},
            },
        },
        **event_schemas(),
    }
    # A named envelope for each, so generated clients get e.g. IntegrationAnswer.data: Integration.
    for name in ("Integration", "ConnectStart", "Catalogue", "LogPage", "Daily", "Stats", "Health", "EventPage", "WebhookReceived"):
        schemas[f"{name}Answer"] = envelope(ref(name))
    schemas["IntegrationListAnswer"] = envelope({"type": "array", "items": ref("Integration")})
    return {**schemas, **error_schemas()}


def event_schemas() -> dict[str, Any]:
    """An event as ``GET /api/events`` lists it (docs/events.md): the payload as sent, and its deliveries."""
    nullable_str = {"type": ["string", "null"]}
    return {
        "EventPayload": {
            "type": "object",
            "required": ["id", "type", "timestamp", "data"],
            "properties": {
                "id": {"type": "string"}, "type": {"type": "string"}, "timestamp": {"type": "string"},
                "data": {
                    "type": "object",
                    "required": ["userId", "provider", "integrationId", "status", "previousStatus", "reason"],
                    "properties": {
                        "userId": {"type": "string"}, "provider": {"type": "string"}, "integrationId": {"type": "integer"},
                        "status": nullable_str, "previousStatus": nullable_str, "reason": nullable_str, "expiresAt": nullable_str,
                    },
                },
            },
        },
        "EventDelivery": {
            "type": "object",
            "required": ["subscriber", "state", "attempts", "nextAttemptAt", "lastStatus", "lastError", "deliveredAt"],
            "properties": {
                "subscriber": {"type": "string"}, "state": {"enum": ["PENDING", "DELIVERED", "DEAD"]}, "attempts": {"type": "integer"},
                "nextAttemptAt": nullable_str, "lastStatus": {"type": ["integer", "null"]}, "lastError": nullable_str, "deliveredAt": nullable_str,
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "type", "status", "provider", "createdAt", "payload", "deliveries"],
            "properties": {
                "id": {"type": "string"}, "type": {"type": "string"}, "status": {"enum": list(EVENT_STATUSES)},
                "provider": {"type": "string"}, "createdAt": {"type": "string"}, "payload": ref("EventPayload"),
                "deliveries": {"type": "array", "items": ref("EventDelivery")},
            },
        },
        "EventPage": {
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {"items": {"type": "array", "items": ref("Event")}, "nextCursor": nullable_str},
        },
    }

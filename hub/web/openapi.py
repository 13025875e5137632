"""The OpenAPI 3.1 document: core routes plus every enabled provider's actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..activity import EXACT_PERCENTILES_UP_TO, LOG_STATUSES
from ..validation import QUERY_METHODS

if TYPE_CHECKING:
    from ..core.hub import Hub

_PROVIDER = {"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}}
_REF = "#/components/schemas/"
# What the hub accepts as a token: printable ASCII without spaces, as every provider issues.
TOKEN = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[\\x21-\\x7e]+$"}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "message"],
        "properties": {"success": {"const": True}, "data": schema, "message": {"type": "string"}},
    }


def _responses(data: dict[str, Any], *errors: int, created: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "201" if created else "200": {"description": "OK", "content": {"application/json": {"schema": _ok(data)}}}
    }
    for status in sorted({400, 401, *errors}):
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def _op(summary: str, data: dict[str, Any], *errors: int, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, secured: bool = True, created: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": _responses(data, *errors, created=created)}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not secured:
        op["security"] = []
        op["responses"].pop("401", None)
    return op


def _page_or_json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": schema}},
    }


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def document(hub: Hub) -> dict[str, Any]:
    integration = {"$ref": _REF + "Integration"}
    per_provider = [_PROVIDER]
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness", {"type": "object"}, secured=False)},
        "/readyz": {"get": _op("Readiness: the database is reachable", {"type": "object"}, 503, secured=False)},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "security": [],
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
        "/api/providers": {"get": _op("Provider catalogue", {"$ref": _REF + "Catalogue"})},
        "/api/integrations": {"get": _op("The caller's integrations", {"type": "array", "items": integration})},
        "/api/integrations/{provider}": {
            "get": _op("One integration (never its tokens)", integration, 404, params=per_provider),
            "delete": _op("Revoke, wipe, mark DELETED (logs kept)", integration, 404, 409, params=per_provider),
        },
        "/api/integrations/{provider}/connect": {
            "get": _op(
                "Start connecting: the URL to send the browser to",
                {"type": "object", "required": ["authUrl", "expiresAt"], "properties": {"authUrl": {"type": "string"}, "expiresAt": {"type": "string"}}},
                404, 503,
                params=[_PROVIDER, _q("return_url", {"type": "string"}, "where the browser goes afterwards; must be allow-listed")],
            )
        },
        "/api/integrations/{provider}/callback": {
            "get": {
                "summary": "Browser redirect target at the end of the authorization (no JWT: the state names the user)",
                "security": [],
                "parameters": [_PROVIDER, _q("state", {"type": "string"}), _q("code", {"type": "string"}), _q("error", {"type": "string"}), _q("error_description", {"type": "string"})],
                "responses": {
                    "200": _page_or_json("an HTML result page, or with Accept: application/json the envelope", _ok({"$ref": _REF + "Integration"})),
                    "302": {"description": "redirect to the allow-listed return URL"},
                    **{
                        str(status): _page_or_json(text, {"$ref": _REF + "Error"})
                        for status, text in {
                            400: "bad or used state, declined consent, missing code",
                            404: "unknown provider",
                            502: "the provider refused the code",
                            503: "provider not configured",
                        }.items()
                    },
                },
            }
        },
        "/api/integrations/{provider}/tokens": {
            "post": {
                **_op(
                    "Store a token obtained outside the redirect flow (verified with the provider first). "
                    "With a state (the end of a token flow: the page at the callback posts it) no JWT is needed, "
                    "the state names the user; without one the caller's JWT does.",
                    integration, 404, 409, 413, 415, 502, 503,
                    params=per_provider,
                    body={
                        "type": "object", "required": ["token"], "additionalProperties": False,
                        "properties": {"token": TOKEN, "state": {"type": "string", "minLength": 1}},
                    },
                    created=True,
                ),
                "security": [{"bearerAuth": []}, {}],
            }
        },
        "/api/integrations/{provider}/refresh": {"post": _op("Refresh the access token now", integration, 404, 409, 429, 502, 503, 504, params=per_provider)},
        "/api/integrations/{provider}/status": {
            "get": _op("Live check against the provider; updates the state", integration, 404, 409, 429, 502, 503, 504, params=per_provider),
            "patch": _op(
                "Deactivate or reactivate", integration, 404, 409, 413, 415, 502,
                params=per_provider,
                body={"type": "object", "required": ["status"], "additionalProperties": False, "properties": {"status": {"enum": ["ACTIVE", "INACTIVE"]}, "reason": {"type": ["string", "null"], "maxLength": 200, "description": "kept with the transition; null or absent: a default reason"}}},
            ),
        },
        "/api/integrations/{provider}/disconnect": {"delete": _op("Revoke upstream, wipe tokens, INACTIVE", integration, 404, 409, params=per_provider)},
        "/api/integrations/{provider}/logs": {
            "get": _op(
                "Activity, newest first, keyset-paginated", {"$ref": _REF + "LogPage"}, 404,
                params=[
                    _PROVIDER,
                    _q("status", {"enum": list(LOG_STATUSES)}),
                    _q("action", {"type": "string", "maxLength": 64}),
                    _q("since", {"type": "string", "format": "date-time"}),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                    _q("cursor", {"type": "string"}, "nextCursor from the previous page"),
                ],
            )
        },
        "/api/integrations/{provider}/stats/daily": {
            "get": _op("Requests per day, successes against failures (every day present)", {"$ref": _REF + "Daily"}, 404,
                       params=[_PROVIDER, _q("days", {"type": "integer", "minimum": 1, "maximum": 90, "default": 7})])
        },
        "/api/integrations/{provider}/stats": {
            "get": _op("Statistics over the last N days", {"$ref": _REF + "Stats"}, 404,
                       params=[_PROVIDER, _q("days", {"type": "integer", "minimum": 1, "maximum": 365, "default": 7})])
        },
    }
    for name in sorted(hub.providers):
        rt = hub.providers[name]
        for action in rt.plugin.actions:
            path = f"/api/integrations/{name}/{action.path}"
            schema = dict(action.input_schema)
            params = [
                {"name": p, "in": "path", "required": True, "schema": schema.get("properties", {}).get(p, {"type": "string"})}
                for p in action.path_params
            ]
            op: dict[str, Any] = {
                "summary": action.summary or action.name,
                "description": action.description,
                "operationId": f"{name}_{action.name}",
                "tags": [rt.info.title],
                "responses": _responses(dict(action.output_schema or {}), 403, 404, 405, 409, 413, 415, 429, 502, 503, 504),
            }
            rest = {k: v for k, v in schema.get("properties", {}).items() if k not in action.path_params}
            if action.method in QUERY_METHODS:
                required = set(schema.get("required", []))
                params += [
                    {"name": k, "in": "query", "required": k in required, "schema": v, "style": "form", "explode": False}
                    for k, v in rest.items()
                ]
            else:
                body = {**schema, "properties": rest, "required": [r for r in schema.get("required", []) if r not in action.path_params]}
                content: dict[str, Any] = {"schema": body}
                if action.examples:
                    content["examples"] = {
                        f"example{i}": {"value": {k: v for k, v in ex.items() if k not in action.path_params}}
                        for i, ex in enumerate(action.examples)
                    }
                op["requestBody"] = {"required": bool(body["required"]), "content": {"application/json": content}}
            op["parameters"] = params
            paths.setdefault(path, {})[action.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub", "version": "0.1.0", "description": "One generic API over every connected provider."},
        "servers": [{"url": hub.config.public_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": _schemas(),
            "responses": {
                f"E{s}": {"description": d, "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}}}
                for s, d in {
                    400: "bad input (details name the field)", 401: "missing or invalid JWT",
                    403: "the provider refuses: the grant lacks a scope, or the resource is not the user's to change",
                    404: "unknown provider, action or integration",
                    415: "a body that is not application/json",
                    405: "wrong method", 409: "the integration's state does not allow this", 413: "body too large",
                    429: "rate limited upstream (Retry-After)", 502: "provider error", 503: "provider not configured / database unavailable",
                    504: "provider timeout",
                }.items()
            },
        },
    }


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"const": False},
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
                },
            },
        },
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
        "Catalogue": {
            "type": "object",
            "required": ["providers", "failures"],
            "properties": {"providers": {"type": "array", "items": {"type": "object"}}, "failures": {"type": "array", "items": {"type": "object"}}},
        },
        "LogPage": {
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "kind", "action", "status", "durationMs", "createdAt"],
                        "properties": {
                            "id": {"type": "integer"}, "kind": {"type": "string"}, "action": {"type": "string"},
                            "status": {"enum": list(LOG_STATUSES)}, "requestData": {}, "responseData": {},
                            "errorMessage": nullable_str, "durationMs": {"type": "integer"}, "createdAt": {"type": "string"},
                        },
                    },
                },
                "nextCursor": nullable_str,
            },
        },
        "Daily": {
            "type": "object",
            "required": ["period", "days"],
            "properties": {
                "period": {"type": "string"},
                "days": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["date", "successful", "failed"],
                        "properties": {"date": {"type": "string", "format": "date"}, "successful": {"type": "integer"}, "failed": {"type": "integer"}},
                    },
                },
            },
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
                "actionBreakdown": {
                    "type": "array",
                    "items": {"type": "object", "required": ["action", "count"], "properties": {"action": {"type": "string"}, "count": {"type": "integer"}}},
                },
            },
        },
    }

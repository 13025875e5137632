"""The OpenAPI 3.1 document: core routes plus every enabled provider's actions
(openapi_actions.py), over the shared schemas of openapi_components.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import EVENT_STATUSES
from ..activity import LOG_STATUSES
from . import deprecation, mcp_http, openapi_sessions, proxy, webhooks
from .openapi_actions import action_paths, responses
from .openapi_components import TOKEN, core_schemas, error_responses, ref

if TYPE_CHECKING:
    from ..core.hub import Hub

# An absolute http(s) URL: a host name or [IPv6] literal, an optional port, then printable
# ASCII without backslashes (the hub refuses user information, spaces, control characters).
RETURN_URL = "^https?://([A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*|\\[[0-9A-Fa-f:.]+\\])(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?([/?#][\\x21-\\x5b\\x5d-\\x7e]*)?$"
_PROVIDER = {"name": "provider", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _op(operation_id: str, summary: str, answer: str, *errors: int, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, secured: bool = True, created: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "parameters": params or [],
                          "responses": responses(ref(answer), *errors, created=created)}
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


def core_paths() -> dict[str, Any]:
    per_provider = [_PROVIDER]
    status_body = {
        "type": "object", "title": "StatusChange", "required": ["status"], "additionalProperties": False,
        "properties": {
            "status": {"enum": ["ACTIVE", "INACTIVE"]},
            "reason": {"type": ["string", "null"], "maxLength": 200, "description": "kept with the transition; null or absent: a default reason"},
        },
    }
    token_body = {
        "type": "object", "title": "TokenPost", "required": ["token"], "additionalProperties": False,
        "properties": {"token": TOKEN, "state": {"type": "string", "minLength": 1}},
    }
    return {
        "/healthz": {"get": _op("healthz_get", "Liveness", "HealthAnswer", secured=False)},
        "/readyz": {"get": _op("readyz_get", "Readiness: the database is reachable", "HealthAnswer", 503, secured=False)},
        "/metrics": {
            "get": {
                "operationId": "metrics_get",
                "summary": "Prometheus metrics (text exposition format)",
                "security": [],
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi_get",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
        "/api/providers": {"get": _op("providers_list", "Provider catalogue", "CatalogueAnswer")},
        "/api/integrations": {"get": _op("integrations_list", "The caller's integrations", "IntegrationListAnswer")},
        "/api/integrations/{provider}": {
            "get": _op("integrations_get", "One integration (never its tokens)", "IntegrationAnswer", 404, params=per_provider),
            "delete": _op("integrations_delete", "Revoke, wipe, mark DELETED (logs kept)", "IntegrationAnswer", 404, 409, 422, params=per_provider),
        },
        "/api/integrations/{provider}/connect": {
            "get": _op(
                "integrations_connect", "Start connecting: the URL to send the browser to", "ConnectStartAnswer", 404, 503,
                params=[_PROVIDER, _q("return_url", {"type": "string", "minLength": 1, "pattern": RETURN_URL},
                                      "where the browser goes afterwards; must be allow-listed")],
            )
        },
        "/api/integrations/{provider}/callback": {
            "get": {
                "operationId": "integrations_callback",
                "summary": "Browser redirect target at the end of the authorization (no JWT: the state names the user)",
                "security": [],
                "parameters": [_PROVIDER, _q("state", {"type": "string"}), _q("code", {"type": "string"}), _q("error", {"type": "string"}), _q("error_description", {"type": "string"})],
                "responses": {
                    "200": _page_or_json("an HTML result page, or with Accept: application/json the envelope", ref("IntegrationAnswer")),
                    "302": {"description": "redirect to the allow-listed return URL"},
                    **{
                        str(status): _page_or_json(text, ref("ErrorAnswer"))
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
                    "integrations_tokens_post",
                    "Store a token obtained outside the redirect flow (verified with the provider first). "
                    "With a state (the end of a token flow: the page at the callback posts it) no JWT is needed, "
                    "the state names the user; without one the caller's JWT does.",
                    "IntegrationAnswer", 404, 409, 413, 415, 422, 502, 503,
                    params=per_provider, body=token_body, created=True,
                ),
                "security": [{"bearerAuth": []}, {}],
            }
        },
        "/api/integrations/{provider}/refresh": {
            "post": _op("integrations_refresh", "Refresh the access token now", "IntegrationAnswer", 404, 409, 422, 429, 502, 503, 504, params=per_provider),
        },
        "/api/integrations/{provider}/status": {
            "get": _op("integrations_status_get", "Live check against the provider; updates the state", "IntegrationAnswer",
                       404, 409, 429, 502, 503, 504, params=per_provider),
            "patch": _op("integrations_status_patch", "Deactivate or reactivate", "IntegrationAnswer", 404, 409, 413, 415, 422, 502,
                         params=per_provider, body=status_body),
        },
        "/api/integrations/{provider}/disconnect": {
            "delete": _op("integrations_disconnect", "Revoke upstream, wipe tokens, INACTIVE", "IntegrationAnswer", 404, 409, 422, params=per_provider),
        },
        "/api/integrations/{provider}/logs": {
            "get": _op(
                "logs_list", "Activity, newest first, keyset-paginated", "LogPageAnswer", 404,
                params=[
                    _PROVIDER,
                    _q("status", {"enum": list(LOG_STATUSES)}),
                    _q("action", {"type": "string", "minLength": 1, "maxLength": 64}),
                    _q("since", {"type": "string", "minLength": 1, "format": "date-time"}),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                    _q("cursor", {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+=*$"}, "nextCursor from the previous page"),
                ],
            )
        },
        "/api/events": {
            "get": _op(
                "events_list", "The caller's events, newest first, with their deliveries (keyset-paginated)", "EventPageAnswer",
                params=[
                    _q("type", {"type": "string", "minLength": 3, "maxLength": 64, "pattern": "^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_.]*$"},
                       "only events of this type, e.g. integration.expired"),
                    _q("status", {"enum": list(EVENT_STATUSES)}),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                    _q("cursor", {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+=*$"}, "nextCursor from the previous page"),
                ],
            )
        },
        "/api/integrations/{provider}/stats/daily": {
            "get": _op("stats_daily_get", "Requests per day, successes against failures (every day present)", "DailyAnswer", 404,
                       params=[_PROVIDER, _q("days", {"type": "integer", "minimum": 1, "maximum": 90, "default": 7})]),
        },
        "/api/integrations/{provider}/stats": {
            "get": _op("stats_get", "Statistics over the last N days", "StatsAnswer", 404,
                       params=[_PROVIDER, _q("days", {"type": "integer", "minimum": 1, "maximum": 365, "default": 7})]),
        },
    }


def document(hub: Hub) -> dict[str, Any]:
    paths = core_paths()
    for (method, path), dep in deprecation.ROUTES.items():
        if path in paths and method.lower() in paths[path]:
            deprecation.mark(paths[path][method.lower()], dep)
    actions, action_schemas = action_paths(hub)
    paths.update(actions)
    paths.update(proxy.openapi_paths(hub))
    paths.update(mcp_http.openapi_paths())
    paths.update(openapi_sessions.paths())
    paths.update(webhooks.openapi_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub", "version": "0.1.0", "description": "One generic API over every connected provider."},
        "servers": [{"url": hub.config.public_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {**core_schemas(), **openapi_sessions.schemas(RETURN_URL), **action_schemas, **mcp_http.openapi_schemas()},
            "responses": error_responses(),
        },
    }

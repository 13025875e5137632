"""What wraps every request: its id and access line, the caller, and one table that turns
any failure into the error envelope.

Order (outermost first): :func:`request_context` (request id, metrics, the access
line), CORS when configured (``cors.py``), :func:`answer` (the ``RateLimit-*`` and
deprecation headers, the error table, the caller), then idempotency (``idempotency.py``).
A route that needs no JWT is marked with :func:`public`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from ..core.hub import Hub
from ..errors import HubError, MethodNotAllowed, RateLimited, Unauthorized
from ..infra import metrics
from ..infra.auth import Caller
from ..ratelimit import observe
from ..redact import redact_text
from .deprecation import deprecation_headers
from .errorcodes import wire_code
from .responses import error_response

log = logging.getLogger("hub.web")
access = logging.getLogger("hub.access")

HUB_KEY = web.AppKey("hub", Hub)
REQUEST_ID = web.RequestKey("request_id", str)
CALLER = web.RequestKey("caller", Caller)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


def public(handler: H) -> H:
    """Mark a route that answers without a JWT (health, the browser's callback, pages)."""
    handler.hub_public = True  # type: ignore[attr-defined]
    return handler


def caller(request: web.Request) -> Caller:
    """The authenticated caller of a route that is not :func:`public`."""
    return request[CALLER]


def authenticate(request: web.Request) -> Caller:
    """Verify the request's JWT now (for a public route that needs a caller only sometimes)."""
    request[CALLER] = request.app[HUB_KEY].authenticate(request.headers.get("Authorization"))
    return request[CALLER]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id (the client's, if sane), the request counter, and one access-log line."""
    rid = request.headers.get("X-Request-Id", "")
    if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
        # 32 random hex digits, like uuid4().hex, without building a UUID object (a fifth
        # of the cost).
        rid = secrets.token_hex(16)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-Id"] = rid
    metrics.labelled(metrics.REQUESTS, request.method, route_label(request), str(response.status)).inc()
    access.info("%s %s %s %.1fms [request %s]", request.method, request.path, response.status, (time.perf_counter() - started) * 1000, rid)
    return response


@web.middleware
async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The caller, the error table, and the headers every answer may need, in one frame.

    From the inside out: the JWT is verified unless the route is :func:`public`; any
    exception, the JWT's refusal included, is answered by :func:`respond_to`; a deprecated
    operation's answer gets its ``Deprecation`` headers (``deprecation.py``); an answer
    whose request went through a provider's request budget (the tightest window it met),
    refused or not, gets ``RateLimit-Limit``, ``-Remaining`` and ``-Reset``.

    These were four middlewares; each layer cost a coroutine and a call on every request.
    """
    with observe() as seen:
        try:
            if not _is_public(request.match_info):
                authenticate(request)
            response = await handler(request)
        except Exception as exc:
            response = respond_to(request, exc)
    if response.prepared:
        return response
    deprecation_headers(request, response)
    budget = seen.budget
    if budget is not None:
        response.headers["RateLimit-Limit"] = str(budget.limit)
        response.headers["RateLimit-Remaining"] = str(budget.remaining)
        response.headers["RateLimit-Reset"] = str(math.ceil(budget.reset))
    return response


def _is_public(info: web.AbstractMatchInfo) -> bool:
    # An unmatched route (404, 405) is answered by the router's own exception, JWT or not.
    if info.http_exception is not None:
        return True
    route = getattr(info, "route", None)
    if route is not None and isinstance(route.resource, web.StaticResource):
        return True
    return bool(getattr(info.handler, "hub_public", False))


# --- the error table -------------------------------------------------------------------

Responder = Callable[[web.Request, Any], web.StreamResponse]


def _hub_error(request: web.Request, exc: HubError) -> web.Response:
    message = redact_text(exc.message, request.app[HUB_KEY].secret_values())
    code, details = wire_code(exc)
    provider_code = getattr(exc, "provider_code", None)
    if provider_code:
        details = {**(details if isinstance(details, dict) else ({"info": details} if details is not None else {})), "providerError": provider_code}
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = www_authenticate(request, message)
    if exc.status >= 500:
        log.warning("%s %s -> %s %s: %s [request %s]", request.method, request.path, exc.status, exc.code, message, request[REQUEST_ID])
    return error_response(exc.status, code, message, details, headers)


def www_authenticate(request: web.Request, message: str) -> str:
    """RFC 6750 §3: the scheme and realm always; ``invalid_token`` only when credentials were
    sent (a request without any gets no error code), its description without quotes."""
    challenge = 'Bearer realm="integration-hub"'
    if request.path == "/mcp":
        # The MCP authorization spec (RFC 9728 §5.1): where the resource's metadata is.
        base = request.app[HUB_KEY].config.public_url.rstrip("/")
        challenge += f', resource_metadata="{base}/.well-known/oauth-protected-resource"'
    if request.headers.get("Authorization"):
        description = "".join(c for c in message if c not in '"\\' and 0x20 <= ord(c) < 0x7F)[:200]
        challenge += f', error="invalid_token", error_description="{description}"'
    return challenge


# aiohttp's own HTTP exceptions, in the envelope.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _http_exception(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:  # a redirect, raised by a handler: answer it as a plain response
        return web.Response(status=exc.status, headers=exc.headers, text=exc.text)
    status = exc.status
    headers: dict[str, str] = {}
    if status == 404:
        message = f"no route {request.method} {request.path}"
    elif status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}"
        headers["Allow"] = ", ".join(allowed)
    elif status == 413:
        message = f"the request body is larger than the {request.app[HUB_KEY].config.server.max_body_bytes // 1024} KiB limit"
    else:
        message = exc.reason or "request failed"
    return error_response(status, _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error"), message, headers=headers)


def _database_down(request: web.Request, exc: BaseException) -> web.Response:
    # The database (or the connection to it) is down: say so, and let the client retry.
    log.error("database unavailable (%s) while serving %s %s [request %s]", type(exc).__name__, request.method, request.path, request[REQUEST_ID])
    return error_response(503, "database_unavailable", "the hub's database is unavailable right now; try again shortly", headers={"Retry-After": "5"})


def _unexpected(request: web.Request, exc: BaseException) -> web.Response:
    # The outermost net: nothing unexpected leaks to a client.
    rid = request[REQUEST_ID]
    log.error("unexpected %s at %s while serving %s %s [request %s]", type(exc).__name__, _innermost(exc), request.method, request.path, rid)
    if os.environ.get("HUB_DEBUG_TRACEBACKS"):
        log.error("traceback (HUB_DEBUG_TRACEBACKS is set; never in production)", exc_info=exc)
    return error_response(500, "internal_error", f"the hub failed unexpectedly; quote request id {rid} to the operator")


# Looked up along the exception's class hierarchy: the nearest entry answers.
ERROR_TABLE: dict[type[BaseException], Responder] = {
    HubError: _hub_error,
    web.HTTPException: _http_exception,
    DBAPIError: _database_down,
    OSError: _database_down,
    asyncio.TimeoutError: _database_down,
    Exception: _unexpected,
}


def respond_to(request: web.Request, exc: BaseException) -> web.StreamResponse:
    for cls in type(exc).__mro__:
        responder = ERROR_TABLE.get(cls)
        if responder is not None:
            return responder(request, exc)
    return _unexpected(request, exc)


def route_label(request: web.Request) -> str:
    """A bounded label for the route: its template (``/api/integrations/{provider}/connect``),
    ``{action}`` for any provider action, or ``(static)`` / ``(unmatched)``."""
    info = request.match_info
    route = info.route if info is not None else None
    if route is None or getattr(route, "resource", None) is None:
        return "(unmatched)"
    canonical = route.resource.canonical
    if canonical.endswith("{path}"):
        return canonical.replace("{path}", "{action}")
    return canonical if canonical.startswith(("/api", "/healthz", "/readyz", "/metrics")) or canonical == "/" else "(static)"


def _innermost(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"

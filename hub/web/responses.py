"""The one response shape, and the one place errors become responses."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from ..infra import metrics
from ..errors import HubError, MethodNotAllowed, RateLimited
from ..redact import redact_text

log = logging.getLogger("hub.web")
access = logging.getLogger("hub.access")

REQUEST_ID = web.RequestKey("request_id", str)
SECRETS: web.AppKey[Callable[[], list[str]]] = web.AppKey("secrets", Callable[[], list[str]])  # type: ignore[arg-type]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


# aiohttp's own HTTP exceptions, in the envelope.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, one access-log line, and every failure turned into the error envelope."""
    rid = request.headers.get("X-Request-Id", "")
    if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
        rid = uuid.uuid4().hex
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    try:
        response = await handler(request)
    except HubError as exc:
        response = hub_error_response(request, exc)
    except web.HTTPException as exc:
        response = http_exception_response(request, exc)
    except (DBAPIError, OSError, asyncio.TimeoutError) as exc:
        # The database (or the connection to it) is down: say so, and let the client retry.
        log.error("database unavailable (%s) while serving %s %s [request %s]", type(exc).__name__, request.method, request.path, rid)
        response = error_response(503, "database_unavailable", "the hub's database is unavailable right now; try again shortly", headers={"Retry-After": "5"})
    except Exception as exc:  # the outermost net: nothing unexpected leaks to a client
        frame = _innermost(exc)
        log.error("unexpected %s at %s while serving %s %s [request %s]", type(exc).__name__, frame, request.method, request.path, rid)
        if os.environ.get("HUB_DEBUG_TRACEBACKS"):
            log.error("traceback (HUB_DEBUG_TRACEBACKS is set; never in production)", exc_info=exc)
        response = error_response(500, "internal_error", f"the hub failed unexpectedly; quote request id {rid} to the operator")
    response.headers["X-Request-Id"] = rid
    metrics.REQUESTS.labels(request.method, route_label(request), str(response.status)).inc()
    access.info(
        "%s %s %s %.1fms [request %s]", request.method, request.path, response.status, (time.perf_counter() - started) * 1000, rid
    )
    return response


def route_label(request: web.Request) -> str:
    """A bounded label for the route: the template, with a provider's action or core
    route named (``/api/integrations/{provider}/connect``, ``.../{action}``)."""
    info = request.match_info
    route = info.route if info is not None else None
    if route is None or getattr(route, "resource", None) is None:
        return "(unmatched)"
    canonical = route.resource.canonical
    if canonical.endswith("{tail}"):
        tail = info.get("tail", "").strip("/")
        from .app import CORE_ROUTES

        named = tail if tail in CORE_ROUTES or tail == "stats/daily" else "{action}"
        return canonical.replace("{tail}", named)
    return canonical if canonical.startswith(("/api", "/healthz", "/readyz", "/metrics")) or canonical == "/" else "(static)"


def hub_error_response(request: web.Request, exc: HubError) -> web.Response:
    secrets = request.app[SECRETS]() if SECRETS in request.app else []
    message = redact_text(exc.message, secrets)
    details = exc.details
    provider_code = getattr(exc, "provider_code", None)
    if provider_code:
        details = {**(details if isinstance(details, dict) else ({"info": details} if details is not None else {})), "providerError": provider_code}
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if exc.status >= 500:
        log.warning("%s %s -> %s %s: %s [request %s]", request.method, request.path, exc.status, exc.code, message, request[REQUEST_ID])
    return error_response(exc.status, exc.code, message, details, headers)


def http_exception_response(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:  # a redirect, raised by a handler: answer it as a plain response
        return web.Response(status=exc.status, headers=exc.headers, text=exc.text)
    status = exc.status
    if status == 404:
        message = f"no route {request.method} {request.path}"
    elif status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}"
        return error_response(405, "method_not_allowed", message, headers={"Allow": ", ".join(allowed)})
    elif status == 413:
        limit = request.app._client_max_size  # noqa: SLF001 - the configured limit, for the message
        message = f"the request body is larger than the {limit // 1024} KiB limit"
    else:
        message = exc.reason or "request failed"
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message)


def _innermost(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"

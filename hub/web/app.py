"""The aiohttp application: core routes, provider actions, health and the OpenAPI document."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .. import metrics
from ..activity import LOG_STATUSES, LogQuery
from ..auth import Caller
from ..errors import (
    BadRequest,
    HubError,
    MethodNotAllowed,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from ..plugins import RESERVED
from ..schema import MAX_DEPTH, QUERY_METHODS, too_deep
from ..service import Hub
from . import openapi
from .pages import fragment_page, result_page
from .responses import SECRETS, envelope_middleware, error_body, ok

HUB_KEY = web.AppKey("hub", Hub)
STATIC = Path(__file__).with_name("static")

# Core routes under /api/integrations/{provider}/...: which methods each one answers.
CORE_ROUTES: dict[str, tuple[str, ...]] = {
    "connect": ("GET",),
    "callback": ("GET",),
    "tokens": ("POST",),
    "refresh": ("POST",),
    "status": ("GET", "PATCH"),
    "disconnect": ("DELETE",),
    "logs": ("GET",),
    "stats": ("GET",),
}


def create_app(hub: Hub, *, manage_lifecycle: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[envelope_middleware],
        client_max_size=hub.config.server.max_body_bytes,
        # Room for every query an action's schema admits, percent-encoded non-ASCII
        # included, so that a too-long value is a 400 naming the field rather than
        # the HTTP parser's own plain-text refusal.
        # keepalive_timeout is aiohttp's only bound on a request head still arriving: its
        # timer runs from the connection's start (or its last response), whatever trickles
        # in meanwhile. Set here, it holds wherever the app is served (serve, sandbox,
        # workers, tests); it overrides run_app's default of 75 s.
        handler_args={"max_line_size": 65536, "max_field_size": 16384, "keepalive_timeout": hub.config.server.header_timeout},
    )
    app[HUB_KEY] = hub
    app[SECRETS] = hub.secret_values
    app.on_response_prepare.append(_static_headers)
    if manage_lifecycle:
        app.cleanup_ctx.append(_hub_context)
    r = app.router
    r.add_get("/", dashboard)
    r.add_static("/static/", STATIC, append_version=True)
    r.add_get("/healthz", healthz)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics_route)
    r.add_get("/api/openapi.json", openapi_doc)
    r.add_get("/api/providers", providers)
    r.add_get("/api/integrations", list_integrations)
    r.add_route("*", "/api/integrations/{provider}", integration)
    r.add_route("*", "/api/integrations/{provider}/{tail:.+}", provider_route)
    return app


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    await hub.start()
    yield
    await hub.stop()


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


def _caller(request: web.Request) -> Caller:
    return _hub(request).authenticate(request.headers.get("Authorization"))


# --- health ------------------------------------------------------------------------


DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # The page holds Disconnect and Delete buttons: never frameable, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


# The pages at the end of a connect flow: the dashboard's policy (they load one stylesheet
# and nothing else), and never stored, since their URL carried the code and state.
RESULT_PAGE_HEADERS = {**DASHBOARD_HEADERS, "Cache-Control": "no-store"}


def _result_response(status: int, *, ok: bool, provider_title: str, message: str) -> web.Response:
    page = result_page(ok=ok, provider_title=provider_title, message=message)
    return web.Response(status=status, text=page, content_type="text/html", headers=RESULT_PAGE_HEADERS)


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=DASHBOARD_HEADERS)


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Revalidate the page's script and style, so an upgrade never pairs new HTML with old code.
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


async def favicon(request: web.Request) -> web.Response:
    # Browsers ask for it unprompted; an empty answer keeps their consoles free of 404s.
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


async def healthz(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await _hub(request).ready()
    except Exception as exc:
        raise ServiceUnavailable(f"the database is unreachable ({type(exc).__name__})", code="database_unavailable") from None
    return ok({"status": "ready", "database": "ok"})


async def metrics_route(request: web.Request) -> web.Response:
    """Prometheus text format. Unauthenticated, as scrapers expect: expose it only to the
    network your monitoring runs on."""
    try:
        counts = await _hub(request).integration_counts()
    except Exception:
        counts = {}  # the database being down must not take the process's own metrics with it
    return web.Response(body=metrics.exposition(counts), headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(_hub(request)))


# --- catalogue and integrations -----------------------------------------------------


async def providers(request: web.Request) -> web.Response:
    _caller(request)
    return ok(_hub(request).catalogue())


async def list_integrations(request: web.Request) -> web.Response:
    caller = _caller(request)
    return ok(await _hub(request).list_integrations(caller))


async def integration(request: web.Request) -> web.Response:
    hub = _hub(request)
    provider = request.match_info["provider"]
    if request.method == "GET":
        caller = _caller(request)
        return ok(await hub.get_integration(caller, provider))
    if request.method == "DELETE":
        caller = _caller(request)
        return ok(await hub.delete(caller, provider), "integration deleted; its tokens were revoked and wiped")
    raise MethodNotAllowed(f"{request.method} is not allowed on /api/integrations/{provider}; allowed: DELETE, GET", allowed=["DELETE", "GET"])


async def provider_route(request: web.Request) -> web.StreamResponse:
    provider = request.match_info["provider"]
    tail = request.match_info["tail"].strip("/")
    if tail in CORE_ROUTES:
        allowed = CORE_ROUTES[tail]
        if request.method not in allowed:
            raise MethodNotAllowed(
                f"{request.method} is not allowed on /api/integrations/{provider}/{tail}; allowed: {', '.join(allowed)}",
                allowed=list(allowed),
            )
        return await CORE_HANDLERS[(tail, request.method)](request, provider)
    if tail == "stats/daily":
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} is not allowed on /api/integrations/{provider}/stats/daily; allowed: GET", allowed=["GET"])
        return await stats_daily(request, provider)
    if tail.split("/")[0] in RESERVED:
        raise BadRequest(f"/{tail.split('/')[0]} is a hub route and takes no sub-path")
    return await action(request, provider, tail)


async def connect(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    return ok(await _hub(request).begin_connect(caller, provider, request.query.get("return_url")), "send the user's browser to authUrl")


async def callback(request: web.Request, provider: str) -> web.StreamResponse:
    hub = _hub(request)
    wants_json = "application/json" in request.headers.get("Accept", "")
    rt = hub.providers.get(provider)
    if rt is not None and rt.info.auth == "token" and not request.query.get("code") and not request.query.get("error"):
        return await _fragment_callback(request, hub, provider)
    try:
        outcome = await hub.complete_callback(provider, request.query)
    except HubError as exc:
        if wants_json:
            raise
        title = hub.providers[provider].info.title if provider in hub.providers else provider
        return _result_response(exc.status, ok=False, provider_title=title, message=exc.message)
    if outcome.return_url:
        params = {"provider": provider, "status": "connected" if outcome.ok else "error"}
        if outcome.error is not None:
            params["error"] = outcome.error.code
        sep = "&" if "?" in outcome.return_url else "?"
        raise web.HTTPFound(f"{outcome.return_url}{sep}{urlencode(params)}")
    status = 200 if outcome.ok else (outcome.error.status if outcome.error else 400)
    if wants_json:
        if outcome.ok:
            return ok(outcome.integration, outcome.message)
        assert outcome.error is not None
        return web.json_response(error_body(outcome.error.code, outcome.message, outcome.error.details), status=status)
    return _result_response(status, ok=outcome.ok, provider_title=outcome.title, message=outcome.message)


async def _fragment_callback(request: web.Request, hub: Hub, provider: str) -> web.Response:
    """Token-flow providers hand the token back in the URL fragment, which only the
    browser sees: answer a page whose script posts it, with the state, to ``tokens``."""
    rt = hub.providers[provider]
    try:
        await hub.consume_state(provider, request.query.get("state"), consume=False)
    except HubError as exc:
        return _result_response(exc.status, ok=False, provider_title=rt.info.title, message=exc.message)
    nonce = secrets.token_urlsafe(16)
    page = fragment_page(provider=provider, provider_title=rt.info.title, post_url=f"/api/integrations/{provider}/tokens", nonce=nonce)
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


async def tokens(request: web.Request, provider: str) -> web.Response:
    hub = _hub(request)
    hub.runtime(provider)
    body = await _json_object(request)
    unknown = set(body) - {"token", "state"}
    if unknown:
        field = sorted(unknown)[0]
        raise BadRequest(f"{field}: is not a known field (expected {{\"token\": \"...\"}})", details={"field": field})
    if "state" in body:
        # The end of a token flow: the state names the user, no JWT is involved.
        view, return_url = await hub.complete_token_flow(provider, body["state"], body.get("token"))
        if return_url:
            sep = "&" if "?" in return_url else "?"
            view = {**view, "returnUrl": f"{return_url}{sep}{urlencode({'provider': provider, 'status': 'connected'})}"}
        return ok(view, f"{view.get('title', provider)} is connected.", status=201)
    caller = _caller(request)
    return ok(await hub.import_token(caller, provider, body.get("token")), "token verified and stored", status=201)


async def refresh(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    return ok(await _hub(request).refresh(caller, provider), "token refreshed")


async def status_get(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    return ok(await _hub(request).live_status(caller, provider))


async def status_patch(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    hub = _hub(request)
    hub.runtime(provider)
    return ok(await hub.change_status(caller, provider, await _json_object(request)), "status changed")


async def disconnect(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    return ok(await _hub(request).disconnect(caller, provider), "disconnected; tokens were revoked and wiped")


async def logs(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    q = request.query
    _no_unknown(q, {"status", "action", "since", "limit", "cursor"})
    status = q.get("status")
    if status is not None and status.upper() not in LOG_STATUSES:
        raise BadRequest(f"status: must be one of {', '.join(LOG_STATUSES)}", details={"field": "status"})
    action_name = q.get("action")
    if action_name is not None and not (0 < len(action_name) <= 64):
        raise BadRequest("action: must be 1 to 64 characters", details={"field": "action"})
    query = LogQuery(
        status=status.upper() if status else None,
        action=action_name,
        since=_parse_since(q.get("since")),
        limit=_int_param(q, "limit", 50, 1, 200),
        cursor=q.get("cursor") or None,
    )
    return ok(await _hub(request).logs(caller, provider, query))


async def stats(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    _no_unknown(request.query, {"days"})
    days = _int_param(request.query, "days", 7, 1, 365)
    return ok(await _hub(request).stats(caller, provider, days))


async def stats_daily(request: web.Request, provider: str) -> web.Response:
    caller = _caller(request)
    _no_unknown(request.query, {"days"})
    days = _int_param(request.query, "days", 7, 1, 90)
    return ok(await _hub(request).daily(caller, provider, days))


CORE_HANDLERS = {
    ("connect", "GET"): connect,
    ("callback", "GET"): callback,
    ("tokens", "POST"): tokens,
    ("refresh", "POST"): refresh,
    ("status", "GET"): status_get,
    ("status", "PATCH"): status_patch,
    ("disconnect", "DELETE"): disconnect,
    ("logs", "GET"): logs,
    ("stats", "GET"): stats,
}


async def action(request: web.Request, provider: str, path: str) -> web.Response:
    caller = _caller(request)
    hub = _hub(request)
    # Matched as sent (still percent-encoded): an encoded "/" must stay inside its segment.
    raw = request.rel_url.raw_path.split("/", 4)
    rt, act, params = hub.resolve_action(provider, request.method, raw[4].strip("/") if len(raw) > 4 else path)
    validator = rt.validators[act.name]
    if act.method in QUERY_METHODS:
        data = validator.from_query({k: request.query.getall(k) for k in request.query.keys()})
    else:
        if request.query:
            raise BadRequest(f"{act.method} {path} takes its input as a JSON body, not in the query string")
        data = await _json_object(request, allow_empty=True)
    for key, value in params.items():
        if key in data and data[key] != value:
            raise BadRequest(f"{key}: given both in the path ({value!r}) and the input", details={"field": key})
        data[key] = value
    result = await hub.run_action(caller, rt, act, data)
    return ok(result, f"{act.name} succeeded")


# --- input helpers ------------------------------------------------------------------


async def _json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("body: a JSON object is required", details={"field": "(body)"})
    ctype = request.content_type
    # No Content-Type at all arrives as application/octet-stream: accept it as JSON.
    if ctype not in ("application/json", "application/octet-stream") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type: expected application/json, got {ctype}", details={"field": "Content-Type"})
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest("body: JSON nested too deeply", details={"field": "(body)"}, code="malformed_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = f": {exc}" if isinstance(exc, _StrictJSONError) else ""
        raise BadRequest(f"body: not valid JSON{where}{reason}", details={"field": "(body)"}, code="malformed_json") from None
    if not isinstance(value, dict):
        raise BadRequest("body: must be a JSON object", details={"field": "(body)"})
    # Bounded here, before anything runs: what follows (validation, redaction, the encoder
    # sending it upstream) recurses, and must never fail halfway through a call.
    deep = too_deep(value, root="(body)")
    if deep is not None:
        raise BadRequest(f"{deep}: nested deeper than {MAX_DEPTH} levels", details={"field": deep})
    return value


class _StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJSONError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _StrictJSONError(f"{name} is not JSON")


def _int_param(q: Any, name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer from {low} to {high}", details={"field": name}) from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be from {low} to {high}", details={"field": name})
    return value


def _parse_since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise BadRequest("since: must be an ISO 8601 date or date-time, e.g. 2026-01-31T12:00:00Z", details={"field": "since"}) from None


def _no_unknown(q: Any, known: set[str]) -> None:
    for key in q.keys():
        if key not in known:
            raise BadRequest(f"{key}: unknown query parameter (known: {', '.join(sorted(known))})", details={"field": key})

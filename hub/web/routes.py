"""The API's routes, registered in aiohttp's router, and their handlers: each reads its
input, calls one core service, and shapes the answer through :mod:`.views`.

Core routes under ``/api/integrations/{provider}/`` are resources of their own, so the
router answers a wrong method with 405 and an ``Allow`` header. Provider actions share
one resource whose pattern leaves the core routes' names out.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from aiohttp import web

from ..activity import LOG_STATUSES, LogQuery
from ..core.hub import Hub
from ..events import EVENT_STATUSES
from ..validation import QUERY_METHODS
from ..errors import BadRequest, HubError, ServiceUnavailable, ValidationFailed
from ..infra import metrics
from ..registry import RESERVED
from . import openapi, sessions, views, webhooks
from .deprecation import DEPRECATED
from .errorcodes import wire_code
from .inputs import int_param, json_object, no_unknown, parse_since, single
from .middleware import HUB_KEY, authenticate, caller, public
from .pages import fragment_page, result_page
from .responses import error_body, ok

STATIC = Path(__file__).with_name("static")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
BASE = "/api/integrations/{provider}"

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
    "webhook": ("POST", "HEAD"),
}
# Everything under a provider that is not exactly a core route is an action path.
_ACTION_PATH = r"(?!(?:" + "|".join(sorted([*CORE_ROUTES, "stats/daily"])) + r")/?$).+"

DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # The page holds Disconnect and Delete buttons: never frameable, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def setup(app: web.Application) -> None:
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
    r.add_get("/api/events", list_events, allow_head=False)
    r.add_get(BASE, integration, allow_head=False)
    r.add_delete(BASE, delete)
    r.add_get(BASE + "/connect", connect, allow_head=False)
    r.add_get(BASE + "/callback", callback, allow_head=False)
    r.add_post(BASE + "/tokens", tokens)
    r.add_post(BASE + "/refresh", refresh)
    r.add_get(BASE + "/status", status_get, allow_head=False)
    r.add_patch(BASE + "/status", status_patch)
    r.add_delete(BASE + "/disconnect", disconnect)
    r.add_get(BASE + "/logs", logs, allow_head=False)
    r.add_get(BASE + "/stats", stats, allow_head=False)
    r.add_get(BASE + "/stats/daily", stats_daily, allow_head=False)
    webhooks.setup(app)
    r.add_route("*", BASE + "/{path:" + _ACTION_PATH + "}", action)


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


# --- pages and health ----------------------------------------------------------------


@public
async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=DASHBOARD_HEADERS)


@public
async def favicon(request: web.Request) -> web.Response:
    # Browsers ask for it unprompted; an empty answer keeps their consoles free of 404s.
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


@public
async def healthz(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


@public
async def readyz(request: web.Request) -> web.Response:
    try:
        await _hub(request).ready()
    except Exception as exc:
        raise ServiceUnavailable(f"the database is unreachable ({type(exc).__name__})", code="database_unavailable") from None
    return ok({"status": "ready", "database": "ok"})


@public
async def metrics_route(request: web.Request) -> web.Response:
    """Prometheus text format. Unauthenticated, as scrapers expect: expose it only to the
    network your monitoring runs on."""
    try:
        counts = await _hub(request).integration_counts()
    except Exception:
        counts = {}  # the database being down must not take the process's own metrics with it
    return web.Response(body=metrics.exposition(counts), headers={"Content-Type": metrics.CONTENT_TYPE})


@public
async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(_hub(request)))


# --- catalogue and integrations ------------------------------------------------------


async def providers(request: web.Request) -> web.Response:
    hub = _hub(request)
    return ok(views.catalogue(hub.providers, hub.registry))


async def list_integrations(request: web.Request) -> web.Response:
    hub = _hub(request)
    return ok([views.integration(row, hub.providers, summary) for row, summary in await hub.reports.integrations(caller(request))])


async def integration(request: web.Request) -> web.Response:
    hub = _hub(request)
    row, summary = await hub.reports.integration(caller(request), request.match_info["provider"])
    return ok(views.integration(row, hub.providers, summary))


async def delete(request: web.Request) -> web.Response:
    hub = _hub(request)
    row = await hub.manage.delete(caller(request), request.match_info["provider"])
    return ok(views.integration(row, hub.providers), "integration deleted; its tokens were revoked and wiped")


# --- connecting ----------------------------------------------------------------------


async def connect(request: web.Request) -> web.Response:
    no_unknown(request.query, {"return_url"})
    return_url = single(request.query, "return_url")
    begun = await _hub(request).connect.begin_direct(caller(request), request.match_info["provider"], return_url)
    return ok(begun, "send the user's browser to authUrl")


@public
async def callback(request: web.Request) -> web.StreamResponse:
    """The browser comes back from the provider: no JWT, the state names the user."""
    hub = _hub(request)
    provider = request.match_info["provider"]
    wants_json = "application/json" in request.headers.get("Accept", "")
    rt = hub.providers.get(provider)
    if rt is not None and rt.info.auth == "token" and not request.query.get("code") and not request.query.get("error"):
        return await _fragment_callback(request, provider)
    try:
        outcome = await hub.connect.complete_callback(provider, request.query, request.cookies)
    except HubError as exc:
        if wants_json:
            raise
        title = rt.info.title if rt is not None else provider
        return _page(exc.status, ok=False, title=title, message=exc.message, code=wire_code(exc)[0])
    if outcome.session is not None and outcome.session.opener_origin and not wants_json:
        return sessions.report(outcome.session, provider, outcome.title, ok_=outcome.ok, message=outcome.message, error=outcome.error)
    if outcome.return_url:
        session_id = outcome.session.id if outcome.session is not None else None
        raise web.HTTPFound(sessions.return_to(outcome.return_url, provider, session_id, outcome.error) or outcome.return_url)
    status = 200 if outcome.ok else (outcome.error.status if outcome.error else 400)
    if wants_json:
        if outcome.ok and outcome.integration is not None:
            return ok(views.integration(outcome.integration, hub.providers), outcome.message)
        assert outcome.error is not None
        code, details = wire_code(outcome.error)
        return web.json_response(error_body(code, outcome.message, details), status=status)
    return _page(status, ok=outcome.ok, title=outcome.title, message=outcome.message)


# The pages at the end of a connect flow: the dashboard's policy (they load one stylesheet
# and nothing else), and never stored, since their URL carried the code and state.
RESULT_PAGE_HEADERS = {**DASHBOARD_HEADERS, "Cache-Control": "no-store"}


def _page(status: int, *, ok: bool, title: str, message: str, code: str | None = None) -> web.Response:
    page = result_page(ok=ok, provider_title=title, message=message, code=code)
    return web.Response(status=status, text=page, content_type="text/html", headers=RESULT_PAGE_HEADERS)


async def _fragment_callback(request: web.Request, provider: str) -> web.Response:
    """Token-flow providers hand the token back in the URL fragment, which only the
    browser sees: answer a page whose script posts it, with the state, to ``tokens``."""
    hub = _hub(request)
    rt = hub.providers[provider]
    try:
        await hub.connect.check_state(provider, request.query.get("state"), request.cookies)
    except HubError as exc:
        return _page(exc.status, ok=False, title=rt.info.title, message=exc.message, code=wire_code(exc)[0])
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


@public
async def tokens(request: web.Request) -> web.Response:
    """A token obtained outside the redirect. With a ``state`` it ends a token flow (the
    state names the user); without one the caller's JWT says whose token it is."""
    hub = _hub(request)
    provider = request.match_info["provider"]
    hub.providers.runtime(provider)
    body = await json_object(request)
    unknown = set(body) - {"token", "state"}
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationFailed(f"{field}: is not a known field (expected {{\"token\": \"...\"}})", details={"field": field})
    if "state" in body:
        row, return_url, session = await hub.connect.complete_token_flow(provider, body["state"], body.get("token"), request.cookies)
        view = views.integration(row, hub.providers)
        if return_url:
            view = {**view, "returnUrl": sessions.return_to(return_url, provider, session.id if session else None, None)}
        if session is not None and session.opener_origin:
            view = {**view, "openerOrigin": session.opener_origin, "openerMessage": sessions.opener_message(session, provider, None)}
        return ok(view, f"{view.get('title', provider)} is connected.", status=201)
    who = authenticate(request)
    row = await hub.connect.import_token(who, provider, body.get("token"))
    return ok(views.integration(row, hub.providers), "token verified and stored", status=201)


# --- managing ------------------------------------------------------------------------


async def refresh(request: web.Request) -> web.Response:
    hub = _hub(request)
    row = await hub.manage.refresh(caller(request), request.match_info["provider"])
    return ok(views.integration(row, hub.providers), "token refreshed")


async def status_get(request: web.Request) -> web.Response:
    hub = _hub(request)
    row, checked = await hub.manage.live_status(caller(request), request.match_info["provider"])
    return ok({**views.integration(row, hub.providers), "checked": checked})


async def status_patch(request: web.Request) -> web.Response:
    hub = _hub(request)
    provider = request.match_info["provider"]
    hub.providers.runtime(provider)
    row = await hub.manage.change_status(caller(request), provider, await json_object(request))
    return ok(views.integration(row, hub.providers), "status changed")


async def disconnect(request: web.Request) -> web.Response:
    hub = _hub(request)
    row = await hub.manage.disconnect(caller(request), request.match_info["provider"])
    return ok(views.integration(row, hub.providers), "disconnected; tokens were revoked and wiped")


# --- activity ------------------------------------------------------------------------


async def logs(request: web.Request) -> web.Response:
    q = request.query
    no_unknown(q, {"status", "action", "since", "limit", "cursor"})
    status = single(q, "status")
    if status is not None and status.upper() not in LOG_STATUSES:
        raise ValidationFailed(f"status: must be one of {', '.join(LOG_STATUSES)}", details={"field": "status"})
    action_name = single(q, "action")
    if action_name is not None and len(action_name) > 64:
        raise ValidationFailed("action: must be 1 to 64 characters", details={"field": "action"})
    query = LogQuery(
        status=status.upper() if status else None,
        action=action_name,
        since=parse_since(q),
        limit=int_param(q, "limit", 50, 1, 200),
        cursor=single(q, "cursor"),
    )
    return ok(await _hub(request).reports.logs(caller(request), request.match_info["provider"], query))


async def list_events(request: web.Request) -> web.Response:
    """The caller's own events, newest first, with how their deliveries stand."""
    q = request.query
    no_unknown(q, {"type", "status", "limit", "cursor"})
    event_type = single(q, "type")
    if event_type is not None and (len(event_type) > 64 or not EVENT_TYPE.fullmatch(event_type)):
        raise ValidationFailed("type: must be an event type such as integration.expired", details={"field": "type"})
    status = single(q, "status")
    if status is not None and status.upper() not in EVENT_STATUSES:
        raise ValidationFailed(f"status: must be one of {', '.join(EVENT_STATUSES)}", details={"field": "status"})
    rows, cursor = await _hub(request).events.page(
        user_id=caller(request).user_id,
        event_type=event_type,
        status=status.upper() if status else None,
        limit=int_param(q, "limit", 50, 1, 200),
        cursor=single(q, "cursor"),
    )
    return ok({"items": [views.event(row, deliveries) for row, deliveries in rows], "nextCursor": cursor})


async def stats(request: web.Request) -> web.Response:
    no_unknown(request.query, {"days"})
    days = int_param(request.query, "days", 7, 1, 365)
    return ok(await _hub(request).reports.stats(caller(request), request.match_info["provider"], days))


async def stats_daily(request: web.Request) -> web.Response:
    no_unknown(request.query, {"days"})
    days = int_param(request.query, "days", 7, 1, 90)
    return ok(await _hub(request).reports.daily(caller(request), request.match_info["provider"], days))


# --- provider actions ----------------------------------------------------------------


async def action(request: web.Request) -> web.Response:
    hub = _hub(request)
    provider = request.match_info["provider"]
    path = request.match_info["path"].strip("/")
    if path.split("/")[0] in RESERVED:
        raise BadRequest(f"/{path.split('/')[0]} is a hub route and takes no sub-path")
    # Matched as sent (still percent-encoded): an encoded "/" must stay inside its segment.
    raw = request.rel_url.raw_path.split("/", 4)
    rt, act, params = hub.actions.resolve(provider, request.method, raw[4].strip("/") if len(raw) > 4 else path)
    if act.deprecated is not None:
        request[DEPRECATED] = act.deprecated
    validator = rt.validators[act.name]
    if act.method in QUERY_METHODS:
        data = validator.from_query({k: request.query.getall(k) for k in request.query.keys()})
    else:
        if request.query:
            raise BadRequest(f"{act.method} {path} takes its input as a JSON body, not in the query string")
        data = await json_object(request, allow_empty=True)
    for key, value in params.items():
        if key in data and data[key] != value:
            raise ValidationFailed(f"{key}: given both in the path ({value!r}) and the input", details={"field": key})
        data[key] = value
    result = await hub.actions.run(caller(request), rt, act, data)
    return ok(result, f"{act.name} succeeded")

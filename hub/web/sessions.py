"""Connect sessions over HTTP: the JSON routes the host's backend calls
(``/api/connect-sessions``), and the pages the user's browser sees (``/connect/...``).

The browser side is public (no JWT): the link's secret opens the session once and sets
its cookie; from then on the cookie is the credential, sent by the browser alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from ..core.binding import SessionCookieRefused, cookie_name
from ..core.hub import Hub
from ..core.sessions import status_of
from ..errors import HubError, ValidationFailed
from ..store.models import ConnectSession
from . import views
from .errorcodes import wire_code
from .inputs import json_object
from .middleware import HUB_KEY, caller, public
from .responses import ok
from .session_pages import PAGE_HEADERS, problem_page, report_page, session_page

MESSAGE_TYPE = "hub:connect"


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/connect-sessions", create)
    r.add_get("/api/connect-sessions/{id}", read, allow_head=False)
    r.add_delete("/api/connect-sessions/{id}", cancel)
    r.add_get("/connect/sessions/{id}", page, allow_head=False)
    r.add_get("/connect/sessions/{id}/start/{provider}", start, allow_head=False)
    r.add_post("/connect/sessions/{id}/paste/{provider}", paste)
    r.add_get("/connect/{token}", open_link, allow_head=False)


def _hub(request: web.Request) -> Hub:
    return request.app[HUB_KEY]


# --- the host's backend --------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    hub = _hub(request)
    row, token = await hub.connect_sessions.create(caller(request), await json_object(request, allow_empty=True))
    url = hub.connect_sessions.link(token)
    view = views.connect_session(row, status_of(row, hub.connect_sessions.now()), url)
    return ok(view, "send the user's browser to url (it opens once)", status=201)


async def read(request: web.Request) -> web.Response:
    hub = _hub(request)
    row = await hub.connect_sessions.get(caller(request), request.match_info["id"])
    return ok(views.connect_session(row, status_of(row, hub.connect_sessions.now())))


async def cancel(request: web.Request) -> web.Response:
    hub = _hub(request)
    row = await hub.connect_sessions.cancel(caller(request), request.match_info["id"])
    return ok(views.connect_session(row, status_of(row, hub.connect_sessions.now())), "connect session cancelled")


# --- the user's browser --------------------------------------------------------------


def refusal(exc: HubError, title: str = "The account") -> web.Response:
    code = wire_code(exc)[0]
    return web.Response(status=exc.status, text=problem_page(title=title, message=exc.message, code=code),
                        content_type="text/html", headers=PAGE_HEADERS)


@public
async def open_link(request: web.Request) -> web.Response:
    """The link, once: the session becomes this browser's (its cookie), then its page, under
    an address without the link's secret, so reloading it is harmless."""
    hub = _hub(request)
    try:
        row, cookie = await hub.connect_sessions.open(request.match_info["token"])
    except HubError as exc:
        return refusal(exc)
    answer = web.Response(status=303, headers={"Location": f"/connect/sessions/{row.id}", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    lifetime = hub.config.connect_sessions.ttl_seconds + hub.config.security.state_ttl_seconds
    answer.set_cookie(cookie_name(row.id), cookie, max_age=lifetime, path="/", httponly=True, samesite="Lax",
                      secure=hub.config.public_url.startswith("https://"))
    return answer


@public
async def page(request: web.Request) -> web.Response:
    hub = _hub(request)
    try:
        row = await hub.connect_sessions.in_browser(request.match_info["id"], request.cookies)
    except HubError as exc:
        return refusal(exc)
    listed = [(name, hub.providers[name].info.title) for name in row.providers if name in hub.providers]
    return web.Response(text=session_page(row.id, listed), content_type="text/html", headers=PAGE_HEADERS)


@public
async def start(request: web.Request) -> web.StreamResponse:
    """One provider's flow from the session's page: its state bound to this browser."""
    hub = _hub(request)
    try:
        url = await hub.connect_sessions.start(request.match_info["id"], request.cookies, request.match_info["provider"])
    except HubError as exc:
        return refusal(exc)
    raise web.HTTPFound(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@public
async def paste(request: web.Request) -> web.Response:
    """A token or API key pasted on the session's page (a form post from the page itself)."""
    hub = _hub(request)
    provider = request.match_info["provider"]
    rt = hub.providers.get(provider)
    title = rt.info.title if rt is not None else provider
    try:
        _same_origin(request, hub.config.public_url)
        form = await request.post()
        unknown = sorted(set(form) - {"token"})
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: is not a known field (the form sends token)", details={"field": unknown[0]})
        token = form.get("token")
        row, integration = await hub.connect_sessions.paste(request.match_info["id"], request.cookies, provider, token if isinstance(token, str) else None)
    except HubError as exc:
        return refusal(exc, title)
    message = f"{title} is connected."
    return report(row, provider, title, ok_=True, message=message, status=201)


def _same_origin(request: web.Request, public_url: str) -> None:
    """The paste form is posted by the session's page only. SameSite=Lax already keeps the
    cookie off other sites' posts; the Origin header, when sent, must be the hub's too."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return
    mine = urlsplit(public_url)
    allowed = {f"{mine.scheme}://{mine.netloc}", f"{request.scheme}://{request.host}"}
    if origin not in allowed:
        raise SessionCookieRefused("this form may only be posted from the connect session's own page", code="connect_session_cookie_missing")


def report(row: ConnectSession, provider: str, title: str, *, ok_: bool, message: str, error: HubError | None = None,
           status: int = 200) -> web.Response:
    """The end of a session's flow: a page that posts the outcome to the opener (its
    allow-listed origin only) or goes to the return URL."""
    code = wire_code(error)[0] if error is not None else ""
    page_, csp = report_page(ok=ok_, title=title, message=message, code=code, report={
        "message": opener_message(row, provider, error),
        "openerOrigin": row.opener_origin,
        "returnUrl": return_to(row.return_url, provider, row.id, error),
    })
    headers = {**PAGE_HEADERS, "Content-Security-Policy": csp}
    return web.Response(status=status if ok_ else (error.status if error else 400), text=page_, content_type="text/html", headers=headers)


def opener_message(row: ConnectSession, provider: str, error: HubError | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": MESSAGE_TYPE, "sessionId": row.id, "provider": provider, "status": "error" if error else "connected"}
    if error is not None:
        out["error"] = wire_code(error)[0]
    return out


def return_to(url: str | None, provider: str, session_id: str | None, error: HubError | None) -> str | None:
    if not url:
        return None
    params: dict[str, str] = {"provider": provider, "status": "error" if error else "connected"}
    if error is not None:
        params["error"] = wire_code(error)[0]
    if session_id:
        params["connect_session"] = session_id
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"

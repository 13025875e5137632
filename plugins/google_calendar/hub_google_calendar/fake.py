"""A fake Google (OAuth 2.0 + Calendar API v3) on :class:`hub.testing.FakeProvider`, for tests and
the local sandbox. The base brings the consent page, codes, PKCE, refresh, request recording, the
fault switches and their ``/_fake`` control routes and the state the sandbox keeps; this module
brings where Google differs, and :mod:`.fake_calendar` the Calendar API.

One server stands in for every Google host the hub talks to; the paths keep the real prefixes, so
a client only swaps the scheme+host part of each base URL:

* ``accounts.google.com``: ``/o/oauth2/v2/auth`` -- the consent page; Allow sends the browser back
  to ``redirect_uri`` with ``code``, ``scope``, ``authuser``, ``prompt`` and the ``state``, Deny
  with ``error=access_denied``. PKCE (S256 only) is remembered per code.
* ``oauth2.googleapis.com``: ``POST /token`` (authorization_code and refresh_token grants, client
  credentials by form fields or HTTP Basic) and ``POST /revoke``.
* ``openidconnect.googleapis.com``: ``GET /v1/userinfo``.
* ``www.googleapis.com``: ``/calendar/v3`` -- calendarList, calendars, events list/get/insert/
  patch/delete and freeBusy; ``HEAD`` wherever ``GET`` is answered, as Google's front ends do.

What it is faithful about (these are the things clients get wrong):

* Error shapes. The Calendar API answers ``{"error": {"code", "message", "errors": [{"domain",
  "reason", "message", ...}], "status"}}``; the token and revoke endpoints and userinfo answer
  ``{"error": "...", "error_description": "..."}`` (``invalid_grant`` "Malformed auth code." for an
  unknown code, "Bad Request" for a spent or expired one, "Token has been expired or revoked." for
  a dead refresh token; ``redirect_uri_mismatch``; ``invalid_client`` 401). Clients should key on
  the HTTP status and ``reason``/``error``, never on message text.
* Refresh tokens are only handed out when they are due: ``access_type=offline`` AND either the first
  consent of this user for this client or ``prompt=consent``. A refresh answers no new refresh
  token (unless ``rotate_refresh=True``). Access tokens (``ya29.…``) expire after ``expires_in``
  seconds (3599 by default; 401 ``authError`` then); refresh tokens look like ``1//…``.
* Sync tokens: ``nextSyncToken`` only on the last page; a request with ``syncToken`` returns what
  changed since (deleted events as ``status: "cancelled"``, reduced to ``kind``/``etag``/``id``/
  ``status`` as Google does); ``expire_sync_tokens()`` makes every existing token answer 410
  ``fullSyncRequired``. Tokens this instance never issued also answer 410.
* Pages are not always full. With ``short_pages`` on (the default), the first page of a listing
  that does not fit into one page is cut short: half of ``maxResults`` (rounded up) for a full
  listing, and *no items at all* for an incremental (``syncToken``) listing. Clients must loop on
  ``nextPageToken``, not on item counts.
* Time zones: event ``dateTime`` values are stored and returned as RFC 3339 with the offset of the
  event's ``timeZone`` (or the calendar's), so an event on the day of a DST change carries the
  right offset; all-day events are placed in the calendar's time zone; freeBusy clips busy blocks
  to the window, merges overlapping/touching ones, and formats them in the requested ``timeZone``
  (UTC, with ``Z``, when none is given).
* Scopes are checked per method (403 ``insufficientPermissions``); ``check_scopes = False`` turns
  that off. ``rate_limit_next()`` answers 429 ``rateLimitExceeded`` with ``Retry-After``;
  ``google_error_next()`` any status and reason (403 ``rateLimitExceeded`` included), and
  ``fail_next(status)`` without a body Google's error of that status.

Deliberate simplifications:

* One client, one Google account (``email``), three calendars: the primary one (id = the email;
  ``"primary"`` aliases it, also in ``events``), a writable "Team" calendar and a read-only holiday
  calendar whose id contains ``#`` (clients must URL-encode calendar ids). Redirect URIs are not
  registered: any is accepted unless ``allowed_redirect_uris`` is set. ``login_hint`` and the other
  ``prompt`` values are ignored. The consent page is the kit's plain one, and its errors are
  plain pages with status 400 (``invalid_client``, ``redirect_uri_mismatch``, ``invalid_scope``...).
* ``code_challenge_method`` must be ``S256`` when a challenge is sent (Google would also take
  ``plain``). A refused exchange does not spend the code (a good one does); codes expire after
  ten minutes. The token endpoint reads form bodies only.
* ``/revoke`` with any live token (no client credentials needed) ends the whole authorization of
  this client, as Google does: every token issued so far is revoked and the consent is forgotten
  (the next consent hands out a refresh token again); an unknown or dead token is a 400
  ``invalid_token``. ``revoke_refresh_tokens()`` kills only refresh tokens (access tokens live on
  until they expire) and also forgets the consent; ``revoke_all()`` is ``/revoke`` from Python.
* ``include_granted_scopes=true`` adds earlier grants to the new one; ``email``/``profile`` are
  widened to their ``userinfo.*`` URLs and bring ``openid`` along, so the granted ``scope`` may
  differ from the asked one. ``id_token`` is JWT-shaped but unsigned (``alg: none``).
* userinfo returns ``email``/``email_verified`` only with the email scope and
  ``name``/``given_name``/``family_name``/``picture`` only with the profile scope; ``sub`` always.
* Recurring events are stored with their ``recurrence`` but never expanded; ``singleEvents`` only
  decides whether ``orderBy=startTime`` is allowed. No ``PUT``, ``move``, ``import``, ACLs or
  reminders logic; ``events/watch`` and ``channels/stop`` are :mod:`.fake_push`'s (channels do
  not survive a sandbox restart). ``q`` is a case-insensitive substring match on summary, description,
  location and attendee/organizer emails and names.
* Changes are found by comparing each event with a snapshot taken when the listing that issued the
  sync token started, so events changed directly in ``fake.events`` (or via ``update_event`` /
  ``delete_event``) show up in incremental syncs too; an event removed from the dict outright
  comes back as a bare cancelled entry. A listing is frozen at its first page: later pages serve
  that result even if events change meanwhile. A page token belongs to one listing: the follow-up
  requests must name the same calendar and repeat the same ``syncToken`` (or none), else 400
  ``invalid``. Page tokens do not survive a sandbox restart (the listing starts again).
* freeBusy ignores ``groupExpansionMax``/``calendarExpansionMax`` and skips events the account
  has declined; unknown calendars come back with ``errors: [{"domain": "global", "reason":
  "notFound"}]``.
* ``refresh_count`` counts successful refresh_token grants.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import math
import re
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.testing import FakeProvider, FakeToken, Grant

from .fake_calendar import CalendarApi, SyncBase
from .fake_push import CalendarPush
from .fake_rules import (
    AUTH_HELP,
    DEFAULT_REASONS,
    REALM,
    SCOPE_ALIASES,
    SCOPE_PREFIX,
    USERINFO_EMAIL,
    USERINFO_PROFILE,
    CalendarEvents,
    GoogleError,
    b64url,
    format_dt,
    phrase,
    random_text,
    time_object,
    zone_of,
)

__all__ = ["FakeGoogle", "GoogleError"]

TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
CODE_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# The error code the token endpoint uses for a faked 4xx when the test does not name one.
TOKEN_ERRORS_BY_STATUS = {400: "invalid_request", 401: "invalid_client", 403: "access_denied", 429: "rate_limit_exceeded"}


def _display_name(email: str) -> tuple[str, str, str]:
    parts = [p.capitalize() for p in re.split(r"[._+-]+", email.split("@")[0]) if p]
    given, family = (parts[0] if parts else email), " ".join(parts[1:])
    return f"{given} {family}".strip(), given, family


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode(parse_qsl(parts.query, keep_blank_values=True) + list(params.items()))))


def _client_of(request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return form.get("client_id", ""), form.get("client_secret", "")
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return client_id, secret


class FakeGoogle(CalendarPush, CalendarApi, FakeProvider):
    """Google's OAuth endpoints and Calendar API; see the module docstring for what it imitates."""

    title = "Google Calendar"
    api_path = "/calendar/v3"
    paths = {"authorize": "/o/oauth2/v2/auth", "token": "/token", "revoke": "/revoke", "userinfo": "/v1/userinfo"}
    consent_fields = (*FakeProvider.consent_fields, "response_type", "access_type", "prompt", "include_granted_scopes",
                      "login_hint")

    def __init__(self, client_id: str = "fake-google-client.apps.googleusercontent.com",
                 client_secret: str = "fake-google-secret", *, email: str = "ada@example.com",
                 time_zone: str = "Europe/Berlin", **options: Any) -> None:
        if zone_of(time_zone) is None:
            raise ValueError(f"unknown time zone {time_zone!r}")
        name, given, family = _display_name(email)
        # Google's subject ids are ~21 digits and stable per account.
        sub = "1" + str(int(hashlib.sha256(email.encode()).hexdigest(), 16))[:20]
        account = {"sub": sub, "name": name, "given_name": given, "family_name": family,
                   "picture": f"https://lh3.googleusercontent.com/a/fake-{sub}=s96-c", "email": email, "email_verified": True}
        super().__init__(client_id, client_secret, **{"expires_in": 3599, "rotate_refresh": False, "account": account, **options})
        self.email, self.time_zone = email, time_zone
        self.allowed_redirect_uris: list[str] | None = None  # None: accept any redirect_uri
        self.check_scopes = self.short_pages = True
        self.refresh_count = self.sync_generation = self.etag_counter = 0
        self.consented = False  # has this account approved this client (since the last revoke)?
        self.granted_scopes: list[str] = []
        self.calendars = self._default_calendars()
        self.events = CalendarEvents(email, {c["id"]: {} for c in self.calendars})
        self.page_tokens: dict[str, Any] = {}
        self.sync_tokens: dict[str, SyncBase] = {}
        self.init_push()  # fake_push.py: channels, and the messages they send

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.middlewares.append(self._oauth_rules)  # inside the base's: recorded and switchable first
        self.add_push_routes(app)
        return app

    # ------------------------------------------------------------------ seeding, as another client would

    def add_event(self, calendar_id: str = "primary", **fields: Any) -> dict[str, Any]:
        """Seed an event, as if made elsewhere; returns the stored event (the live dict).

        ``start``/``end`` may be plain strings: ``"2026-03-29"`` (all-day) or an RFC 3339
        ``dateTime`` (without offset it is read in the calendar's zone). Without ``start`` the event
        is tomorrow 10:00-11:00 in the calendar's zone. Server-owned fields (``id``, ``status``,
        ``created``, ``updated``, ``organizer``...) may be given to override the defaults.
        """
        calendar = self._seed_calendar(calendar_id)
        zone_name = calendar["timeZone"]
        fields.update({k: time_object(fields[k], zone_name) for k in ("start", "end") if isinstance(fields.get(k), str)})
        if "start" not in fields:
            zone = ZoneInfo(zone_name)
            tomorrow = datetime.now(zone).date() + timedelta(days=1)
            start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10, tzinfo=zone)
            fields["start"] = {"dateTime": format_dt(start, zone), "timeZone": zone_name}
            fields.setdefault("end", {"dateTime": format_dt(start.astimezone(UTC) + timedelta(hours=1), zone), "timeZone": zone_name})
        try:
            return self.create_event(calendar, fields, seeding=True)
        except GoogleError as err:
            raise ValueError(err.message) from None

    def add_busy(self, start: str, end: str, calendar_id: str = "primary") -> None:
        """Seed a busy block for freeBusy: an opaque event titled "Busy"."""
        self.add_event(calendar_id, summary="Busy", start=start, end=end)

    def update_event(self, calendar_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
        """Change a stored event as another client would (patch semantics, new ``updated``/``etag``)."""
        calendar = self._seed_calendar(calendar_id)
        try:
            return self.apply_patch(calendar, self.stored_event(calendar, event_id), fields, seeding=True)
        except GoogleError as err:
            raise ValueError(err.message) from None

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Cancel a stored event as another client would; it stays behind with status "cancelled"."""
        calendar = self._seed_calendar(calendar_id)
        event = self.stored_event(calendar, event_id)
        event["status"] = "cancelled"
        self.touch(event)
        self.cancelled(calendar["id"])

    def _seed_calendar(self, calendar_id: str) -> dict[str, Any]:
        calendar = self.find_calendar(calendar_id)
        if calendar is None:
            raise KeyError(f"no calendar {calendar_id!r}")
        return calendar

    # ------------------------------------------------------------------ switches of Google's own

    def revoke_all(self) -> None:
        """Every token issued so far is revoked and the consent is forgotten, as ``/revoke`` does."""
        super().revoke_all()
        self.consented, self.granted_scopes = False, []

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far answers ``invalid_grant`` from now on; the consent is forgotten."""
        for token in self.tokens.values():
            token.revoked = token.revoked or token.kind == "refresh"
        self.consented, self.granted_scopes = False, []

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 ``fullSyncRequired`` from now on."""
        self.sync_generation += 1

    def google_error_next(self, status: int, reason: str, *, path: str | None = None, count: int = 1,
                          retry_after: int | None = None) -> None:
        """The next ``count`` requests (to ``path``, if given) get a Calendar-API-shaped error,
        e.g. ``google_error_next(403, "rateLimitExceeded", path="/calendar/v3")``."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        self.fail_next(status, lambda: GoogleError(status, reason, headers=headers).answer(), path=path, count=count)

    def token_endpoint_error_next(self, status: int, count: int = 1, error: str | None = None) -> None:
        """The next ``count`` requests to ``/token`` fail with ``status``: the token endpoint's JSON
        with ``error`` given or for a 4xx; else an HTML page, as Google's front ends send when the
        service behind them is down."""

        def answer() -> web.Response:
            if error is not None or status < 500:
                code = error or TOKEN_ERRORS_BY_STATUS.get(status, "invalid_request")
                return web.json_response({"error": code, "error_description": phrase(status)}, status=status)
            page = (f"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error {status} ({phrase(status)})!!1</title>"
                    f"<p><b>{status}.</b> That's an error.<p>The service is currently unavailable. Please try again "
                    "later. That's all we know.</html>")
            return web.Response(status=status, text=page, content_type="text/html")

        self.fail_next(status, answer, path=self.paths["token"], count=count)

    # ------------------------------------------------------------------ the base's hooks: Google's answers

    def fault_answer(self, status: int, body: Any) -> web.Response:
        """A callable body builds the answer; no body at all is Google's error of that status."""
        if callable(body):
            return body()
        if body is None:
            reason = DEFAULT_REASONS.get(status, "badRequest" if status < 500 else "backendError")
            return GoogleError(status, reason).answer()
        return super().fault_answer(status, body)

    def rate_limit_answer(self, retry_after: int) -> web.Response:
        return GoogleError(429, "rateLimitExceeded", headers={"Retry-After": str(retry_after)}).answer()

    def authorize_problem(self, params: dict[str, str]) -> str | None:
        redirect_uri, challenge, method = (params.get(k, "") for k in ("redirect_uri", "code_challenge", "code_challenge_method"))
        scopes = self._widen(params.get("scope", ""))
        bad = [s for s in scopes if s != "openid" and not s.startswith(SCOPE_PREFIX)]
        for failed, problem in (
            (params.get("client_id") != self.client_id, "invalid_client: The OAuth client was not found."),
            (not redirect_uri, "redirect_uri_mismatch: Missing required parameter: redirect_uri"),
            (self.allowed_redirect_uris is not None and redirect_uri not in self.allowed_redirect_uris,
             f"redirect_uri_mismatch: The redirect URI in the request, {redirect_uri}, does not match the ones "
             "authorized for the OAuth client."),
            (params.get("response_type") != "code", f"unsupported_response_type: Invalid response_type: {params.get('response_type', '')}"),
            (not scopes, "invalid_request: Missing required parameter: scope"),
            (bool(bad), f"invalid_scope: Some requested scopes were invalid. {{invalid={bad}}}"),
            (params.get("access_type", "online") not in ("online", "offline"), f"invalid_request: Invalid access_type: {params.get('access_type')}"),
            (bool(challenge) and method != "S256", f"invalid_request: Invalid code_challenge_method: {method or '(missing)'}; the fake accepts S256"),
            (bool(challenge) and not CODE_CHALLENGE_RE.match(challenge), "invalid_request: Invalid code_challenge."),
            (bool(method) and not challenge, "invalid_request: code_challenge_method was sent without code_challenge."),
        ):
            if failed:
                return problem
        return None

    def approve(self, params: dict[str, str]) -> str:
        scopes = self._widen(params["scope"])
        if params.get("include_granted_scopes", "").strip().lower() in ("1", "true", "yes"):
            scopes += [s for s in self.granted_scopes if s not in scopes]
        # A refresh token comes only with a consent that is new for this account+client or forced
        # with prompt=consent; asking again with access_type=offline alone is not enough.
        consent = not self.consented or "consent" in params.get("prompt", "").split()
        self.consented, self.granted_scopes = True, scopes + [s for s in self.granted_scopes if s not in scopes]
        code = "4/fake-" + random_text(TOKEN_CHARS, 70)
        due = consent and params.get("access_type") == "offline"
        self.codes[code] = Grant(params["redirect_uri"], " ".join(scopes), params.get("code_challenge") or None, self.clock(),
                                 extra={"refresh_due": due})
        self.issued.append(code)
        state = {"state": params["state"]} if params.get("state") else {}
        return _add_query(params["redirect_uri"], **state, code=code, scope=" ".join(scopes), authuser="0",
                          prompt="consent" if consent else "none")

    def deny(self, params: dict[str, str]) -> str:
        state = {"state": params["state"]} if params.get("state") else {}
        return _add_query(params["redirect_uri"], error="access_denied", **state)

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        # Google's shapes (the plugin declares them for masking), as long as Google's, and obviously fake.
        return "ya29.fake-" + random_text(TOKEN_CHARS, 117) if kind == "access" else "1//fake-" + random_text(TOKEN_CHARS, 95)

    def account_for(self, grant: Grant) -> dict[str, Any]:
        """What userinfo (and the id_token) tell about the account: only what the scopes allow."""
        scopes, account = grant.scope.split(), self.account
        keep = {"sub"} | ({"name", "given_name", "family_name", "picture"} if USERINFO_PROFILE in scopes else set())
        keep |= {"email", "email_verified"} if USERINFO_EMAIL in scopes else set()
        return {k: v for k, v in account.items() if k in keep and v != ""}

    def token_answer(self, access: FakeToken, refresh: FakeToken | None, scope: str) -> dict[str, Any]:
        form = self.current_call().form
        if form.get("grant_type") == "authorization_code":
            due = bool(self.codes[form["code"]].extra.get("refresh_due"))
        else:
            due, self.refresh_count = self.rotate_refresh, self.refresh_count + 1
        body: dict[str, Any] = {"access_token": access.value}
        if access.expires_at is not None:  # whole seconds, rounded up: a sub-second test lifetime stays above zero
            body["expires_in"] = max(0, math.ceil(access.expires_at - self.clock()))
        if refresh is not None and due:
            body["refresh_token"] = refresh.value
        elif refresh is not None and form.get("grant_type") == "authorization_code":  # minted by the base, never handed out
            self.issued.remove(self.tokens.pop(refresh.value).value)
        body.update(scope=scope, token_type="Bearer")
        if "openid" in scope.split():
            now = int(time.time())
            claims = {"iss": "https://accounts.google.com", "azp": self.client_id, "aud": self.client_id, "iat": now,
                      "exp": now + 3600, **access.account}
            # Unsigned on purpose: the signature part is empty, so nobody mistakes it for a real one.
            body["id_token"] = f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}."
        return body

    def token_error(self, code: str, status: int = 400, description: str | None = None) -> web.Response:
        described = {"invalid_grant": "Token has been expired or revoked.", "invalid_client": "The OAuth client was not found."}
        return self.json({"error": code, "error_description": description or described.get(code, "Bad Request")}, status)

    def require_token(self, request: web.Request) -> FakeToken:
        """The usable access token, else Google's 401: OAuth-shaped at userinfo, Calendar-shaped elsewhere."""
        try:
            return super().require_token(request)
        except web.HTTPUnauthorized:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            missing = scheme.lower() != "bearer" or not value.strip()
            if request.path != self.paths["userinfo"]:
                raise self._unauthenticated(missing) from None
            description = "Request is missing required authentication credential. " + AUTH_HELP if missing else "Invalid Credentials"
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "invalid_request", "error_description": description}),
                content_type="application/json",
                headers={"WWW-Authenticate": REALM if missing else f'{REALM}, error="invalid_token"'}) from None

    # ------------------------------------------------------------------ token and revoke rules

    @web.middleware
    async def _oauth_rules(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        """Google's token checks, in its order and wording, before the base's token endpoint
        issues (they refuse without spending the code); and Google's revocation instead of the
        base's RFC 7009 one (no client credentials needed, unknown tokens refused, every token ends)."""
        if request.path == self.paths["revoke"]:
            return self._revoke_grant()
        if request.path != self.paths["token"]:
            return await handler(request)
        form = self.current_call().form
        client_id, secret = _client_of(request, form)
        if client_id != self.client_id:
            return self.token_error("invalid_client", 401)
        if secret != self.client_secret:
            return self.token_error("invalid_client", 401, "Unauthorized")
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            problem = self._exchange_problem(form)
        elif grant_type == "refresh_token":
            problem = None if form.get("refresh_token") else ("invalid_request", "Missing required parameter: refresh_token")
        else:
            problem = ("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        return self.token_error(problem[0], 400, problem[1]) if problem else await handler(request)

    def _exchange_problem(self, form: dict[str, str]) -> tuple[str, str] | None:
        value, verifier = form.get("code", ""), form.get("code_verifier", "")
        grant = self.codes.get(value)
        if not value:
            return "invalid_request", "Missing required parameter: code"
        if grant is None:
            return "invalid_grant", "Malformed auth code."
        if grant.used or self.clock() - grant.issued_at > self.code_lifetime:
            return "invalid_grant", "Bad Request"
        if form.get("redirect_uri") != grant.redirect_uri:
            return "redirect_uri_mismatch", "Bad Request"
        if grant.challenge is None:
            return ("invalid_grant", "code_verifier or verifier is not needed.") if verifier else None
        digest = b64url(hashlib.sha256(verifier.encode()).digest())
        return None if verifier and hmac.compare_digest(digest, grant.challenge) else ("invalid_grant", "Invalid code verifier.")

    def _revoke_grant(self) -> web.Response:
        call = self.current_call()
        value = call.form.get("token") or call.query.get("token")
        if not value:
            return self.token_error("invalid_request")
        token = self.tokens.get(value)
        if token is None or not token.usable(self.clock()):
            return self.token_error("invalid_token", 400, "Token expired or revoked")
        self.revoke_all()  # revocation removes the app's access to the account: every token of this client dies
        return self.json({})

    # ------------------------------------------------------------------ state, for the sandbox

    def export_state(self) -> dict[str, Any]:
        """What the fake issued and holds, as JSON data; listings in progress are left out (they start again)."""
        return {**super().export_state(), "refresh_count": self.refresh_count, "consented": self.consented,
                "granted_scopes": self.granted_scopes, "calendars": self.calendars, "events": dict(self.events),
                "sync_tokens": {token: vars(base) for token, base in self.sync_tokens.items()},
                "sync_generation": self.sync_generation, "etag_counter": self.etag_counter}

    def import_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`export_state` gave; everything is read before anything changes."""
        sync_tokens = {token: SyncBase(**base) for token, base in state["sync_tokens"].items()}
        events, calendars = CalendarEvents(self.email, copy.deepcopy(state["events"])), copy.deepcopy(state["calendars"])
        counters = int(state["refresh_count"]), int(state["sync_generation"]), int(state["etag_counter"])
        super().import_state(state)
        self.sync_tokens, self.events, self.calendars, self.page_tokens = sync_tokens, events, calendars, {}
        self.consented, self.granted_scopes = bool(state["consented"]), list(state["granted_scopes"])
        self.refresh_count, self.sync_generation, self.etag_counter = counters

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _widen(raw: str) -> list[str]:
        scopes = list(dict.fromkeys(SCOPE_ALIASES.get(s, s) for s in raw.split()))
        if {USERINFO_EMAIL, USERINFO_PROFILE} & set(scopes) and "openid" not in scopes:
            scopes.append("openid")  # Google adds it whenever email or profile is granted
        return scopes

    def _default_calendars(self) -> list[dict[str, Any]]:
        def entry(cal_id: str, summary: str, role: str, color: tuple[str, str], **extra: Any) -> dict[str, Any]:
            return {"kind": "calendar#calendarListEntry", "etag": f'"{1_700_000_000_000_000 + len(cal_id)}"', "id": cal_id,
                    "summary": summary, "timeZone": self.time_zone, "colorId": color[0], "backgroundColor": color[1],
                    "foregroundColor": "#000000", "selected": True, "accessRole": role,
                    "defaultReminders": [{"method": "popup", "minutes": 10}] if role in ("owner", "writer") else [],
                    "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}, **extra}

        return [
            entry(self.email, self.email, "owner", ("14", "#9fe1e7"), primary=True,
                  notificationSettings={"notifications": [{"type": "eventCreation", "method": "email"}]}),
            entry("c_5f0e3a9d2b7c4e1f8a6d0b3c9e2f7a41@group.calendar.google.com", "Team", "writer", ("7", "#42d692"),
                  description="Shared team calendar"),
            entry("en.german#holiday@group.v.calendar.google.com", "Holidays in Germany", "reader", ("8", "#16a765"),
                  description="Holidays and Observances in Germany"),
        ]

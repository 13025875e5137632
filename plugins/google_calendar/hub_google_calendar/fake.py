"""A fake Google (OAuth 2.0 + Calendar API v3), served by aiohttp, for tests and a local sandbox.

One server stands in for every Google host the hub talks to; the paths keep the real prefixes, so
a client only swaps the scheme+host part of each base URL:

* ``accounts.google.com``: ``GET/POST /o/oauth2/v2/auth`` -- a small consent page whose
  "Allow"/"Deny" buttons send the browser back to ``redirect_uri`` with ``code``+``state``+``scope``
  or ``error=access_denied``+``state``. PKCE (S256 only) is remembered per code.
* ``oauth2.googleapis.com``: ``POST /token`` (authorization_code and refresh_token grants, client
  credentials by form fields or HTTP Basic) and ``POST /revoke``.
* ``openidconnect.googleapis.com``: ``GET /v1/userinfo``.
* ``www.googleapis.com``: ``/calendar/v3`` -- calendarList, events list/get/insert/patch/delete
  and freeBusy.

What it is faithful about (these are the things clients get wrong):

* Error shapes. The Calendar API answers ``{"error": {"code", "message", "errors": [{"domain",
  "reason", "message", ...}], "status"}}``; the token and revoke endpoints answer
  ``{"error": "...", "error_description": "..."}``; userinfo answers OAuth-style too. Clients should
  key on the HTTP status and ``reason``/``error``, never on message text.
* Refresh tokens are only handed out when they are due: ``access_type=offline`` AND either the first
  consent of this user for this client or ``prompt=consent``. A re-consent without
  ``prompt=consent`` yields no ``refresh_token``, as with Google.
* Access tokens really expire after ``access_token_lifetime`` seconds (401 ``authError``).
  Lowering the lifetime also cuts short tokens already issued; raising it never extends them.
* Sync tokens: ``nextSyncToken`` only on the last page; a request with ``syncToken`` returns what
  changed since (deleted events as ``status: "cancelled"``, reduced to ``kind``/``etag``/``id``/
  ``status`` as Google does); ``expire_sync_tokens()`` makes every existing token answer 410
  ``fullSyncRequired``. Tokens this instance never issued also answer 410, so a sandbox restart
  just forces a full sync.
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
  that off.

Deliberate simplifications:

* One client (``client_id``/``client_secret``), one Google account (``email``), three calendars:
  the primary one (id = the email; ``"primary"`` aliases it, also in ``events``), a writable
  "Team" calendar and a read-only holiday calendar whose id contains ``#`` (clients must
  URL-encode calendar ids). Redirect URIs are not registered: any is accepted unless
  ``allowed_redirect_uris`` is set. ``login_hint`` and the other ``prompt`` values are ignored.
* ``code_challenge_method`` must be ``S256`` when a challenge is sent (Google would also take
  ``plain``). A failed exchange (wrong ``redirect_uri`` or verifier) does not burn the code; a
  successful one does, and codes expire after ten minutes.
* ``/revoke`` with any live token ends the whole authorization of this client, as Google does:
  every access and refresh token issued so far is revoked and the consent is forgotten (the next
  consent hands out a refresh token again). ``revoke_refresh_tokens()`` kills only refresh
  tokens (access tokens live on until they expire) and also forgets the consent.
* ``include_granted_scopes=true`` adds earlier grants to the new one; ``email``/``profile`` are
  widened to their ``userinfo.*`` URLs and bring ``openid`` along, so the granted ``scope`` may
  differ from the asked one. ``id_token`` is JWT-shaped but unsigned (``alg: none``).
* userinfo returns ``email``/``email_verified`` only with the email scope and
  ``name``/``given_name``/``family_name``/``picture`` only with the profile scope; ``sub`` always.
* Recurring events are stored with their ``recurrence`` but never expanded; ``singleEvents`` only
  decides whether ``orderBy=startTime`` is allowed. No ``PUT``, ``move``, ``import``, ``watch``,
  ACLs or reminders logic. ``q`` is a case-insensitive substring match on summary, description,
  location and attendee/organizer emails and names.
* Changes are found by comparing each event with a snapshot taken when the listing that issued the
  sync token started, so events changed directly in ``fake.events`` (or via ``update_event`` /
  ``delete_event``) show up in incremental syncs too; an event removed from the dict outright
  comes back as a bare cancelled entry. A listing is frozen at its first page: later pages serve
  that result even if events change meanwhile (the changes show up in the next incremental sync).
  A page token belongs to one listing: the follow-up requests must name the same calendar and
  repeat the same ``syncToken`` (or none), else 400 ``invalid``.
* freeBusy ignores ``groupExpansionMax``/``calendarExpansionMax`` and skips events the account
  has declined; unknown calendars come back with ``errors: [{"domain": "global", "reason":
  "notFound"}]``.
* ``refresh_count`` counts successful refresh_token grants; ``FakeCall.at`` is
  ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import copy
import hashlib
import html
import json
import math
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

__all__ = ["FakeCall", "FakeGoogle", "GoogleError", "start_fake_google"]

CODE_LIFETIME = 600  # seconds; Google's authorization codes are short-lived too
CALENDAR_V3 = "/calendar/v3"

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
CALENDAR = SCOPE_PREFIX + "calendar"
CALENDAR_READONLY = SCOPE_PREFIX + "calendar.readonly"
CALENDAR_EVENTS = SCOPE_PREFIX + "calendar.events"
CALENDAR_EVENTS_READONLY = SCOPE_PREFIX + "calendar.events.readonly"
CALENDAR_FREEBUSY = SCOPE_PREFIX + "calendar.freebusy"
USERINFO_EMAIL = SCOPE_PREFIX + "userinfo.email"
USERINFO_PROFILE = SCOPE_PREFIX + "userinfo.profile"

# Google widens the short OpenID scope names to these URLs in what it grants.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

# Which scopes let a token call which kind of method (any one of the set suffices).
READ_CALENDAR_LIST = {CALENDAR, CALENDAR_READONLY, SCOPE_PREFIX + "calendar.calendarlist",
                      SCOPE_PREFIX + "calendar.calendarlist.readonly"}
READ_EVENTS = {CALENDAR, CALENDAR_READONLY, CALENDAR_EVENTS, CALENDAR_EVENTS_READONLY,
               SCOPE_PREFIX + "calendar.events.owned", SCOPE_PREFIX + "calendar.events.owned.readonly"}
WRITE_EVENTS = {CALENDAR, CALENDAR_EVENTS, SCOPE_PREFIX + "calendar.events.owned"}
QUERY_FREEBUSY = {CALENDAR, CALENDAR_READONLY, CALENDAR_FREEBUSY, SCOPE_PREFIX + "calendar.events.freebusy"}

SCOPE_DESCRIPTIONS = {
    "openid": "Associate you with your personal info on Google",
    USERINFO_EMAIL: "See your primary Google Account email address",
    USERINFO_PROFILE: "See your personal info, including any personal info you've made publicly available",
    CALENDAR: "See, edit, share, and permanently delete all the calendars you can access using Google Calendar",
    CALENDAR_READONLY: "See and download any calendar you can access using your Google Calendar",
    CALENDAR_EVENTS: "View and edit events on all your calendars",
    CALENDAR_EVENTS_READONLY: "View events on all your calendars",
    CALENDAR_FREEBUSY: "See the availability on Google Calendars you have access to",
}

ACCESS_ROLES = ("freeBusyReader", "reader", "writer", "owner")

# Parameters a syncToken request may not carry (showDeleted=false is checked separately).
SYNC_INCOMPATIBLE = ("timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID",
                     "privateExtendedProperty", "sharedExtendedProperty")

# Fields the server owns: ignored in insert/patch bodies (seed helpers may set them).
READ_ONLY_FIELDS = {"kind", "etag", "htmlLink", "created", "updated", "creator", "organizer",
                    "iCalUID", "sequence", "recurringEventId"}

AUTH_HELP = ("Expected OAuth 2 access token, login cookie or other valid authentication credential. "
             "See https://developers.google.com/identity/sign-in/web/devconsole-project.")

# Default errors[].message per reason, as Google words them.
REASON_MESSAGES = {
    "authError": "Invalid Credentials",
    "required": "Login Required.",
    "badRequest": "Bad Request",
    "invalid": "Invalid Value",
    "parseError": "Parse Error",
    "timeRangeEmpty": "The specified time range is empty.",
    "forbidden": "Forbidden",
    "insufficientPermissions": "Insufficient Permission",
    "requiredAccessLevel": "You need to have writer access to this calendar.",
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.",
    "dailyLimitExceeded": "Daily Limit Exceeded",
    "notFound": "Not Found",
    "duplicate": "The requested identifier already exists.",
    "conflict": "Conflict",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
    "deleted": "Resource has been deleted",
    "backendError": "Backend Error",
    "internalError": "Internal Error",
}
REASON_DOMAINS = {
    "rateLimitExceeded": "usageLimits",
    "userRateLimitExceeded": "usageLimits",
    "quotaExceeded": "usageLimits",
    "dailyLimitExceeded": "usageLimits",
    "timeRangeEmpty": "calendar",
    "requiredAccessLevel": "calendar",
}
# Canonical gRPC status names Google puts next to the HTTP code; 410 has none, so it is omitted.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# error code the token endpoint uses for a faked 4xx when the test does not name one
TOKEN_ERRORS_BY_STATUS = {400: "invalid_request", 401: "invalid_client", 403: "access_denied",
                          429: "rate_limit_exceeded"}

EVENT_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32hex, as Google requires for ids
EVENT_ID_RE = re.compile(r"^[0-9a-v]{5,1024}$")
CODE_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass
class FakeCall:
    """One HTTP request as the fake received it."""

    method: str
    path: str
    headers: dict
    query: dict
    form: dict
    json: Any = None
    at: float = 0.0  # time.monotonic() on arrival


# The request being answered plus whether its JSON body failed to parse. A context variable
# rather than request["..."], which newer aiohttp versions warn about.
_CURRENT: contextvars.ContextVar[tuple[FakeCall, bool]] = contextvars.ContextVar("fake_google_call")


class GoogleError(Exception):
    """A Calendar-API-shaped error; raised inside handlers, turned into a JSON response."""

    def __init__(self, status: int, reason: str, message: str | None = None, *, domain: str | None = None,
                 top_message: str | None = None, location: str | None = None,
                 location_type: str | None = None, headers: dict | None = None) -> None:
        self.status = status
        self.reason = reason
        self.message = message or REASON_MESSAGES.get(reason) or _phrase(status)
        self.domain = domain or REASON_DOMAINS.get(reason, "global")
        self.top_message = top_message or self.message
        self.location = location
        self.location_type = location_type
        self.headers = headers
        super().__init__(f"{status} {reason}: {self.message}")

    def body(self) -> dict:
        detail: dict = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location:
            detail["location"] = self.location
            detail["locationType"] = self.location_type or "parameter"
        error: dict = {"code": self.status, "message": self.top_message, "errors": [detail]}
        if self.status in STATUS_NAMES:
            error["status"] = STATUS_NAMES[self.status]
        return {"error": error}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


class OAuthError(Exception):
    """An OAuth-endpoint error: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str, headers: dict | None = None) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "error_description": self.description},
                                 status=self.status, headers=self.headers)


class _ErrorPage(Exception):
    """An error on the browser side of OAuth: an HTML page, as accounts.google.com shows."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        e = html.escape
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Error {self.status}: {e(self.error)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f8f9fa; margin: 0; }}
main {{ max-width: 28rem; margin: 4rem auto; background: #fff; border: 1px solid #dadce0;
        border-radius: 8px; padding: 2rem; }}
h1 {{ font-size: 1.3rem; color: #d93025; margin-top: 0; }}
</style></head>
<body><main>
<h1>Access blocked: this app's request is invalid</h1>
<p>Error {self.status}: <code id="error">{e(self.error)}</code></p>
<p id="error-description">{e(self.description)}</p>
</main></body></html>
"""
        return web.Response(status=self.status, text=page, content_type="text/html")


@dataclass
class _Code:
    redirect_uri: str
    scopes: list[str]
    challenge: str | None
    offline: bool
    prompt_consent: bool
    refresh_due: bool
    issued_at: float
    used: bool = False


@dataclass
class _Grant:
    """What one code exchange granted; the access tokens refreshed from it keep its scopes."""

    scopes: list[str]


@dataclass
class _AccessToken:
    grant: _Grant
    issued_at: float
    lifetime: float
    expired: bool = False


@dataclass
class _RefreshToken:
    grant: _Grant


@dataclass
class _Fault:
    prefix: str
    remaining: int
    answer: Callable[[], web.Response]
    exact: bool = False

    def matches(self, path: str) -> bool:
        return path == self.prefix if self.exact else path.startswith(self.prefix)


@dataclass
class _Listing:
    """One events listing, frozen at its first page, followed through its page tokens."""

    calendar_id: str
    sync_token: str | None  # the syncToken this listing answers, None for a full listing
    items: list[dict]
    snapshot: dict[str, str]  # event id -> fingerprint when the listing started
    time_zone: str


@dataclass
class _SyncBase:
    calendar_id: str
    snapshot: dict[str, str]
    generation: int


class _CalendarEvents(dict):
    """``events`` with ``"primary"`` as an alias of the primary calendar's id."""

    def __init__(self, primary_id: str) -> None:
        super().__init__()
        self.primary_id = primary_id

    def _key(self, key: Any) -> Any:
        return self.primary_id if key == "primary" else key

    def __missing__(self, key: Any) -> dict:
        if key == "primary":
            return self[self.primary_id]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self._key(key), default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return super().setdefault(self._key(key), default)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _s256(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode()).digest())


def _add_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with its mandatory offset, as a UTC datetime; None when it is not one."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: an instant before year 1 in UTC
        return None


def _format_dt(instant: datetime, zone: Any) -> str:
    """RFC 3339 in ``zone``: ``2026-03-29T10:00:00+02:00``, or ``…Z`` when the offset is zero."""
    text = instant.astimezone(zone).isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _format_utc_millis(instant: datetime) -> str:
    """``2026-03-29T08:00:00.000Z``: how Google writes ``created``/``updated`` and freeBusy bounds."""
    instant = instant.astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def _midnight(day: date, zone: Any) -> datetime:
    # Built in wall-clock time and converted at once: arithmetic on aware datetimes sharing a
    # ZoneInfo is wall-clock arithmetic and goes wrong across DST changes.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _fingerprint(event: dict) -> str:
    return hashlib.sha1(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


def _merge_patch(target: dict, patch: dict) -> None:
    """Patch semantics: objects merge field by field, arrays and scalars replace, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _display_name(email: str) -> tuple[str, str, str]:
    parts = [p.capitalize() for p in re.split(r"[._+-]+", email.split("@")[0]) if p]
    given = parts[0] if parts else email
    family = " ".join(parts[1:])
    return (f"{given} {family}".strip(), given, family)


class FakeGoogle:
    """State and routes of the fake; see the module docstring for what it imitates."""

    def __init__(
        self,
        *,
        client_id: str = "fake-google-client.apps.googleusercontent.com",
        client_secret: str = "fake-google-secret",
        access_token_lifetime: float = 3599,
        rotate_refresh_tokens: bool = False,
        email: str = "ada@example.com",
        time_zone: str = "Europe/Berlin",
    ) -> None:
        if _zone(time_zone) is None:
            raise ValueError(f"unknown time zone {time_zone!r}")
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_lifetime = access_token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.email = email
        self.time_zone = time_zone
        self.name, self.given_name, self.family_name = _display_name(email)
        # Google's subject ids are ~21 digits and stable per account.
        self.sub = "1" + str(int(hashlib.sha256(email.encode()).hexdigest(), 16))[:20]

        self.allowed_redirect_uris: list[str] | None = None  # None: accept any redirect_uri
        self.check_scopes: bool = True
        self.short_pages: bool = True

        self.calls: list[FakeCall] = []
        self.issued_tokens: list[str] = []
        self.revoked_tokens: set[str] = set()
        self.refresh_count: int = 0
        self.delay: float = 0.0

        self.calendars: list[dict] = self._default_calendars()
        self.events: dict[str, dict[str, dict]] = _CalendarEvents(email)
        for calendar in self.calendars:
            self.events[calendar["id"]] = {}

        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._consented = False  # has this account ever approved this client (since the last revoke)?
        self._granted_scopes: list[str] = []
        self._faults: list[_Fault] = []
        self._page_tokens: dict[str, tuple[_Listing, int]] = {}
        self._sync_tokens: dict[str, _SyncBase] = {}
        self._sync_generation = 0
        self._etag_counter = 0

        self.app = web.Application(middlewares=[self._middleware()])
        router = self.app.router
        router.add_get("/o/oauth2/v2/auth", self._authorize_page)
        router.add_post("/o/oauth2/v2/auth", self._authorize_decision)
        router.add_post("/token", self._token)
        router.add_post("/revoke", self._revoke)
        router.add_get("/v1/userinfo", self._userinfo)
        router.add_post("/v1/userinfo", self._userinfo)
        router.add_get(CALENDAR_V3 + "/users/me/calendarList", self._calendar_list)
        router.add_get(CALENDAR_V3 + "/users/me/calendarList/{calendarId}", self._calendar_list_entry)
        router.add_get(CALENDAR_V3 + "/calendars/{calendarId}", self._calendar_get)
        router.add_get(CALENDAR_V3 + "/calendars/{calendarId}/events", self._events_list)
        router.add_post(CALENDAR_V3 + "/calendars/{calendarId}/events", self._events_insert)
        router.add_get(CALENDAR_V3 + "/calendars/{calendarId}/events/{eventId}", self._events_get)
        router.add_patch(CALENDAR_V3 + "/calendars/{calendarId}/events/{eventId}", self._events_patch)
        router.add_delete(CALENDAR_V3 + "/calendars/{calendarId}/events/{eventId}", self._events_delete)
        router.add_post(CALENDAR_V3 + "/freeBusy", self._freebusy)

    # ------------------------------------------------------------------ inspection & seeding

    def hub_settings(self, base_url: str) -> dict:
        """The hub's ``providers.google_calendar`` section that points at this fake, served at ``base_url``."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "urls": {
                "authorize": f"{base_url}/o/oauth2/v2/auth",
                "token": f"{base_url}/token",
                "revoke": f"{base_url}/revoke",
                "userinfo": f"{base_url}/v1/userinfo",
                "api": f"{base_url}/calendar/v3",
            },
        }

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[FakeCall]:
        """Recorded calls whose path starts with ``path_prefix`` (and, if given, of that HTTP method)."""
        wanted = method.upper() if method else None
        return [c for c in self.calls if c.path.startswith(path_prefix) and (wanted is None or c.method == wanted)]

    def add_event(self, calendar_id: str = "primary", **fields: Any) -> dict:
        """Seed an event, as if made elsewhere; returns the stored event (the live dict).

        ``start``/``end`` may be plain strings: ``"2026-03-29"`` (all-day) or an RFC 3339
        ``dateTime`` (without offset it is read in the calendar's zone). Without ``start`` the event
        is tomorrow 10:00-11:00 in the calendar's zone. Server-owned fields (``id``, ``status``,
        ``created``, ``updated``, ``organizer``...) may be given to override the defaults.
        """
        calendar = self._seed_calendar(calendar_id)
        zone_name = calendar["timeZone"]
        for key in ("start", "end"):
            if isinstance(fields.get(key), str):
                fields[key] = self._time_object(fields[key], zone_name)
        if "start" not in fields:
            zone = ZoneInfo(zone_name)
            tomorrow = datetime.now(zone).date() + timedelta(days=1)
            start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 10, tzinfo=zone)
            fields["start"] = {"dateTime": _format_dt(start, zone), "timeZone": zone_name}
            fields.setdefault("end", {"dateTime": _format_dt(start.astimezone(UTC) + timedelta(hours=1), zone),
                                      "timeZone": zone_name})
        try:
            return self._create_event(calendar, fields, seeding=True)
        except GoogleError as err:
            raise ValueError(err.message) from None

    def add_busy(self, start: str, end: str, calendar_id: str = "primary") -> None:
        """Seed a busy block for freeBusy: an opaque event titled "Busy"."""
        self.add_event(calendar_id, summary="Busy", start=start, end=end)

    def update_event(self, calendar_id: str, event_id: str, **fields: Any) -> dict:
        """Change a stored event as another client would (patch semantics, new ``updated``/``etag``)."""
        calendar = self._seed_calendar(calendar_id)
        event = self._stored_event(calendar, event_id, allow_cancelled=True)
        try:
            return self._apply_patch(calendar, event, fields, seeding=True)
        except GoogleError as err:
            raise ValueError(err.message) from None

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        """Cancel a stored event as another client would; it stays behind with status "cancelled"."""
        calendar = self._seed_calendar(calendar_id)
        event = self._stored_event(calendar, event_id, allow_cancelled=True)
        event["status"] = "cancelled"
        self._touch(event)

    # ------------------------------------------------------------------ fault switches

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far answers ``invalid_grant`` from now on."""
        self.revoked_tokens.update(self._refresh)
        self._consented = False
        self._granted_scopes = []

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 401 ``authError`` from now on."""
        for record in self._access.values():
            record.expired = True

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 ``fullSyncRequired`` from now on."""
        self._sync_generation += 1

    def fail_next(self, path_prefix: str, status: int, reason: str, count: int = 1,
                  retry_after: int | None = None) -> None:
        """The next ``count`` requests whose path starts with ``path_prefix`` get a Google-shaped error.

        E.g. ``fail_next("/calendar/v3", 403, "rateLimitExceeded")`` or
        ``fail_next("/calendar/v3/freeBusy", 429, "rateLimitExceeded", retry_after=2)``.
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None

        def answer() -> web.Response:
            return GoogleError(status, reason, headers=headers).response()

        self._faults.append(_Fault(path_prefix, count, answer))

    def token_endpoint_error_next(self, status: int, count: int = 1, error: str | None = None) -> None:
        """The next ``count`` requests to ``/token`` fail with ``status``.

        With ``error`` given, or for a 4xx, the body is the token endpoint's JSON
        (``{"error", "error_description"}``); a 5xx without ``error`` gets an HTML page, as
        Google's front ends send when the service behind them is down.
        """

        def answer() -> web.Response:
            if error is not None or status < 500:
                code = error or TOKEN_ERRORS_BY_STATUS.get(status, "invalid_request")
                return web.json_response({"error": code, "error_description": _phrase(status)}, status=status)
            page = (f"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error {status} "
                    f"({_phrase(status)})!!1</title><p><b>{status}.</b> That's an error.<p>"
                    "The service is currently unavailable. Please try again later. That's all we know.</html>")
            return web.Response(status=status, text=page, content_type="text/html")

        self._faults.append(_Fault("/token", count, answer, exact=True))

    # ------------------------------------------------------------------ keeping state across restarts

    def export_state(self) -> dict:
        """What the fake issued and holds, as JSON-ready data for :meth:`import_state` (the sandbox
        saves it so that a restarted fake still honours the tokens it issued). Times are wall
        clock here: the fake's own clock is monotonic and means nothing in another process.
        Page tokens are left out: a listing in progress starts again, as after Google's expiry."""
        grants: dict[int, _Grant] = {}
        for record in [*self._access.values(), *self._refresh.values()]:
            grants.setdefault(id(record.grant), record.grant)
        index = {key: i for i, key in enumerate(grants)}
        to_wall = time.time() - self._now()
        return {
            "grants": [g.scopes for g in grants.values()],
            "access": {token: {"grant": index[id(r.grant)], "issued_at": r.issued_at + to_wall, "lifetime": r.lifetime,
                               "expired": r.expired} for token, r in self._access.items()},
            "refresh": {token: index[id(r.grant)] for token, r in self._refresh.items()},
            "codes": {code: {**vars(c), "issued_at": c.issued_at + to_wall} for code, c in self._codes.items()},
            "issued_tokens": self.issued_tokens,
            "revoked_tokens": sorted(self.revoked_tokens),
            "refresh_count": self.refresh_count,
            "consented": self._consented,
            "granted_scopes": self._granted_scopes,
            "calendars": self.calendars,
            "events": dict(self.events),
            "sync_tokens": {token: vars(base) for token, base in self._sync_tokens.items()},
            "sync_generation": self._sync_generation,
            "etag_counter": self._etag_counter,
        }

    def import_state(self, state: dict) -> None:
        """Take back what :meth:`export_state` gave; everything is read before anything changes."""
        to_monotonic = self._now() - time.time()
        grants = [_Grant(list(scopes)) for scopes in state["grants"]]
        access = {token: _AccessToken(grants[r["grant"]], r["issued_at"] + to_monotonic, float(r["lifetime"]), bool(r["expired"]))
                  for token, r in state["access"].items()}
        refresh = {token: _RefreshToken(grants[i]) for token, i in state["refresh"].items()}
        codes = {code: _Code(**{**c, "issued_at": c["issued_at"] + to_monotonic}) for code, c in state["codes"].items()}
        events = _CalendarEvents(self.email)
        events.update(copy.deepcopy(state["events"]))
        sync_tokens = {token: _SyncBase(**base) for token, base in state["sync_tokens"].items()}
        calendars, granted = copy.deepcopy(state["calendars"]), list(state["granted_scopes"])
        counters = int(state["refresh_count"]), int(state["sync_generation"]), int(state["etag_counter"])
        self._access, self._refresh, self._codes, self._sync_tokens = access, refresh, codes, sync_tokens
        self.issued_tokens, self.revoked_tokens = list(state["issued_tokens"]), set(state["revoked_tokens"])
        self.calendars, self.events, self._consented, self._granted_scopes = calendars, events, bool(state["consented"]), granted
        self.refresh_count, self._sync_generation, self._etag_counter = counters
        self._page_tokens = {}

    # ------------------------------------------------------------------ plumbing

    def _middleware(self) -> Any:
        # One middleware records every request (even those ending in a fault or a 404), applies
        # the delay and the fault switches, and turns the fake's exceptions into responses.
        @web.middleware
        async def handle(request: web.Request, handler: Any) -> web.StreamResponse:
            form: dict = {}
            body_json: Any = None
            invalid_json = False
            if request.method in ("POST", "PATCH", "PUT"):
                if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                elif request.content_type == "application/json":
                    raw = await request.text()
                    try:
                        body_json = json.loads(raw) if raw.strip() else None
                    except ValueError:
                        invalid_json = True
            call = FakeCall(method=request.method, path=request.path, headers=dict(request.headers),
                            query=dict(request.query), form=form, json=body_json, at=time.monotonic())
            self.calls.append(call)
            if self.delay:
                await asyncio.sleep(self.delay)
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(request.path):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault.answer()
            reset = _CURRENT.set((call, invalid_json))
            try:
                return await handler(request)
            except (GoogleError, OAuthError, _ErrorPage) as err:
                return err.response()
            finally:
                _CURRENT.reset(reset)

        return handle

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _default_calendars(self) -> list[dict]:
        def entry(cal_id: str, summary: str, role: str, color: tuple[str, str], **extra: Any) -> dict:
            body = {
                "kind": "calendar#calendarListEntry",
                "etag": f'"{1_700_000_000_000_000 + len(cal_id)}"',
                "id": cal_id,
                "summary": summary,
                "timeZone": self.time_zone,
                "colorId": color[0],
                "backgroundColor": color[1],
                "foregroundColor": "#000000",
                "selected": True,
                "accessRole": role,
                "defaultReminders": [{"method": "popup", "minutes": 10}] if role in ("owner", "writer") else [],
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            }
            body.update(extra)
            return body

        return [
            entry(self.email, self.email, "owner", ("14", "#9fe1e7"), primary=True,
                  notificationSettings={"notifications": [{"type": "eventCreation", "method": "email"}]}),
            entry("c_5f0e3a9d2b7c4e1f8a6d0b3c9e2f7a41@group.calendar.google.com", "Team", "writer",
                  ("7", "#42d692"), description="Shared team calendar"),
            entry("en.german#holiday@group.v.calendar.google.com", "Holidays in Germany", "reader",
                  ("8", "#16a765"), description="Holidays and Observances in Germany"),
        ]

    def _find_calendar(self, calendar_id: str) -> dict | None:
        wanted = self.email if calendar_id == "primary" else calendar_id
        for calendar in self.calendars:
            if calendar["id"] == wanted:
                self.events.setdefault(calendar["id"], {})  # calendars appended by a test
                return calendar
        return None

    def _calendar(self, calendar_id: str) -> dict:
        calendar = self._find_calendar(calendar_id)
        if calendar is None:
            raise GoogleError(404, "notFound")
        return calendar

    def _seed_calendar(self, calendar_id: str) -> dict:
        calendar = self._find_calendar(calendar_id)
        if calendar is None:
            raise KeyError(f"no calendar {calendar_id!r}")
        return calendar

    def _next_etag(self) -> str:
        self._etag_counter += 1
        return f'"{int(time.time() * 1_000_000) * 1000 + self._etag_counter % 1000}"'

    def _touch(self, event: dict) -> None:
        event["updated"] = _format_utc_millis(datetime.now(UTC))
        event["etag"] = self._next_etag()

    @staticmethod
    def _json_body() -> dict:
        call, invalid_json = _CURRENT.get()
        if invalid_json:
            raise GoogleError(400, "parseError")
        if call.json is None:
            return {}
        if not isinstance(call.json, dict):
            raise GoogleError(400, "badRequest")
        return call.json

    # ------------------------------------------------------------------ OAuth: browser side

    def _normalize_scopes(self, raw: str) -> list[str]:
        scopes: list[str] = []
        for scope in raw.split():
            scope = SCOPE_ALIASES.get(scope, scope)
            if scope not in scopes:
                scopes.append(scope)
        if (USERINFO_EMAIL in scopes or USERINFO_PROFILE in scopes) and "openid" not in scopes:
            scopes.append("openid")  # Google adds it whenever email or profile is granted
        return scopes

    def _check_authorize(self, params: Any) -> list[str]:
        """Validate authorize parameters (query or re-posted form); return the asked scopes."""
        if params.get("client_id", "") != self.client_id:
            raise _ErrorPage(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise _ErrorPage(400, "redirect_uri_mismatch", "Missing required parameter: redirect_uri")
        if self.allowed_redirect_uris is not None and redirect_uri not in self.allowed_redirect_uris:
            raise _ErrorPage(400, "redirect_uri_mismatch",
                             f"The redirect URI in the request, {redirect_uri}, does not match the ones "
                             "authorized for the OAuth client.")
        if params.get("response_type", "") != "code":
            raise _ErrorPage(400, "unsupported_response_type",
                             f"Invalid response_type: {params.get('response_type', '')}")
        if not params.get("scope", "").strip():
            raise _ErrorPage(400, "invalid_request", "Missing required parameter: scope")
        scopes = self._normalize_scopes(params["scope"])
        bad = [s for s in scopes if s != "openid" and not s.startswith(SCOPE_PREFIX)]
        if bad:
            raise _ErrorPage(400, "invalid_scope", f"Some requested scopes were invalid. {{invalid={bad}}}")
        if params.get("access_type", "online") not in ("online", "offline"):
            raise _ErrorPage(400, "invalid_request", f"Invalid access_type: {params.get('access_type')}")
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "")
        if challenge:
            if method != "S256":
                raise _ErrorPage(400, "invalid_request",
                                 f"Invalid code_challenge_method: {method or '(missing)'}; the fake accepts S256")
            if not CODE_CHALLENGE_RE.match(challenge):
                raise _ErrorPage(400, "invalid_request", "Invalid code_challenge.")
        elif method:
            raise _ErrorPage(400, "invalid_request", "code_challenge_method was sent without code_challenge.")
        return scopes

    async def _authorize_page(self, request: web.Request) -> web.Response:
        params = request.query
        scopes = self._check_authorize(params)
        e = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{e(params.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "response_type", "scope", "access_type", "prompt",
                         "include_granted_scopes", "state", "login_hint", "code_challenge",
                         "code_challenge_method")
        )
        scope_items = "".join(
            f"<li>{e(SCOPE_DESCRIPTIONS.get(s, s))}<br><code>{e(s)}</code></li>" for s in scopes
        )
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Sign in - Google Accounts (fake)</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f0f4f9; margin: 0; color: #1f1f1f; }}
main {{ max-width: 32rem; margin: 4rem auto; background: #fff; border-radius: 28px; padding: 2.5rem; }}
h1 {{ font-size: 1.4rem; font-weight: 400; margin-top: 0; }}
.account {{ display: inline-block; border: 1px solid #747775; border-radius: 1rem; padding: .2rem .8rem; }}
ul {{ padding-left: 1.2rem; }} li {{ margin: .6rem 0; }} code {{ font-size: .75rem; color: #444746; }}
.buttons {{ display: flex; justify-content: flex-end; gap: 1rem; margin-top: 2rem; }}
button {{ padding: .6rem 1.5rem; font-size: .95rem; border-radius: 20px; cursor: pointer; }}
#allow {{ background: #0b57d0; color: #fff; border: none; }}
#deny {{ background: #fff; color: #0b57d0; border: 1px solid #747775; }}
</style></head>
<body><main>
<h1><code id="client-id">{e(params["client_id"])}</code> wants access to your Google Account</h1>
<p><span class="account" id="account">{e(self.email)}</span></p>
<p>This will allow the app to:</p>
<ul id="scopes">{scope_items}</ul>
<form method="post" action="/o/oauth2/v2/auth">{hidden}
<div class="buttons">
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
</div></form>
</main></body></html>
"""
        return web.Response(text=page, content_type="text/html")

    async def _authorize_decision(self, request: web.Request) -> web.Response:
        form = _CURRENT.get()[0].form
        asked = self._check_authorize(form)
        extra = {"state": form["state"]} if form.get("state") else {}
        if form.get("decision") != "allow":
            target = _add_query(form["redirect_uri"], error="access_denied", **extra)
            return web.Response(status=302, headers={"Location": target})

        scopes = list(asked)
        if _truthy(form.get("include_granted_scopes", "")):
            scopes += [s for s in self._granted_scopes if s not in scopes]
        prompts = form.get("prompt", "").split()
        offline = form.get("access_type", "online") == "offline"
        # Google hands out a refresh token only on a consent that is new for this account+client or
        # forced with prompt=consent; asking again with access_type=offline alone is not enough.
        first_consent = not self._consented
        refresh_due = offline and (first_consent or "consent" in prompts)
        self._consented = True
        self._granted_scopes = scopes + [s for s in self._granted_scopes if s not in scopes]

        code = f"4/0A{_random(string.ascii_letters + string.digits + '-_', 70)}"
        self._codes[code] = _Code(
            redirect_uri=form["redirect_uri"],
            scopes=scopes,
            challenge=form.get("code_challenge") or None,
            offline=offline,
            prompt_consent="consent" in prompts,
            refresh_due=refresh_due,
            issued_at=self._now(),
        )
        self.issued_tokens.append(code)
        shown = "consent" if (first_consent or "consent" in prompts) else "none"
        target = _add_query(form["redirect_uri"], **extra, code=code, scope=" ".join(scopes),
                            authuser="0", prompt=shown)
        return web.Response(status=302, headers={"Location": target})

    # ------------------------------------------------------------------ OAuth: token endpoint

    @staticmethod
    def _client_credentials(request: web.Request, params: dict) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, client_secret = decoded.partition(":")
            return client_id, client_secret
        return str(params.get("client_id", "")), str(params.get("client_secret", ""))

    async def _token(self, request: web.Request) -> web.Response:
        call = _CURRENT.get()[0]
        params = {**call.form, **(call.json if isinstance(call.json, dict) else {})}
        client_id, client_secret = self._client_credentials(request, params)
        if client_id != self.client_id:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if client_secret != self.client_secret:
            raise OAuthError(401, "invalid_client", "Unauthorized")
        grant_type = str(params.get("grant_type", ""))
        if grant_type == "authorization_code":
            return web.json_response(self._exchange_code(params))
        if grant_type == "refresh_token":
            return web.json_response(self._exchange_refresh_token(params))
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _exchange_code(self, params: dict) -> dict:
        value = str(params.get("code", ""))
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        code = self._codes.get(value)
        if code is None:
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        if code.used or self._now() - code.issued_at > CODE_LIFETIME:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        if str(params.get("redirect_uri", "")) != code.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        verifier = str(params.get("code_verifier", ""))
        if code.challenge is not None:
            if not verifier or not secrets.compare_digest(_s256(verifier), code.challenge):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        elif verifier:
            raise OAuthError(400, "invalid_grant", "code_verifier or verifier is not needed.")
        code.used = True

        grant = _Grant(scopes=list(code.scopes))
        body: dict = {"access_token": self._mint_access(grant), "expires_in": self._expires_in()}
        if code.refresh_due:
            body["refresh_token"] = self._mint_refresh(grant)
        body.update({"scope": " ".join(grant.scopes), "token_type": "Bearer"})
        if "openid" in grant.scopes:
            body["id_token"] = self._id_token(grant)
        return body

    def _exchange_refresh_token(self, params: dict) -> dict:
        token = str(params.get("refresh_token", ""))
        if not token:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        record = self._refresh.get(token)
        if record is None or token in self.revoked_tokens:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        grant = record.grant
        body: dict = {"access_token": self._mint_access(grant), "expires_in": self._expires_in()}
        if self.rotate_refresh_tokens:
            body["refresh_token"] = self._mint_refresh(grant)
            self.revoked_tokens.add(token)
        body.update({"scope": " ".join(grant.scopes), "token_type": "Bearer"})
        if "openid" in grant.scopes:
            body["id_token"] = self._id_token(grant)
        self.refresh_count += 1
        return body

    def _expires_in(self) -> int:
        # Google reports whole seconds; rounding up keeps a sub-second test lifetime above zero.
        return max(0, math.ceil(self.access_token_lifetime))

    def _mint_access(self, grant: _Grant) -> str:
        token = "ya29.a0" + _random(string.ascii_letters + string.digits + "-_", 120)
        self._access[token] = _AccessToken(grant, self._now(), float(self.access_token_lifetime))
        self.issued_tokens.append(token)
        return token

    def _mint_refresh(self, grant: _Grant) -> str:
        token = "1//0" + _random(string.ascii_letters + string.digits + "-_", 99)
        self._refresh[token] = _RefreshToken(grant)
        self.issued_tokens.append(token)
        return token

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict = {"iss": "https://accounts.google.com", "azp": self.client_id, "aud": self.client_id,
                        "sub": self.sub, "iat": now, "exp": now + 3600}
        claims.update(self._identity(grant.scopes, with_sub=False))
        header = {"alg": "none", "typ": "JWT"}
        # Unsigned on purpose: the signature part is empty, so nobody mistakes it for a real one.
        return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}."

    def _identity(self, scopes: list[str], with_sub: bool = True) -> dict:
        body: dict = {"sub": self.sub} if with_sub else {}
        if USERINFO_PROFILE in scopes:
            body.update({"name": self.name, "given_name": self.given_name})
            if self.family_name:
                body["family_name"] = self.family_name
            body["picture"] = f"https://lh3.googleusercontent.com/a/fake-{self.sub}=s96-c"
        if USERINFO_EMAIL in scopes:
            body.update({"email": self.email, "email_verified": True})
        return body

    def _valid_access(self, token: str) -> _AccessToken | None:
        record = self._access.get(token)
        if record is None or record.expired or token in self.revoked_tokens:
            return None
        lifetime = min(record.lifetime, float(self.access_token_lifetime))
        if self._now() >= record.issued_at + lifetime:
            return None
        return record

    async def _revoke(self, request: web.Request) -> web.Response:
        call = _CURRENT.get()[0]
        token = call.form.get("token") or call.query.get("token") or ""
        if not token:
            raise OAuthError(400, "invalid_request", "Bad Request")
        live = self._valid_access(token) is not None or (
            token in self._refresh and token not in self.revoked_tokens)
        if not live:
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        # Revocation removes the app's access to the account: every token of this client dies.
        self.revoked_tokens.update(self._access)
        self.revoked_tokens.update(self._refresh)
        self._consented = False
        self._granted_scopes = []
        return web.json_response({})

    # ------------------------------------------------------------------ userinfo

    @staticmethod
    def _bearer(request: web.Request) -> str:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if not token:
            raise OAuthError(401, "invalid_request", "Request is missing required authentication credential. "
                             + AUTH_HELP, headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        record = self._valid_access(token)
        if record is None:
            raise OAuthError(401, "invalid_request", "Invalid Credentials",
                             headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                          'error="invalid_token"'})
        return web.json_response(self._identity(record.grant.scopes))

    # ------------------------------------------------------------------ Calendar: auth

    def _authenticate(self, request: web.Request, allowed_scopes: set[str]) -> _AccessToken:
        token = self._bearer(request)
        if not token:
            raise GoogleError(401, "required", top_message="Request is missing required authentication credential. "
                              + AUTH_HELP, location="Authorization", location_type="header",
                              headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        record = self._valid_access(token)
        if record is None:
            raise GoogleError(401, "authError", top_message="Request had invalid authentication credentials. "
                              + AUTH_HELP, location="Authorization", location_type="header",
                              headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                           'error="invalid_token"'})
        if self.check_scopes and not allowed_scopes & set(record.grant.scopes):
            raise GoogleError(403, "insufficientPermissions",
                              top_message="Request had insufficient authentication scopes.",
                              headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                                                           'error="insufficient_scope"'})
        return record

    @staticmethod
    def _require_writer(calendar: dict) -> None:
        if calendar["accessRole"] not in ("writer", "owner"):
            raise GoogleError(403, "requiredAccessLevel")

    # ------------------------------------------------------------------ Calendar: parameters

    @staticmethod
    def _page_size(query: Any, default: int, maximum: int) -> int:
        raw = query.get("maxResults")
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise GoogleError(400, "invalid", f"Invalid value '{raw}'. Values must be within the range: "
                              f"[1, {maximum}]", location="maxResults") from None
        if value < 1:
            raise GoogleError(400, "invalid", f"Invalid value '{raw}'. Values must be within the range: "
                              f"[1, {maximum}]", location="maxResults")
        return min(value, maximum)  # Google caps page sizes silently

    @staticmethod
    def _bool_param(query: Any, name: str) -> bool | None:
        raw = query.get(name)
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise GoogleError(400, "invalid", f"Invalid value for: {name}", location=name)
        return raw.lower() == "true"

    @staticmethod
    def _time_param(query: Any, name: str) -> datetime | None:
        raw = query.get(name)
        if raw is None:
            return None
        parsed = _parse_rfc3339(raw)
        if parsed is None:  # the offset is mandatory
            raise GoogleError(400, "badRequest")
        return parsed

    # ------------------------------------------------------------------ Calendar: calendarList

    async def _calendar_list(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST)
        query = request.query
        size = self._page_size(query, 100, 250)
        min_role = query.get("minAccessRole")
        if min_role is not None and min_role not in ACCESS_ROLES:
            raise GoogleError(400, "invalid", "Invalid value for: minAccessRole", location="minAccessRole")
        entries = [c for c in self.calendars
                   if min_role is None or ACCESS_ROLES.index(c["accessRole"]) >= ACCESS_ROLES.index(min_role)]
        offset = 0
        if query.get("pageToken"):
            offset = self._decode_offset(query["pageToken"], "calendarList")
        page = entries[offset:offset + size]
        body: dict = {"kind": "calendar#calendarList", "etag": f'"p3{len(self.calendars):02d}fake"',
                      "items": copy.deepcopy(page)}
        if offset + size < len(entries):
            body["nextPageToken"] = self._encode_offset(offset + size, "calendarList")
        else:
            # calendarList sync is not modelled: this token just lists everything again.
            body["nextSyncToken"] = _b64url(f"calendarList:{secrets.token_hex(8)}".encode())
        return web.json_response(body)

    async def _calendar_list_entry(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST)
        return web.json_response(copy.deepcopy(self._calendar(request.match_info["calendarId"])))

    async def _calendar_get(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST | READ_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        body = {"kind": "calendar#calendar", "etag": calendar["etag"], "id": calendar["id"],
                "summary": calendar["summary"], "timeZone": calendar["timeZone"]}
        if calendar.get("description"):
            body["description"] = calendar["description"]
        return web.json_response(body)

    @staticmethod
    def _encode_offset(offset: int, kind: str) -> str:
        return _b64url(f"{kind}:{offset}".encode())

    @staticmethod
    def _decode_offset(token: str, kind: str) -> int:
        try:
            marker = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            found_kind, _, offset = marker.partition(":")
            if found_kind == kind and offset.isdigit():
                return int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise GoogleError(400, "invalid", "Invalid page token value.", location="pageToken")

    # ------------------------------------------------------------------ Calendar: events

    def _events_of(self, calendar_id: str) -> dict[str, dict]:
        return self.events.setdefault(calendar_id, {})

    def _stored_event(self, calendar: dict, event_id: str, allow_cancelled: bool) -> dict:
        event = self._events_of(calendar["id"]).get(event_id)
        if event is None:
            raise GoogleError(404, "notFound")
        if not allow_cancelled and event.get("status") == "cancelled":
            raise GoogleError(410, "deleted")
        return event

    @staticmethod
    def _time_object(value: str, zone_name: str) -> dict:
        """Seed shorthand: ``"2026-03-29"`` or a dateTime string -> an event time object."""
        if len(value) == 10:
            return {"date": value}
        if _parse_rfc3339(value) is not None:
            return {"dateTime": value}
        return {"dateTime": value, "timeZone": zone_name}

    @staticmethod
    def _instant(when: dict, calendar_zone: Any) -> datetime | None:
        """The UTC instant a stored start/end object stands for."""
        if not isinstance(when, dict):
            return None
        if when.get("dateTime"):
            try:
                parsed = datetime.fromisoformat(when["dateTime"])
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_zone(when.get("timeZone")) or calendar_zone)
            try:
                return parsed.astimezone(UTC)
            except OverflowError:
                return None
        if when.get("date"):
            try:
                return _midnight(date.fromisoformat(when["date"]), calendar_zone)
            except ValueError:
                return None
        return None

    def _bounds(self, event: dict, calendar: dict) -> tuple[datetime, datetime] | None:
        zone = ZoneInfo(calendar["timeZone"])
        start = self._instant(event.get("start"), zone)
        end = self._instant(event.get("end"), zone)
        return (start, end) if start is not None and end is not None else None

    def _normalize_times(self, event: dict, calendar: dict) -> None:
        """Validate ``start``/``end`` like Google and rewrite dateTimes with their zone's offset."""
        calendar_zone = ZoneInfo(calendar["timeZone"])
        instants: dict[str, datetime] = {}
        kinds: dict[str, str] = {}
        for key in ("start", "end"):
            when = event.get(key)
            if not isinstance(when, dict) or not (when.get("date") or when.get("dateTime")):
                raise GoogleError(400, "required", f"Missing {key} time.")
            if when.get("date") and when.get("dateTime"):
                raise GoogleError(400, "invalid", f"Invalid {key} time.")
            zone = calendar_zone
            if when.get("timeZone") is not None:
                zone = _zone(when["timeZone"])
                if zone is None:
                    raise GoogleError(400, "invalid", f"Invalid time zone definition for {key} time.")
            if when.get("date"):
                kinds[key] = "date"
                try:
                    day = date.fromisoformat(str(when["date"]))
                except ValueError:
                    raise GoogleError(400, "invalid", f"Invalid {key} time.") from None
                if len(str(when["date"])) != 10:
                    raise GoogleError(400, "invalid", f"Invalid {key} time.")
                instants[key] = _midnight(day, calendar_zone)
                continue
            kinds[key] = "dateTime"
            try:
                parsed = datetime.fromisoformat(str(when["dateTime"]))
            except ValueError:
                raise GoogleError(400, "invalid", f"Invalid {key} time.") from None
            if parsed.tzinfo is None:
                if when.get("timeZone") is None:
                    raise GoogleError(400, "required", f"Missing time zone definition for {key} time.")
                parsed = parsed.replace(tzinfo=zone)
            try:
                instants[key] = parsed.astimezone(UTC)
            except OverflowError:
                raise GoogleError(400, "invalid", f"Invalid {key} time.") from None
            # Stored (and returned) with the offset of the event's own zone, as Google does.
            when["dateTime"] = _format_dt(instants[key], zone)
        if kinds["start"] != kinds["end"]:
            raise GoogleError(400, "invalid", "Start and end times must either both be date or both be dateTime.")
        if instants["end"] <= instants["start"]:
            raise GoogleError(400, "timeRangeEmpty")

    @staticmethod
    def _normalize_attendees(event: dict, owner: str) -> None:
        attendees = event.get("attendees")
        if attendees is None:
            return
        if not isinstance(attendees, list):
            raise GoogleError(400, "invalid", "Invalid attendees value.")
        for attendee in attendees:
            if not isinstance(attendee, dict) or not attendee.get("email"):
                raise GoogleError(400, "required", "Missing attendee email.")
            attendee.setdefault("responseStatus", "needsAction")
            if attendee["email"] == owner:
                attendee["self"] = True

    def _check_fields(self, event: dict) -> None:
        if event.get("status", "confirmed") not in ("confirmed", "tentative", "cancelled"):
            raise GoogleError(400, "invalid", "Invalid value for: status")
        if event.get("transparency", "opaque") not in ("opaque", "transparent"):
            raise GoogleError(400, "invalid", "Invalid value for: transparency")

    def _create_event(self, calendar: dict, body: dict, seeding: bool = False) -> dict:
        cal_id = calendar["id"]
        event_id = body.get("id")
        if event_id is not None:
            if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
                raise GoogleError(400, "invalid", "Invalid resource id value.")
            if event_id in self._events_of(cal_id):
                raise GoogleError(409, "duplicate")
        else:
            event_id = _random(EVENT_ID_ALPHABET, 26)
        fields = {k: copy.deepcopy(v) for k, v in body.items()
                  if v is not None and k != "id" and (seeding or k not in READ_ONLY_FIELDS)}
        now = _format_utc_millis(datetime.now(UTC))
        link = _b64url(f"{event_id} {cal_id}".encode())
        event: dict = {
            "kind": "calendar#event",
            "etag": self._next_etag(),
            "id": event_id,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={link}",
            "created": now,
            "updated": now,
            "summary": "",
            "creator": {"email": self.email, "self": True},
            "organizer": {"email": cal_id, "self": True} if cal_id == self.email
            else {"email": cal_id, "displayName": calendar["summary"], "self": True},
        }
        event.update(fields)
        if not event["summary"]:
            del event["summary"]  # Google omits an empty title
        event.setdefault("iCalUID", f"{event_id}@google.com")
        event.setdefault("sequence", 0)
        event.setdefault("reminders", {"useDefault": True})
        event.setdefault("eventType", "default")
        self._check_fields(event)
        self._normalize_times(event, calendar)
        self._normalize_attendees(event, self.email)
        self._events_of(cal_id)[event_id] = event
        return event

    def _apply_patch(self, calendar: dict, event: dict, body: dict, seeding: bool = False) -> dict:
        candidate = copy.deepcopy(event)
        patch = {k: v for k, v in body.items() if k != "id" and (seeding or k not in READ_ONLY_FIELDS)}
        _merge_patch(candidate, patch)
        self._check_fields(candidate)
        self._normalize_times(candidate, calendar)
        self._normalize_attendees(candidate, self.email)
        if ("start" in patch or "end" in patch) and "sequence" not in patch:
            candidate["sequence"] = int(candidate.get("sequence", 0)) + 1  # a reschedule is a new revision
        if not (seeding and "updated" in patch):
            self._touch(candidate)
        # Validation passed: commit in place, so the dict add_event handed out stays the live one.
        event.clear()
        event.update(candidate)
        return event

    @staticmethod
    def _check_send_updates(query: Any) -> None:
        value = query.get("sendUpdates")
        if value is not None and value not in ("all", "externalOnly", "none"):
            raise GoogleError(400, "invalid", "Invalid value for: sendUpdates", location="sendUpdates")

    def _render(self, event: dict, zone: Any | None) -> dict:
        if event.get("status") == "cancelled":
            # What a listing shows of a deleted event: only the id is guaranteed.
            return {"kind": "calendar#event", "etag": event.get("etag", '"0"'), "id": event["id"],
                    "status": "cancelled"}
        body = copy.deepcopy(event)
        if zone is not None:
            for key in ("start", "end", "originalStartTime"):
                when = body.get(key)
                if isinstance(when, dict) and when.get("dateTime"):
                    instant = _parse_rfc3339(when["dateTime"])
                    if instant is not None:
                        when["dateTime"] = _format_dt(instant, zone)
        return body

    def _matches_text(self, event: dict, needle: str) -> bool:
        needle = needle.lower()
        haystack = [event.get("summary", ""), event.get("description", ""), event.get("location", ""),
                    (event.get("organizer") or {}).get("email", "")]
        for attendee in event.get("attendees") or []:
            haystack += [attendee.get("email", ""), attendee.get("displayName", "")]
        return any(needle in str(text).lower() for text in haystack)

    def _snapshot(self, calendar_id: str) -> dict[str, str]:
        return {eid: _fingerprint(e) for eid, e in self._events_of(calendar_id).items()}

    def _sync_base(self, token: str, calendar_id: str) -> _SyncBase:
        base = self._sync_tokens.get(token)
        # Unknown tokens (another fake instance, another calendar) also demand a full sync: the
        # client's remedy is the same, and a restarted sandbox heals itself that way.
        if base is None or base.generation != self._sync_generation or base.calendar_id != calendar_id:
            raise GoogleError(410, "fullSyncRequired")
        return base

    async def _events_list(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        cal_id = calendar["id"]
        query = request.query

        size = self._page_size(query, 250, 2500)
        single_events = self._bool_param(query, "singleEvents") or False
        show_deleted = self._bool_param(query, "showDeleted")
        order_by = query.get("orderBy")
        if order_by is not None and order_by not in ("startTime", "updated"):
            raise GoogleError(400, "invalid", "Invalid value for: orderBy", location="orderBy")
        if order_by == "startTime" and not single_events:
            raise GoogleError(400, "badRequest", "The requested ordering is not available for the particular query.")
        zone_name = query.get("timeZone")
        zone = None
        if zone_name is not None:
            zone = _zone(zone_name)
            if zone is None:
                raise GoogleError(400, "invalid", "Invalid time zone definition.", location="timeZone")
        time_min = self._time_param(query, "timeMin")
        time_max = self._time_param(query, "timeMax")
        updated_min = self._time_param(query, "updatedMin")
        if time_min is not None and time_max is not None and time_max <= time_min:
            raise GoogleError(400, "timeRangeEmpty")

        sync_token = query.get("syncToken")
        base = None
        if sync_token is not None:
            conflicts = [name for name in SYNC_INCOMPATIBLE if name in query]
            if show_deleted is False:
                conflicts.append("showDeleted")
            if conflicts:
                raise GoogleError(400, "invalid", "The following parameters are not allowed together with "
                                  f"syncToken: {', '.join(conflicts)}.", location="syncToken")
            base = self._sync_base(sync_token, cal_id)

        page_token = query.get("pageToken")
        if page_token:
            found = self._page_tokens.get(page_token)
            if found is None or found[0].calendar_id != cal_id or found[0].sync_token != sync_token:
                raise GoogleError(400, "invalid", "Invalid page token value.", location="pageToken")
            listing, offset = found
            return web.json_response(self._events_page(calendar, listing, offset, size, first=False))

        stored = self._events_of(cal_id)
        if base is not None:
            changed = [e for eid, e in stored.items() if base.snapshot.get(eid) != _fingerprint(e)]
            # An event removed from the store outright still has to reach the client as deleted.
            gone = [{"kind": "calendar#event", "id": eid, "status": "cancelled"}
                    for eid in base.snapshot if eid not in stored]
            chosen = changed + gone
        else:
            chosen = []
            for event in stored.values():
                if event.get("status") == "cancelled" and not show_deleted:
                    continue
                bounds = self._bounds(event, calendar)
                if bounds is not None:
                    if time_min is not None and bounds[1] <= time_min:
                        continue
                    if time_max is not None and bounds[0] >= time_max:
                        continue
                if updated_min is not None and (_parse_rfc3339(event.get("updated")) or updated_min) < updated_min:
                    continue
                if query.get("q") and not self._matches_text(event, query["q"]):
                    continue
                chosen.append(event)
            if order_by == "startTime":
                far = datetime.max.replace(tzinfo=UTC)
                chosen.sort(key=lambda e: ((self._bounds(e, calendar) or (far,))[0], e["id"]))
            elif order_by == "updated":
                chosen.sort(key=lambda e: (e.get("updated", ""), e["id"]))
        listing = _Listing(calendar_id=cal_id, sync_token=sync_token,
                           items=[self._render(e, zone) for e in chosen],
                           snapshot=self._snapshot(cal_id), time_zone=zone_name or calendar["timeZone"])
        return web.json_response(self._events_page(calendar, listing, 0, size, first=True))

    def _events_page(self, calendar: dict, listing: _Listing, offset: int, size: int, first: bool) -> dict:
        if first and self.short_pages and len(listing.items) > size:
            # Keep clients honest: a page may be short, or empty, while more remain.
            size = 0 if listing.sync_token is not None else (size + 1) // 2
        page = listing.items[offset:offset + size]
        stamps = [e.get("updated", "") for e in self._events_of(calendar["id"]).values()]
        body: dict = {
            "kind": "calendar#events",
            "etag": f'"{_fingerprint({"o": offset, "n": len(listing.items), "c": calendar["id"]})[:16]}"',
            "summary": calendar["summary"],
            "description": calendar.get("description", ""),
            "updated": max(stamps, default="") or _format_utc_millis(datetime.now(UTC)),
            "timeZone": listing.time_zone,
            "accessRole": calendar["accessRole"],
            "defaultReminders": copy.deepcopy(calendar.get("defaultReminders", [])),
            "items": copy.deepcopy(page),
        }
        next_offset = offset + size
        if next_offset < len(listing.items):
            token = _b64url(secrets.token_bytes(24))
            self._page_tokens[token] = (listing, next_offset)
            body["nextPageToken"] = token
        else:
            # Registered only now, on the last page: a token expired while the client was still
            # paging would otherwise be born dead.
            token = _b64url(b"\x08" + secrets.token_bytes(20))
            self._sync_tokens[token] = _SyncBase(listing.calendar_id, listing.snapshot, self._sync_generation)
            body["nextSyncToken"] = token
        return body

    async def _events_get(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        zone = _zone(request.query.get("timeZone")) if request.query.get("timeZone") else None
        event = self._stored_event(calendar, request.match_info["eventId"], allow_cancelled=True)
        body = copy.deepcopy(event) if event.get("status") == "cancelled" else self._render(event, zone)
        return web.json_response(body)

    async def _events_insert(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        self._require_writer(calendar)
        self._check_send_updates(request.query)
        event = self._create_event(calendar, self._json_body())
        return web.json_response(copy.deepcopy(event))

    async def _events_patch(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        self._require_writer(calendar)
        self._check_send_updates(request.query)
        event = self._stored_event(calendar, request.match_info["eventId"], allow_cancelled=True)
        body = self._json_body()
        return web.json_response(copy.deepcopy(self._apply_patch(calendar, event, body)))

    async def _events_delete(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        calendar = self._calendar(request.match_info["calendarId"])
        self._require_writer(calendar)
        self._check_send_updates(request.query)
        event = self._stored_event(calendar, request.match_info["eventId"], allow_cancelled=False)
        event["status"] = "cancelled"
        self._touch(event)
        return web.Response(status=204)

    # ------------------------------------------------------------------ Calendar: freeBusy

    def _declined(self, event: dict) -> bool:
        return any(a.get("self") and a.get("responseStatus") == "declined" for a in event.get("attendees") or [])

    def _busy(self, calendar: dict, time_min: datetime, time_max: datetime) -> list[tuple[datetime, datetime]]:
        spans = []
        for event in self._events_of(calendar["id"]).values():
            if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                continue
            if self._declined(event):
                continue
            bounds = self._bounds(event, calendar)
            if bounds is None or bounds[1] <= time_min or bounds[0] >= time_max:
                continue
            spans.append((max(bounds[0], time_min), min(bounds[1], time_max)))
        spans.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    async def _freebusy(self, request: web.Request) -> web.Response:
        self._authenticate(request, QUERY_FREEBUSY)
        body = self._json_body()
        bounds = {}
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise GoogleError(400, "required", f"Missing {name} parameter.", location=name)
            bounds[name] = _parse_rfc3339(body[name])
            if bounds[name] is None:
                raise GoogleError(400, "badRequest")
        time_min, time_max = bounds["timeMin"], bounds["timeMax"]
        if time_max <= time_min:
            raise GoogleError(400, "timeRangeEmpty")
        zone: Any = UTC  # timeZone only changes how the answer is written
        if body.get("timeZone"):
            zone = _zone(body["timeZone"])
            if zone is None:
                raise GoogleError(400, "invalid", "Invalid time zone definition.", location="timeZone")
        items = body.get("items") or []
        if not isinstance(items, list):
            raise GoogleError(400, "invalid", "Invalid value for: items")
        calendars: dict = {}
        for item in items:
            requested = item.get("id") if isinstance(item, dict) else None
            if not requested:
                raise GoogleError(400, "required", "Missing calendar id.")
            calendar = self._find_calendar(requested)
            if calendar is None:
                calendars[requested] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            calendars[requested] = {"busy": [{"start": _format_dt(s, zone), "end": _format_dt(e, zone)}
                                             for s, e in self._busy(calendar, time_min, time_max)]}
        return web.json_response({"kind": "calendar#freeBusy", "timeMin": _format_utc_millis(time_min),
                                  "timeMax": _format_utc_millis(time_max), "calendars": calendars})


async def start_fake_google(
    fake: FakeGoogle, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start on a free port; return (runner, base_url) where base_url is like 'http://127.0.0.1:54321'.

    Every Google base URL becomes ``base_url`` + the real path prefix, e.g. the authorize URL is
    ``base_url + "/o/oauth2/v2/auth"`` and the Calendar API is ``base_url + "/calendar/v3"``.
    Stop it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    return runner, f"http://{bound_host}:{bound_port}"

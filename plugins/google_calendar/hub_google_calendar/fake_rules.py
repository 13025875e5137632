"""What the fake Google (:mod:`hub_google_calendar.fake`) knows about Google's rules: scopes,
the Calendar API's error shape, RFC 3339 times and how an event body is checked and stored."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
CALENDAR, CALENDAR_READONLY = SCOPE_PREFIX + "calendar", SCOPE_PREFIX + "calendar.readonly"
CALENDAR_EVENTS, EVENTS_OWNED = SCOPE_PREFIX + "calendar.events", SCOPE_PREFIX + "calendar.events.owned"
USERINFO_EMAIL, USERINFO_PROFILE = SCOPE_PREFIX + "userinfo.email", SCOPE_PREFIX + "userinfo.profile"
# Google widens the short OpenID scope names to these URLs in what it grants.
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}

# Which scopes let a token call which kind of method (any one of the set suffices).
READ_CALENDAR_LIST = {CALENDAR, CALENDAR_READONLY, SCOPE_PREFIX + "calendar.calendarlist",
                      SCOPE_PREFIX + "calendar.calendarlist.readonly"}
READ_EVENTS = {CALENDAR, CALENDAR_READONLY, CALENDAR_EVENTS, CALENDAR_EVENTS + ".readonly", EVENTS_OWNED,
               EVENTS_OWNED + ".readonly"}
WRITE_EVENTS = {CALENDAR, CALENDAR_EVENTS, EVENTS_OWNED}
QUERY_FREEBUSY = {CALENDAR, CALENDAR_READONLY, SCOPE_PREFIX + "calendar.freebusy", CALENDAR_EVENTS + ".freebusy"}

AUTH_HELP = ("Expected OAuth 2 access token, login cookie or other valid authentication credential. "
             "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
REALM = 'Bearer realm="https://accounts.google.com/"'

# Default errors[].message per reason, as Google words them.
REASON_MESSAGES = {
    "authError": "Invalid Credentials", "required": "Login Required.", "badRequest": "Bad Request",
    "invalid": "Invalid Value", "parseError": "Parse Error", "timeRangeEmpty": "The specified time range is empty.",
    "forbidden": "Forbidden", "insufficientPermissions": "Insufficient Permission",
    "requiredAccessLevel": "You need to have writer access to this calendar.",
    "rateLimitExceeded": "Rate Limit Exceeded", "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.", "dailyLimitExceeded": "Daily Limit Exceeded",
    "notFound": "Not Found", "duplicate": "The requested identifier already exists.", "conflict": "Conflict",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
    "deleted": "Resource has been deleted", "backendError": "Backend Error", "internalError": "Internal Error",
}
REASON_DOMAINS = {"rateLimitExceeded": "usageLimits", "userRateLimitExceeded": "usageLimits", "quotaExceeded": "usageLimits",
                  "dailyLimitExceeded": "usageLimits", "timeRangeEmpty": "calendar", "requiredAccessLevel": "calendar"}
# The reason a fault switch answers when the test names none.
DEFAULT_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound", 409: "conflict",
                   410: "deleted", 429: "rateLimitExceeded"}
# Canonical gRPC status names Google puts next to the HTTP code; 410 has none, so it is omitted.
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

# Fields the server owns: ignored in insert/patch bodies (seed helpers may set them).
READ_ONLY_FIELDS = {"kind", "etag", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID", "sequence",
                    "recurringEventId"}
EVENT_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32hex, as Google requires for ids
EVENT_ID_RE = re.compile(r"^[0-9a-v]{5,1024}$")


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class GoogleError(web.HTTPException):
    """A Calendar API error, ``{"error": {"code", "message", "errors": [...], "status"}}``: raised
    in a handler, aiohttp answers it; :meth:`answer` builds a fresh response for a fault switch."""

    def __init__(self, status: int, reason: str, message: str | None = None, *, domain: str | None = None,
                 top_message: str | None = None, location: str | None = None, location_type: str = "parameter",
                 headers: dict[str, str] | None = None) -> None:
        self.status_code, self.extra_headers = status, headers or {}
        self.message = message or REASON_MESSAGES.get(reason) or phrase(status)
        detail = {"domain": domain or REASON_DOMAINS.get(reason, "global"), "reason": reason, "message": self.message}
        if location:
            detail.update(location=location, locationType=location_type)
        error: dict[str, Any] = {"code": status, "message": top_message or self.message, "errors": [detail]}
        if status in STATUS_NAMES:
            error["status"] = STATUS_NAMES[status]
        self.payload = {"error": error}
        super().__init__(text=json.dumps(self.payload), content_type="application/json", headers=headers)

    def answer(self) -> web.Response:
        return web.json_response(self.payload, status=self.status_code, headers=self.extra_headers)


def invalid(message: str, location: str | None = None) -> GoogleError:
    return GoogleError(400, "invalid", message, location=location)


def random_text(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def fingerprint(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def zone_of(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with its mandatory offset, as a UTC datetime; None when it is not one."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: an instant before year 1 in UTC
        return None


def format_dt(instant: datetime, zone: Any) -> str:
    """RFC 3339 in ``zone``: ``2026-03-29T10:00:00+02:00``, or ``…Z`` when the offset is zero."""
    text = instant.astimezone(zone).isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_utc_millis(instant: datetime) -> str:
    """``2026-03-29T08:00:00.000Z``: how Google writes ``created``/``updated`` and freeBusy bounds."""
    instant = instant.astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def midnight(day: date, zone: Any) -> datetime:
    # Built in wall-clock time and converted at once: arithmetic on aware datetimes sharing a
    # ZoneInfo is wall-clock arithmetic and goes wrong across DST changes.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def instant_of(when: Any, calendar_zone: Any) -> datetime | None:
    """The UTC instant a stored start/end object stands for."""
    if not isinstance(when, dict):
        return None
    try:
        if when.get("dateTime"):
            parsed = datetime.fromisoformat(when["dateTime"])
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone_of(when.get("timeZone")) or calendar_zone)
            return parsed.astimezone(UTC)
        return midnight(date.fromisoformat(when["date"]), calendar_zone) if when.get("date") else None
    except (ValueError, OverflowError):
        return None


def time_object(value: str, zone_name: str) -> dict[str, str]:
    """Seed shorthand: ``"2026-03-29"`` or a dateTime string -> an event time object."""
    if len(value) == 10:
        return {"date": value}
    return {"dateTime": value} if parse_rfc3339(value) is not None else {"dateTime": value, "timeZone": zone_name}


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Patch semantics: objects merge field by field, arrays and scalars replace, null clears."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def check_event(event: dict[str, Any], calendar_zone_name: str, owner: str) -> None:
    """Validate an event body like Google; rewrite its dateTimes with their zone's offset and
    default its attendees' ``responseStatus``."""
    if event.get("status", "confirmed") not in ("confirmed", "tentative", "cancelled"):
        raise invalid("Invalid value for: status")
    if event.get("transparency", "opaque") not in ("opaque", "transparent"):
        raise invalid("Invalid value for: transparency")
    instants = {key: _check_time(event.get(key), key, ZoneInfo(calendar_zone_name)) for key in ("start", "end")}
    if bool(event["start"].get("date")) != bool(event["end"].get("date")):
        raise invalid("Start and end times must either both be date or both be dateTime.")
    if instants["end"] <= instants["start"]:
        raise GoogleError(400, "timeRangeEmpty")
    attendees = event.get("attendees")
    if attendees is not None and not isinstance(attendees, list):
        raise invalid("Invalid attendees value.")
    for attendee in attendees or []:
        if not isinstance(attendee, dict) or not attendee.get("email"):
            raise GoogleError(400, "required", "Missing attendee email.")
        attendee.setdefault("responseStatus", "needsAction")
        if attendee["email"] == owner:
            attendee["self"] = True


def _check_time(when: Any, key: str, calendar_zone: ZoneInfo) -> datetime:
    if not isinstance(when, dict) or not (when.get("date") or when.get("dateTime")):
        raise GoogleError(400, "required", f"Missing {key} time.")
    if when.get("date") and when.get("dateTime"):
        raise invalid(f"Invalid {key} time.")
    zone = calendar_zone if when.get("timeZone") is None else zone_of(when["timeZone"])
    if zone is None:
        raise invalid(f"Invalid time zone definition for {key} time.")
    try:
        if when.get("date"):
            if len(str(when["date"])) != 10:
                raise ValueError
            return midnight(date.fromisoformat(str(when["date"])), calendar_zone)
        parsed = datetime.fromisoformat(str(when["dateTime"]))
        if parsed.tzinfo is None and when.get("timeZone") is None:
            raise GoogleError(400, "required", f"Missing time zone definition for {key} time.")
        instant = (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(f"Invalid {key} time.") from None
    when["dateTime"] = format_dt(instant, zone)  # stored (and returned) with the offset of the event's own zone
    return instant


class CalendarEvents(dict[str, dict[str, dict[str, Any]]]):
    """Events by calendar id, with ``"primary"`` as an alias of the primary calendar's id."""

    def __init__(self, primary_id: str, *args: Any) -> None:
        super().__init__(*args)
        self.primary_id = primary_id

    def _key(self, key: Any) -> Any:
        return self.primary_id if key == "primary" else key

    def __missing__(self, key: Any) -> dict[str, dict[str, Any]]:
        if key == "primary":
            return self[self.primary_id]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self._key(key), default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return super().setdefault(self._key(key), default)

"""The Calendar API v3 routes of the fake Google (:mod:`hub_google_calendar.fake`): calendarList,
calendars, events (list with pages and sync tokens, get, insert, patch, delete) and freeBusy."""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .fake_rules import (
    AUTH_HELP,
    EVENT_ID_ALPHABET,
    EVENT_ID_RE,
    QUERY_FREEBUSY,
    READ_CALENDAR_LIST,
    READ_EVENTS,
    READ_ONLY_FIELDS,
    REALM,
    WRITE_EVENTS,
    GoogleError,
    b64url,
    check_event,
    fingerprint,
    format_dt,
    format_utc_millis,
    instant_of,
    invalid,
    merge_patch,
    parse_rfc3339,
    random_text,
    zone_of,
)

ACCESS_ROLES = ("freeBusyReader", "reader", "writer", "owner")
# Parameters a syncToken request may not carry (showDeleted=false is checked separately).
SYNC_INCOMPATIBLE = ("timeMin", "timeMax", "q", "orderBy", "updatedMin", "iCalUID", "privateExtendedProperty",
                     "sharedExtendedProperty")
FAR = datetime.max.replace(tzinfo=UTC)


@dataclass
class Listing:
    """One events listing, frozen at its first page, followed through its page tokens."""

    calendar_id: str
    sync_token: str | None  # the syncToken this listing answers, None for a full listing
    items: list[dict[str, Any]]
    snapshot: dict[str, str]  # event id -> fingerprint when the listing started
    time_zone: str


@dataclass
class SyncBase:
    calendar_id: str
    snapshot: dict[str, str]
    generation: int


class CalendarApi:
    """The Calendar API half of :class:`hub_google_calendar.fake.FakeGoogle` (a mixin: the fake
    holds ``calendars``, ``events``, the listings and sync tokens, and the OAuth machinery)."""

    calendars: list[dict[str, Any]]
    events: dict[str, dict[str, dict[str, Any]]]
    email: str
    check_scopes: bool
    short_pages: bool
    sync_generation: int
    etag_counter: int
    page_tokens: dict[str, tuple[Listing, int]]
    sync_tokens: dict[str, SyncBase]
    api_path: str
    require_token: Any
    current_call: Any

    def add_routes(self, app: web.Application) -> None:
        for method, path, handler in (
            ("GET", "/users/me/calendarList", self._calendar_list),
            ("GET", "/users/me/calendarList/{calendarId}", self._calendar_list_entry),
            ("GET", "/calendars/{calendarId}", self._calendar_get),
            ("GET", "/calendars/{calendarId}/events", self._events_list),
            ("POST", "/calendars/{calendarId}/events", self._events_insert),
            ("GET", "/calendars/{calendarId}/events/{eventId}", self._events_get),
            ("PATCH", "/calendars/{calendarId}/events/{eventId}", self._events_patch),
            ("DELETE", "/calendars/{calendarId}/events/{eventId}", self._events_delete),
            ("POST", "/freeBusy", self._freebusy),
        ):
            app.router.add_route(method, self.api_path + path, handler)
            if method == "GET":  # Google's front ends answer HEAD wherever they answer GET
                app.router.add_route("HEAD", self.api_path + path, handler)

    # ------------------------------------------------------------------ plumbing

    def _authenticate(self, request: web.Request, allowed: set[str]) -> Any:
        token = self.require_token(request)
        if self.check_scopes and not allowed & set(token.scope.split()):
            raise GoogleError(403, "insufficientPermissions", top_message="Request had insufficient authentication scopes.",
                              headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'})
        return token

    @staticmethod
    def _unauthenticated(missing: bool) -> GoogleError:
        if missing:
            return GoogleError(401, "required", top_message="Request is missing required authentication credential. " + AUTH_HELP,
                               location="Authorization", location_type="header", headers={"WWW-Authenticate": REALM})
        return GoogleError(401, "authError", top_message="Request had invalid authentication credentials. " + AUTH_HELP,
                           location="Authorization", location_type="header",
                           headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        body = self.current_call().json
        if body is None and request.content_type == "application/json" and (await request.text()).strip():
            raise GoogleError(400, "parseError")
        if not isinstance(body, dict | None):
            raise GoogleError(400, "badRequest")
        return body or {}

    def find_calendar(self, calendar_id: str) -> dict[str, Any] | None:
        wanted = self.email if calendar_id == "primary" else calendar_id
        calendar = next((c for c in self.calendars if c["id"] == wanted), None)
        if calendar is not None:
            self.events.setdefault(calendar["id"], {})  # calendars appended by a test
        return calendar

    def _calendar(self, request: web.Request, write: bool = False) -> dict[str, Any]:
        calendar = self.find_calendar(request.match_info["calendarId"])
        if calendar is None:
            raise GoogleError(404, "notFound")
        if write:
            if calendar["accessRole"] not in ("writer", "owner"):
                raise GoogleError(403, "requiredAccessLevel")
            if request.query.get("sendUpdates", "none") not in ("all", "externalOnly", "none"):
                raise invalid("Invalid value for: sendUpdates", "sendUpdates")
        return calendar

    def stored_event(self, calendar: dict[str, Any], event_id: str, allow_cancelled: bool = True) -> dict[str, Any]:
        event = self.events.setdefault(calendar["id"], {}).get(event_id)
        if event is None:
            raise GoogleError(404, "notFound")
        if not allow_cancelled and event.get("status") == "cancelled":
            raise GoogleError(410, "deleted")
        return event

    def next_etag(self) -> str:
        self.etag_counter += 1
        return f'"{int(time.time() * 1_000_000) * 1000 + self.etag_counter % 1000}"'

    def touch(self, event: dict[str, Any]) -> None:
        event["updated"], event["etag"] = format_utc_millis(datetime.now(UTC)), self.next_etag()

    @staticmethod
    def _page_size(query: Any, default: int, maximum: int) -> int:
        raw = query.get("maxResults") or str(default)
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise invalid(f"Invalid value '{raw}'. Values must be within the range: [1, {maximum}]", "maxResults")
        return min(value, maximum)  # Google caps page sizes silently

    @staticmethod
    def _bool_param(query: Any, name: str) -> bool | None:
        raw = query.get(name)
        if raw is not None and raw.lower() not in ("true", "false"):
            raise invalid(f"Invalid value for: {name}", name)
        return None if raw is None else raw.lower() == "true"

    @staticmethod
    def _time_param(query: Any, name: str) -> datetime | None:
        if query.get(name) is None:
            return None
        parsed = parse_rfc3339(query[name])
        if parsed is None:  # the offset is mandatory
            raise GoogleError(400, "badRequest")
        return parsed

    @staticmethod
    def _zone_param(name: str | None) -> Any:
        zone = zone_of(name) if name is not None else None
        if name is not None and zone is None:
            raise invalid("Invalid time zone definition.", "timeZone")
        return zone

    # ------------------------------------------------------------------ calendarList, calendars

    async def _calendar_list(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST)
        query = request.query
        size, min_role = self._page_size(query, 100, 250), query.get("minAccessRole")
        if min_role is not None and min_role not in ACCESS_ROLES:
            raise invalid("Invalid value for: minAccessRole", "minAccessRole")
        entries = [c for c in self.calendars
                   if min_role is None or ACCESS_ROLES.index(c["accessRole"]) >= ACCESS_ROLES.index(min_role)]
        offset = 0
        if query.get("pageToken"):
            listing = self.page_tokens.get(query["pageToken"])
            if listing is None or listing[0].calendar_id != "calendarList":
                raise invalid("Invalid page token value.", "pageToken")
            offset = listing[1]
        body: dict[str, Any] = {"kind": "calendar#calendarList", "etag": f'"p3{len(self.calendars):02d}fake"',
                                "items": copy.deepcopy(entries[offset:offset + size])}
        if offset + size < len(entries):
            body["nextPageToken"] = self._page_token(Listing("calendarList", None, [], {}, ""), offset + size)
        else:  # calendarList sync is not modelled: this token just lists everything again
            body["nextSyncToken"] = b64url(f"calendarList:{secrets.token_hex(8)}".encode())
        return web.json_response(body)

    async def _calendar_list_entry(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST)
        return web.json_response(copy.deepcopy(self._calendar(request)))

    async def _calendar_get(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_CALENDAR_LIST | READ_EVENTS)
        calendar = self._calendar(request)
        body = {"kind": "calendar#calendar", **{k: calendar[k] for k in ("etag", "id", "summary", "timeZone")}}
        if calendar.get("description"):
            body["description"] = calendar["description"]
        return web.json_response(body)

    def _page_token(self, listing: Listing, offset: int) -> str:
        token = b64url(secrets.token_bytes(24))
        self.page_tokens[token] = (listing, offset)
        return token

    # ------------------------------------------------------------------ events

    def bounds(self, event: dict[str, Any], calendar: dict[str, Any]) -> tuple[datetime, datetime] | None:
        zone = zone_of(calendar["timeZone"])
        start, end = instant_of(event.get("start"), zone), instant_of(event.get("end"), zone)
        return (start, end) if start is not None and end is not None else None

    @staticmethod
    def _render(event: dict[str, Any], zone: Any) -> dict[str, Any]:
        if event.get("status") == "cancelled":  # what a listing shows of a deleted event: only the id is guaranteed
            return {"kind": "calendar#event", "etag": event.get("etag", '"0"'), "id": event["id"], "status": "cancelled"}
        body = copy.deepcopy(event)
        for key in ("start", "end", "originalStartTime") if zone is not None else ():
            when = body.get(key)
            instant = parse_rfc3339(when.get("dateTime")) if isinstance(when, dict) else None
            if instant is not None:
                when["dateTime"] = format_dt(instant, zone)
        return body

    @staticmethod
    def _matches_text(event: dict[str, Any], needle: str) -> bool:
        haystack = [event.get("summary", ""), event.get("description", ""), event.get("location", ""),
                    (event.get("organizer") or {}).get("email", "")]
        for attendee in event.get("attendees") or []:
            haystack += [attendee.get("email", ""), attendee.get("displayName", "")]
        return any(needle.lower() in str(text).lower() for text in haystack)

    def _snapshot(self, calendar_id: str) -> dict[str, str]:
        return {eid: fingerprint(e) for eid, e in self.events.setdefault(calendar_id, {}).items()}

    def _sync_base(self, query: Any, calendar_id: str, show_deleted: bool | None) -> SyncBase | None:
        if query.get("syncToken") is None:
            return None
        conflicts = [name for name in SYNC_INCOMPATIBLE if name in query] + (["showDeleted"] if show_deleted is False else [])
        if conflicts:
            raise invalid(f"The following parameters are not allowed together with syncToken: {', '.join(conflicts)}.",
                          "syncToken")
        base = self.sync_tokens.get(query["syncToken"])
        # Unknown tokens (another fake instance, another calendar) also demand a full sync: the
        # client's remedy is the same, and a restarted sandbox heals itself that way.
        if base is None or base.generation != self.sync_generation or base.calendar_id != calendar_id:
            raise GoogleError(410, "fullSyncRequired")
        return base

    async def _events_list(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        calendar, query = self._calendar(request), request.query
        size, order_by = self._page_size(query, 250, 2500), query.get("orderBy")
        single_events, show_deleted = self._bool_param(query, "singleEvents"), self._bool_param(query, "showDeleted")
        if order_by not in (None, "startTime", "updated"):
            raise invalid("Invalid value for: orderBy", "orderBy")
        if order_by == "startTime" and not single_events:
            raise GoogleError(400, "badRequest", "The requested ordering is not available for the particular query.")
        zone = self._zone_param(query.get("timeZone"))
        time_min, time_max = self._time_param(query, "timeMin"), self._time_param(query, "timeMax")
        updated_min = self._time_param(query, "updatedMin")
        if time_min is not None and time_max is not None and time_max <= time_min:
            raise GoogleError(400, "timeRangeEmpty")
        base, sync_token = self._sync_base(query, calendar["id"], show_deleted), query.get("syncToken")
        if query.get("pageToken"):
            found = self.page_tokens.get(query["pageToken"])
            if found is None or found[0].calendar_id != calendar["id"] or found[0].sync_token != sync_token:
                raise invalid("Invalid page token value.", "pageToken")
            return web.json_response(self._events_page(calendar, *found, size, first=False))
        stored = self.events.setdefault(calendar["id"], {})
        if base is not None:
            chosen = [e for eid, e in stored.items() if base.snapshot.get(eid) != fingerprint(e)]
            # An event removed from the store outright still has to reach the client as deleted.
            chosen += [{"kind": "calendar#event", "id": eid, "status": "cancelled"} for eid in base.snapshot if eid not in stored]
        else:
            chosen = []
            for event in stored.values():
                span = self.bounds(event, calendar)
                if (event.get("status") == "cancelled" and not show_deleted) or (span is not None and (
                        (time_min is not None and span[1] <= time_min) or (time_max is not None and span[0] >= time_max))):
                    continue
                if updated_min is not None and (parse_rfc3339(event.get("updated")) or updated_min) < updated_min:
                    continue
                if not query.get("q") or self._matches_text(event, query["q"]):
                    chosen.append(event)
            if order_by == "startTime":
                chosen.sort(key=lambda e: ((self.bounds(e, calendar) or (FAR,))[0], e["id"]))
            elif order_by == "updated":
                chosen.sort(key=lambda e: (e.get("updated", ""), e["id"]))
        listing = Listing(calendar["id"], sync_token, [self._render(e, zone) for e in chosen], self._snapshot(calendar["id"]),
                          query.get("timeZone") or calendar["timeZone"])
        return web.json_response(self._events_page(calendar, listing, 0, size, first=True))

    def _events_page(self, calendar: dict[str, Any], listing: Listing, offset: int, size: int, first: bool) -> dict[str, Any]:
        if first and self.short_pages and len(listing.items) > size:
            # Keep clients honest: a page may be short, or empty, while more remain.
            size = 0 if listing.sync_token is not None else (size + 1) // 2
        stamps = [e.get("updated", "") for e in self.events.setdefault(calendar["id"], {}).values()]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{fingerprint({"o": offset, "n": len(listing.items), "c": calendar["id"]})[:16]}"',
            "summary": calendar["summary"],
            "description": calendar.get("description", ""),
            "updated": max(stamps, default="") or format_utc_millis(datetime.now(UTC)),
            "timeZone": listing.time_zone,
            "accessRole": calendar["accessRole"],
            "defaultReminders": copy.deepcopy(calendar.get("defaultReminders", [])),
            "items": copy.deepcopy(listing.items[offset:offset + size]),
        }
        if offset + size < len(listing.items):
            body["nextPageToken"] = self._page_token(listing, offset + size)
        else:
            # Registered only now, on the last page: a token expired while the client was still
            # paging would otherwise be born dead.
            token = b64url(b"\x08" + secrets.token_bytes(20))
            self.sync_tokens[token] = SyncBase(listing.calendar_id, listing.snapshot, self.sync_generation)
            body["nextSyncToken"] = token
        return body

    async def _events_get(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        event = self.stored_event(self._calendar(request), request.match_info["eventId"])
        if event.get("status") == "cancelled":
            return web.json_response(copy.deepcopy(event))
        return web.json_response(self._render(event, zone_of(request.query.get("timeZone"))))

    async def _events_insert(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        calendar = self._calendar(request, write=True)
        return web.json_response(copy.deepcopy(self.create_event(calendar, await self._json_body(request))))

    async def _events_patch(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        calendar = self._calendar(request, write=True)
        event = self.stored_event(calendar, request.match_info["eventId"])
        return web.json_response(copy.deepcopy(self.apply_patch(calendar, event, await self._json_body(request))))

    async def _events_delete(self, request: web.Request) -> web.Response:
        self._authenticate(request, WRITE_EVENTS)
        event = self.stored_event(self._calendar(request, write=True), request.match_info["eventId"], allow_cancelled=False)
        event["status"] = "cancelled"
        self.touch(event)
        return web.Response(status=204)

    def create_event(self, calendar: dict[str, Any], body: dict[str, Any], seeding: bool = False) -> dict[str, Any]:
        cal_id, stored = calendar["id"], self.events.setdefault(calendar["id"], {})
        event_id = body.get("id")
        if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id)):
            raise invalid("Invalid resource id value.")
        if event_id in stored:
            raise GoogleError(409, "duplicate")
        event_id = event_id or random_text(EVENT_ID_ALPHABET, 26)
        now = format_utc_millis(datetime.now(UTC))
        organizer = {"email": cal_id} if cal_id == self.email else {"email": cal_id, "displayName": calendar["summary"]}
        event: dict[str, Any] = {
            "kind": "calendar#event", "etag": self.next_etag(), "id": event_id, "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={b64url(f'{event_id} {cal_id}'.encode())}",
            "created": now, "updated": now, "creator": {"email": self.email, "self": True},
            "organizer": {**organizer, "self": True}, "iCalUID": f"{event_id}@google.com", "sequence": 0,
            "reminders": {"useDefault": True}, "eventType": "default",
        }
        event.update({k: copy.deepcopy(v) for k, v in body.items()
                      if v is not None and k != "id" and (seeding or k not in READ_ONLY_FIELDS)})
        if not event.get("summary"):
            event.pop("summary", None)  # Google omits an empty title
        check_event(event, calendar["timeZone"], self.email)
        stored[event_id] = event
        return event

    def apply_patch(self, calendar: dict[str, Any], event: dict[str, Any], body: dict[str, Any], seeding: bool = False) -> dict[str, Any]:
        candidate = copy.deepcopy(event)
        patch = {k: v for k, v in body.items() if k != "id" and (seeding or k not in READ_ONLY_FIELDS)}
        merge_patch(candidate, patch)
        check_event(candidate, calendar["timeZone"], self.email)
        if ("start" in patch or "end" in patch) and "sequence" not in patch:
            candidate["sequence"] = int(candidate.get("sequence", 0)) + 1  # a reschedule is a new revision
        if not (seeding and "updated" in patch):
            self.touch(candidate)
        event.clear()  # validation passed: commit in place, so a dict handed out stays the live one
        event.update(candidate)
        return event

    # ------------------------------------------------------------------ freeBusy

    def _busy(self, calendar: dict[str, Any], time_min: datetime, time_max: datetime) -> list[tuple[datetime, datetime]]:
        spans = []
        for event in self.events.setdefault(calendar["id"], {}).values():
            declined = any(a.get("self") and a.get("responseStatus") == "declined" for a in event.get("attendees") or [])
            span = self.bounds(event, calendar)
            if declined or event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                continue
            if span is not None and span[1] > time_min and span[0] < time_max:
                spans.append((max(span[0], time_min), min(span[1], time_max)))
        merged: list[tuple[datetime, datetime]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    async def _freebusy(self, request: web.Request) -> web.Response:
        self._authenticate(request, QUERY_FREEBUSY)
        body = await self._json_body(request)
        bounds = []
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise GoogleError(400, "required", f"Missing {name} parameter.", location=name)
            bounds.append(parse_rfc3339(body[name]))
            if bounds[-1] is None:
                raise GoogleError(400, "badRequest")
        time_min, time_max = bounds
        if time_max <= time_min:
            raise GoogleError(400, "timeRangeEmpty")
        zone = self._zone_param(body.get("timeZone") or None) or UTC  # timeZone only changes how the answer is written
        items = body.get("items") or []
        if not isinstance(items, list):
            raise invalid("Invalid value for: items")
        calendars: dict[str, Any] = {}
        for item in items:
            requested = item.get("id") if isinstance(item, dict) else None
            if not requested:
                raise GoogleError(400, "required", "Missing calendar id.")
            calendar = self.find_calendar(requested)
            calendars[requested] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []} if calendar is None else {
                "busy": [{"start": format_dt(s, zone), "end": format_dt(e, zone)} for s, e in self._busy(calendar, time_min, time_max)]}
        return web.json_response({"kind": "calendar#freeBusy", "timeMin": format_utc_millis(time_min),
                                  "timeMax": format_utc_millis(time_max), "calendars": calendars})

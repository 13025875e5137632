"""Google Calendar provider for the integration hub.

Standard OAuth 2.0 with PKCE, so the core's defaults do the code exchange, refresh,
revocation (RFC 7009 at Google's revoke endpoint) and identity (OpenID userinfo). This
plugin adds Google's authorize extras (offline access, re-consent, incremental scopes),
reads Google's JSON errors, and offers events, free-time and incremental sync actions.

Default scopes: ``calendar.events`` and ``openid email`` as the core grant, plus the two
narrowest read scopes that ``GET calendars`` (calendarList) and ``GET availability``
(freeBusy) need — ``calendar.events`` alone does not let a token call either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time, timedelta
from functools import cache
from dataclasses import replace
from typing import Any
from zoneinfo import available_timezones

import hub
from hub import (
    Action,
    CallContext,
    Endpoints,
    MalformedResponse,
    Provider,
    ProviderError,
    ProviderInfo,
    Sandbox,
    UpstreamResponse,
    WebhookEvent,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)

from . import push, schemas
from .answers import ANSWERS
from .availability import MAX_RANGE, WorkingHours, free_slots, parse_instant, to_json

SCOPE = "https://www.googleapis.com/auth/"

INFO = ProviderInfo(
    name="google_calendar",
    title="Google Calendar",
    description="Read and write calendar events, find free time, keep an incrementally synced view.",
    endpoints=Endpoints(
        api="https://www.googleapis.com/calendar/v3",
        authorize="https://accounts.google.com/o/oauth2/v2/auth",
        token="https://oauth2.googleapis.com/token",
        revoke="https://oauth2.googleapis.com/revoke",
        userinfo="https://openidconnect.googleapis.com/v1/userinfo",
    ),
    default_scopes=(
        SCOPE + "calendar.events",
        SCOPE + "calendar.calendarlist.readonly",
        SCOPE + "calendar.freebusy",
        "openid",
        "email",
    ),
    scope_separator=" ",
    pkce=True,
    authorize_params={
        "access_type": "offline",  # ask for a refresh token
        "prompt": "consent",  # and get one again when the user reconnects
        "include_granted_scopes": "true",
    },
    token_shapes=(
        r"ya29\.[A-Za-z0-9_-]{8,}",  # access tokens
        r"1//[A-Za-z0-9_-]{16,}",  # refresh tokens
    ),
    # Page cursors, not credentials: worth seeing in the activity log.
    safe_keys=("pageToken", "nextPageToken"),
)

# Google's reason when the answer has none of its own, by status.
DEFAULT_REASONS = {401: "authError", 429: "rateLimitExceeded", 404: "notFound", 410: "notFound", 403: "forbidden",
                   409: "conflict", 400: "badRequest", 422: "badRequest"}
# Statuses Google uses beyond the standard mapping: 410 "deleted" is gone already, a 404 to the caller.
KINDS: dict[int, hub.ErrorKind] = {403: "forbidden", 409: "conflict", 410: "not_found"}

RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


class SyncTokenGone(ProviderError):
    """Google forgot the sync token (410 fullSyncRequired): start a full sync."""

    status, code = 410, "full_sync_required"


@hookimpl
def hub_provider() -> ProviderInfo:
    return INFO


@hookimpl
def hub_actions() -> list[Action]:
    actions = [
        Action("list_calendars", "GET", "calendars", list_calendars, schemas.CALENDARS, summary="The user's calendars (calendarList)",
               output_schema=schemas.CALENDAR_PAGE, examples=schemas.CALENDARS_EXAMPLES),
        Action("list_events", "GET", "events", list_events, schemas.EVENTS, summary="Events of a calendar, one page at a time",
               output_schema=schemas.EVENT_PAGE, examples=schemas.EVENTS_EXAMPLES),
        Action("create_event", "POST", "events", create_event, schemas.CREATE_EVENT, summary="Create an event",
               output_schema=schemas.EVENT, examples=schemas.CREATE_EVENT_EXAMPLES),
        Action("update_event", "PATCH", "events/{event_id}", update_event, schemas.PATCH_EVENT, summary="Change some fields of an event",
               output_schema=schemas.EVENT, examples=schemas.PATCH_EVENT_EXAMPLES),
        Action("delete_event", "DELETE", "events/{event_id}", delete_event, schemas.DELETE_EVENT, summary="Delete an event",
               output_schema=schemas.DELETED, examples=schemas.DELETE_EVENT_EXAMPLES),
        Action("availability", "GET", "availability", availability, schemas.AVAILABILITY, summary="Free slots in working hours, from freeBusy",
               output_schema=schemas.FREE_SLOTS, examples=schemas.AVAILABILITY_EXAMPLES),
        Action("sync", "POST", "sync", sync, schemas.SYNC, summary="Incremental sync with a stored syncToken", pending=True,
               output_schema=schemas.SYNCED, examples=schemas.SYNC_EXAMPLES),
        Action("watch_calendar", "POST", "watch", watch_calendar, push.WATCH,
               summary="Push notifications: Google tells the hub when the calendar's events change, and the hub emits the changes",
               output_schema=push.CHANNEL, examples=push.WATCH_EXAMPLES),
        Action("unwatch_calendar", "DELETE", "watch", push.unwatch_calendar, push.UNWATCH,
               summary="Stop the push notifications of a calendar (channels.stop)", output_schema=push.UNWATCHED,
               examples=push.UNWATCH_EXAMPLES),
    ]
    return [replace(a, output_schema={**(a.output_schema or {}), "examples": [ANSWERS[a.name]]}) for a in actions]


@hookimpl
def hub_check_response(provider: Provider, response: UpstreamResponse) -> None:
    status = response.status
    if status < 400:
        return
    reason, message = _google_error(response)
    text = f"Google Calendar: {message}" if message else f"Google Calendar answered HTTP {status}"
    if status == 403 and reason in RATE_REASONS:
        raise hub.provider_error("rate_limited", text, provider_code=reason, retry_after=response.retry_after())
    if status == 410 and reason == "fullSyncRequired":
        raise SyncTokenGone(text, provider_code=reason)
    if status in DEFAULT_REASONS:
        hub.raise_for_status(response, provider_code=reason or DEFAULT_REASONS[status], message=text, kinds=KINDS)
    hub.raise_for_status(response)  # 5xx and the rest: the hub's own wording


@hookimpl
def hub_webhook(request: WebhookRequest) -> WebhookResult:
    return push.receive(request)


@hookimpl
async def hub_webhook_follow_up(ctx: CallContext, event: WebhookEvent) -> dict[str, Any]:
    return await push.follow_up(ctx, event, sync)


@hookimpl
async def hub_renew(ctx: CallContext) -> dict[str, Any]:
    return await push.renew(ctx)


@hookimpl
async def hub_before_disconnect(ctx: CallContext) -> dict[str, Any]:
    return await push.stop_all(ctx)


async def watch_calendar(ctx: CallContext) -> dict[str, Any]:
    return await push.watch_calendar(ctx, sync)


@hookimpl
def hub_sandbox() -> Sandbox:
    from .fake import FakeGoogle

    fake = FakeGoogle(client_id="sandbox-google-client", client_secret="sandbox-google-secret")
    return Sandbox(app=fake.make_app(), settings=fake.hub_settings)


# --- actions -------------------------------------------------------------------------


async def list_calendars(ctx: CallContext) -> dict[str, Any]:
    body = _object((await ctx.http.get("users/me/calendarList", params=ctx.input)).json())
    return {"items": body.get("items", []), "nextPageToken": body.get("nextPageToken")}


async def list_events(ctx: CallContext) -> dict[str, Any]:
    params = {k: v for k, v in ctx.input.items() if k != "calendarId"}
    body = _object((await ctx.http.get(f"{_calendar(ctx)}/events", params=params)).json())
    return {"items": body.get("items", []), "nextPageToken": body.get("nextPageToken"), "timeZone": body.get("timeZone")}


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_time_zone(zone: Any, field: str) -> None:
    if zone is not None and zone not in _iana_zones():
        raise hub.ValidationFailed(f"{field}: {zone!r} is not an IANA time zone (such as Europe/Berlin)", details={"field": field})


def check_event_times(data: Mapping[str, Any]) -> None:
    """Refuse here what Google would refuse for its format: a time zone that is not an IANA
    name, and a start and end of different kinds (one all-day, one timed)."""
    for key in ("start", "end"):
        check_time_zone((data.get(key) or {}).get("timeZone"), f"{key}.timeZone")
    start, end = data.get("start"), data.get("end")
    if start and end and ("date" in start) != ("date" in end):
        raise hub.ValidationFailed("end: start and end must both be dates (all-day) or both be dateTimes",
                                   details={"field": "end"})


async def create_event(ctx: CallContext) -> Any:
    check_event_times(ctx.input)
    event = {k: v for k, v in ctx.input.items() if k not in ("calendarId", "sendUpdates")}
    return (await ctx.http.post(f"{_calendar(ctx)}/events", params=_send_updates(ctx), json=event)).json()


async def update_event(ctx: CallContext) -> Any:
    check_event_times(ctx.input)
    changes = {k: v for k, v in ctx.input.items() if k not in ("calendarId", "sendUpdates", "event_id")}
    path = _event(ctx)
    return (await ctx.http.request("PATCH", path, params=_send_updates(ctx), json=changes)).json()


async def delete_event(ctx: CallContext) -> dict[str, Any]:
    await ctx.http.request("DELETE", _event(ctx), params=_send_updates(ctx))
    return {"deleted": True, "id": ctx.input["event_id"]}


async def availability(ctx: CallContext) -> dict[str, Any]:
    data = ctx.input
    check_time_zone(data.get("timeZone"), "timeZone")
    field = "timeMin"
    try:
        start = parse_instant(data["timeMin"])
        field = "timeMax"
        end = parse_instant(data["timeMax"])
        field = "workdayEnd"
        hours = WorkingHours(
            start=time.fromisoformat(data.get("workdayStart", "09:00")),
            end=time.fromisoformat(data.get("workdayEnd", "17:00")),
            days=frozenset(data.get("workingDays", (0, 1, 2, 3, 4))),
        )
    except ValueError as exc:
        field = "workingDays" if "working days" in str(exc) else field
        raise hub.ValidationFailed(f"{field}: {exc}", details={"field": field}) from None
    # Refused here, before asking Google: an empty range, or one longer than free_slots reads.
    if end <= start or end - start > MAX_RANGE:
        raise hub.ValidationFailed(f"timeMax: must be after timeMin, by at most {MAX_RANGE.days} days", details={"field": "timeMax"})
    calendars = data.get("calendarIds") or ["primary"]
    zone = data.get("timeZone") or await _primary_time_zone(ctx)
    body = {"timeMin": data["timeMin"], "timeMax": data["timeMax"], "items": [{"id": c} for c in calendars]}
    # A freeBusy query changes nothing, so it may be retried like a read.
    answer = _object((await ctx.http.post("freeBusy", json=body, retry=True)).json())
    busy: list[Mapping[str, str]] = []
    for calendar_id, entry in (answer.get("calendars") or {}).items():
        if entry.get("errors"):
            reason = entry["errors"][0].get("reason", "unknown")
            status, code = {"notFound": (404, "provider_not_found"), "forbidden": (403, "provider_forbidden")}.get(reason, (None, None))
            raise ProviderError(f"Google Calendar could not read calendar {calendar_id!r}: {reason}", provider_code=reason, status=status, code=code)
        busy.extend(entry.get("busy") or ())
    try:
        slots = free_slots(start, end, busy, tz=zone, hours=hours, minimum=timedelta(minutes=data.get("minimumMinutes", 30)))
    except ValueError as exc:
        raise hub.BadRequest(f"invalid input: {exc}") from None
    return {"timeZone": zone, "slots": to_json(slots, zone), "busy": busy}


async def sync(ctx: CallContext) -> dict[str, Any]:
    """Bring the caller's view up to date: changes since the stored sync token, or
    everything when there is none (or Google has forgotten it: 410 fullSyncRequired)."""
    calendar = ctx.input.get("calendarId", "primary")
    cursors = dict(ctx.state.get("syncTokens") or {})
    cursor = None if ctx.input.get("full") else cursors.get(calendar)
    resynced = False
    try:
        changed, deleted, next_cursor = await _collect(ctx, calendar, cursor)
    except SyncTokenGone:
        resynced = True
        changed, deleted, next_cursor = await _collect(ctx, calendar, None)
    cursors[calendar] = next_cursor
    ctx.update_state(syncTokens=cursors)
    ctx.mark_synced = True
    return {
        "calendarId": calendar,
        "incremental": cursor is not None and not resynced,
        "fullResync": resynced,
        "changed": len(changed),
        "deleted": len(deleted),
        "events": changed,
        "deletedIds": deleted,
    }


async def _collect(ctx: CallContext, calendar: str, cursor: str | None) -> tuple[list[Any], list[str], str | None]:
    changed: list[Any] = []
    deleted: list[str] = []
    page: str | None = None
    while True:
        params: dict[str, Any] = {"maxResults": 250, "pageToken": page}
        if cursor:
            params["syncToken"] = cursor  # repeated with every page, as Google requires
        body = _object((await ctx.http.get(f"{_calendar(ctx, calendar)}/events", params=params)).json())
        for event in body.get("items") or ():
            (deleted.append(event["id"]) if event.get("status") == "cancelled" else changed.append(event))
        page = body.get("nextPageToken")
        # A page may be short, or empty, while more remain: only a missing token ends it.
        if not page:
            return changed, deleted, body.get("nextSyncToken")


# --- helpers -------------------------------------------------------------------------


async def _primary_time_zone(ctx: CallContext) -> str:
    entry = _object((await ctx.http.get("users/me/calendarList/primary")).json())
    return str(entry.get("timeZone") or "UTC")


def _calendar(ctx: CallContext, calendar: str | None = None) -> str:
    # Through the hub's path builder: an id such as ".." must not climb out of calendars/.
    return ctx.http.path("calendars/{calendarId}", calendarId=calendar or ctx.input.get("calendarId", "primary"))


def _event(ctx: CallContext) -> str:
    return f"{_calendar(ctx)}/{ctx.http.path('events/{event_id}', event_id=ctx.input['event_id'])}"


def _send_updates(ctx: CallContext) -> dict[str, str] | None:
    return {"sendUpdates": ctx.input["sendUpdates"]} if "sendUpdates" in ctx.input else None


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedResponse("Google Calendar answered with something that is not a JSON object")
    return body


def _google_error(response: UpstreamResponse) -> tuple[str | None, str | None]:
    """Google's error body: key on the reason, never on the message text."""
    try:
        body = response.json()
    except MalformedResponse:
        return None, None
    if not isinstance(body, Mapping):
        return None, None
    err = body.get("error")
    if isinstance(err, Mapping):
        errors = err.get("errors") or [{}]
        reason = errors[0].get("reason") if isinstance(errors[0], Mapping) else None
        return reason or err.get("status"), str(err.get("message") or "")[:300] or None
    if isinstance(err, str):  # the OAuth endpoints' flat shape
        return err, str(body.get("error_description") or "")[:300] or None
    return None, None

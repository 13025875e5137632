"""Google Calendar push notifications: watching a calendar (actions), receiving what the
channel sends (``hub_webhook``), turning a change notification into an incremental sync
(``hub_webhook_follow_up``), renewing channels before they expire (``hub_renew``) and
stopping them when the integration is disconnected (``hub_before_disconnect``).

``POST calendars/{calendarId}/events/watch`` with ``{id, type: "web_hook", address, token,
params: {ttl}}`` opens a channel; Google answers ``{id, resourceId, resourceUri, expiration}``
(milliseconds since the epoch) and then POSTs to ``address`` with an empty body and
``X-Goog-*`` headers: ``sync`` once, then ``exists`` whenever the calendar's events change.
Google signs nothing: the proof is the channel token echoed in ``X-Goog-Channel-Token``. Each
channel gets a fresh random token; the integration's state keeps only its SHA-256, and a
message is accepted only when its channel is one the integration holds, its resource id is
the channel's and its token hashes to the stored one (compared in constant time).

The state: ``channels`` (channel id -> calendarId, resourceId, expiration in ms, tokenHash),
``watch_channels`` (the ids, which route a message to its integration) and, from ``sync``,
``syncTokens``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hub import CallContext, ProviderAuthError, ProviderError, WebhookEvent, WebhookRejected, WebhookRequest, WebhookResult, same_digest

from .schemas import CALENDAR_ID

TTL = {"type": "integer", "minimum": 300, "maximum": 604800,
       "description": "seconds the channel should live; Google's default (and usual maximum) is 604800, a week"}
WATCH = {"type": "object", "additionalProperties": False, "properties": {"calendarId": CALENDAR_ID, "ttl": TTL}}
UNWATCH = {"type": "object", "additionalProperties": False, "properties": {"calendarId": CALENDAR_ID}}
CHANNEL = {
    "type": "object", "required": ["channelId", "calendarId", "resourceId", "expiresAt"],
    "properties": {"channelId": {"type": "string"}, "calendarId": {"type": "string"}, "resourceId": {"type": "string"},
                   "expiresAt": {"type": "string", "format": "date-time"}},
}
UNWATCHED = {
    "type": "object", "required": ["calendarId", "stopped"],
    "properties": {"calendarId": {"type": "string"}, "stopped": {"type": "array", "items": {"type": "string"}}},
}
WATCH_EXAMPLES = ({"calendarId": "primary"},)
UNWATCH_EXAMPLES = ({"calendarId": "primary"},)
MATCH = "state.watch_channels"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _expires_at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _channels(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(k): dict(v) for k, v in (state.get("channels") or {}).items() if isinstance(v, Mapping)}


def _keep(ctx: CallContext, channels: Mapping[str, Mapping[str, Any]]) -> None:
    """Store the channels, the ids that route messages, and when the first one must be renewed."""
    ctx.update_state(channels=dict(channels), watch_channels=sorted(channels))
    soonest = min((int(c["expiration"]) for c in channels.values()), default=None)
    ctx.renew_by(None if soonest is None else datetime.fromtimestamp(soonest / 1000, UTC))


# --- receiving ---------------------------------------------------------------------------


def receive(request: WebhookRequest) -> WebhookResult:
    channel_id = request.header("X-Goog-Channel-ID")
    token = request.header("X-Goog-Channel-Token")
    if not channel_id:
        raise WebhookRejected("X-Goog-Channel-ID: missing; not a Google Calendar push message")
    if not token:
        raise WebhookRejected("X-Goog-Channel-Token: missing; every channel the hub opens has a token")
    resource_id = request.header("X-Goog-Resource-ID") or ""
    state = (request.header("X-Goog-Resource-State") or "").lower()
    number = request.header("X-Goog-Message-Number") or ""
    digest = token_hash(token)

    def verify(stored: Mapping[str, Any]) -> bool:
        channel = _channels(stored).get(channel_id)
        return (channel is not None and same_digest(str(channel.get("tokenHash") or ""), digest)
                and same_digest(str(channel.get("resourceId") or ""), resource_id))

    match = {MATCH: channel_id}
    data = {"channelId": channel_id, "resourceState": state, "messageNumber": number}
    if state in ("exists", "not_exists"):
        return WebhookResult(events=(WebhookEvent(
            type="events_changed", match=match, data=data, dedupe_key=f"{channel_id}:{number}" if number else None,
            verify=verify, exclusive=True, follow_up=True,
        ),))
    # "sync" (the channel is live) and anything newer: checked, logged, nothing goes out.
    kind = "channel_sync" if state == "sync" else "channel_unknown"  # never an unchecked header in a name
    return WebhookResult(events=(WebhookEvent(type=kind, match=match, data=data, verify=verify, exclusive=True, quiet=True),))


async def follow_up(ctx: CallContext, event: WebhookEvent, sync: Any) -> dict[str, Any]:
    """An ``exists`` message: the calendar's changes since the stored sync token (all of it
    when Google has forgotten the token), as the event's data: ids, summaries and times."""
    channel = _channels(ctx.state).get(str(event.data.get("channelId")))
    if channel is None:  # stopped between the check and now
        return {**event.data, "changed": [], "deletedIds": []}
    ctx.input = {"calendarId": channel["calendarId"]}
    synced = await sync(ctx)
    changed = [{k: e.get(k) for k in ("id", "status", "summary", "start", "end", "updated", "htmlLink") if e.get(k) is not None}
               for e in synced["events"]]
    return {**event.data, "calendarId": channel["calendarId"], "fullResync": synced["fullResync"],
            "incremental": synced["incremental"], "changed": changed, "deletedIds": synced["deletedIds"]}


# --- watching ----------------------------------------------------------------------------


async def _open(ctx: CallContext, calendar: str, ttl: int | None) -> tuple[str, dict[str, Any]]:
    """A new channel on ``calendar``: its id, and what the state keeps of it."""
    token = secrets.token_urlsafe(32)
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "type": "web_hook", "address": ctx.webhook_url, "token": token}
    if ttl:
        body["params"] = {"ttl": str(ttl)}
    path = ctx.http.path("calendars/{calendarId}/events/watch", calendarId=calendar)
    answer = (await ctx.http.post(path, json=body)).json()
    return str(answer["id"]), {"calendarId": calendar, "resourceId": str(answer["resourceId"]), "ttl": ttl,
                               "expiration": int(answer["expiration"]), "tokenHash": token_hash(token)}


async def _stop(ctx: CallContext, channel_id: str, channel: Mapping[str, Any]) -> bool:
    """channels.stop; a channel Google no longer knows (expired, stopped) counts as stopped."""
    try:
        await ctx.http.post("channels/stop", json={"id": channel_id, "resourceId": channel["resourceId"]})
    except ProviderError as exc:
        if exc.code != "provider_not_found":
            raise
    return True


async def watch_calendar(ctx: CallContext, sync: Any) -> dict[str, Any]:
    """Open a channel on a calendar's events. Without a sync token for it yet, a full sync
    first, so the first change notification syncs from now rather than from the beginning."""
    calendar, ttl = ctx.input.get("calendarId", "primary"), ctx.input.get("ttl")
    if calendar not in (ctx.state.get("syncTokens") or {}):
        ctx.input = {"calendarId": calendar}
        await sync(ctx)
        ctx.state = {**ctx.state, **ctx.state_updates}
    channel_id, opened = await _open(ctx, calendar, ttl)
    _keep(ctx, {**_channels(ctx.state), channel_id: opened})
    return {"channelId": channel_id, "calendarId": calendar, "resourceId": opened["resourceId"],
            "expiresAt": _expires_at(opened["expiration"])}


async def unwatch_calendar(ctx: CallContext) -> dict[str, Any]:
    calendar = ctx.input.get("calendarId", "primary")
    channels = _channels(ctx.state)
    stopped = [cid for cid, c in channels.items() if c.get("calendarId") == calendar]
    for cid in stopped:
        await _stop(ctx, cid, channels.pop(cid))
    _keep(ctx, channels)
    return {"calendarId": calendar, "stopped": stopped}


async def renew(ctx: CallContext) -> dict[str, Any]:
    """Every channel: a new one first, then the old one stopped, so no change falls between.
    One that cannot be renewed now stays as it is (and is tried again) until it expires."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    channels = _channels(ctx.state)
    renewed: list[dict[str, str]] = []
    failed: list[str] = []
    error: ProviderError | None = None
    for cid, old in list(channels.items()):
        try:
            new_id, new = await _open(ctx, old["calendarId"], old.get("ttl"))
        except ProviderAuthError:
            raise  # the hub refreshes the token and calls again
        except ProviderError as exc:
            if int(old["expiration"]) <= now_ms:
                channels.pop(cid)  # gone at Google anyway
            failed.append(cid)
            error = exc
            continue
        channels[new_id] = new
        del channels[cid]
        try:
            await _stop(ctx, cid, old)
        except ProviderError:
            pass  # it expires on its own; its messages are refused from now on
        renewed.append({"calendarId": old["calendarId"], "old": cid, "new": new_id})
    if failed and not renewed and error is not None:
        raise error  # nothing changed: the hub tries again when its lease ends
    _keep(ctx, channels)
    return {"renewed": renewed, "failed": failed}


async def stop_all(ctx: CallContext) -> dict[str, Any]:
    channels = _channels(ctx.state)
    stopped = []
    for cid, channel in channels.items():
        try:
            await _stop(ctx, cid, channel)
            stopped.append(cid)
        except ProviderAuthError:
            raise  # the hub refreshes the token and calls again
        except ProviderError:
            pass  # best effort: it expires on its own, and the integration's state forgets it
    _keep(ctx, {})
    return {"stopped": stopped}

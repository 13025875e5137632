"""Google Calendar push notifications, for :class:`hub_google_calendar.fake.FakeGoogle`: both
ends of them.

* ``POST /calendar/v3/calendars/{calendarId}/events/watch`` with ``{id, type, address, token,
  params: {ttl}}`` opens a channel and answers ``{kind: "api#channel", id, resourceId,
  resourceUri, token, expiration}`` (``expiration`` in milliseconds since the epoch, as a
  string, as Google writes its 64-bit numbers). Refused as Google refuses: no ``id`` (400
  ``required``), an id taken before (400 ``channelIdNotUnique``), a ``type`` other than
  ``web_hook``/``webhook`` (400 ``push.channelTypeNotSupported``), no ``address`` (400
  ``required``), an ``http://`` address (400 ``push.webhookUrlNotHttps``, "WebHook callback
  must be HTTPS: ..."), a token over 256 characters, an unknown calendar (404 ``notFound``).
* ``POST /calendar/v3/channels/stop`` with ``{id, resourceId}``: 204; a channel unknown,
  already stopped or expired, or a ``resourceId`` that is not its own, is 404 ``notFound``.
* The sending side: on watch, the ``sync`` message (message number 1); then, for every insert,
  update or delete in a watched calendar (through the API or the seeding helpers), an
  ``exists`` message to each live channel on it with the next message number. A message is a
  POST with an empty body and the headers ``X-Goog-Channel-ID``, ``X-Goog-Channel-Token`` (when
  the channel has one), ``X-Goog-Channel-Expiration`` (an HTTP date), ``X-Goog-Resource-ID``,
  ``X-Goog-Resource-URI``, ``X-Goog-Resource-State`` and ``X-Goog-Message-Number``. Nothing is
  sent on a channel after it is stopped or past its expiration (read on the fake's clock).

Simplified: an ``http://`` address on a loopback host (127.0.0.1, ::1, localhost) is accepted,
so tests and ``hub sandbox`` work without TLS; any other ``http://`` address is refused as
Google refuses it. ``params.ttl`` is capped at Google's default of 604800 s (a week); the
``expiration`` field of the request is ignored. Domain verification, the 5xx-retry schedule
and ``not_exists`` are not imitated. Messages are queued and sent in order by a background
task (``auto_send``, the default); with ``auto_send = False`` they wait for
:meth:`CalendarPush.send_pending`, which tests use to decide when they arrive.
``POST /_fake/push`` (``{"calendarId": ...}``, default ``primary``) makes a running fake
notify as if the calendar changed, and sends what is queued: a sandbox's way to see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web

from .fake_rules import READ_EVENTS, GoogleError

DEFAULT_TTL = 604800  # seconds: Google's default channel lifetime, and the fake's cap
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class CalendarPush:
    """Mixed into FakeGoogle (before CalendarApi, whose writes it follows)."""

    api_path: str
    control_path: str | None
    clock: Any
    current_call: Any
    find_calendar: Any
    _authenticate: Any
    _json_body: Any

    def init_push(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self.used_channel_ids: set[str] = set()
        self.pushes: list[dict[str, Any]] = []  # every message sent, with the receiver's status
        self.auto_send = True
        self._pending: list[dict[str, Any]] = []
        self._sender: asyncio.Task[None] | None = None
        self._sent = asyncio.Condition()

    def add_push_routes(self, app: web.Application) -> None:
        app.router.add_post(self.api_path + "/calendars/{calendarId}/events/watch", self._watch)
        app.router.add_post(self.api_path + "/channels/stop", self._stop)
        if self.control_path:
            app.router.add_post(self.control_path + "/push", self._push_control)

    async def _push_control(self, request: web.Request) -> web.Response:
        """``POST /_fake/push`` (``{"calendarId": "primary"}`` optional): an ``exists`` message
        on every live channel of the calendar, as if it changed, and every queued message sent
        now; answers ``{"sent": [the receivers' statuses]}``. For the sandbox and browser tests."""
        try:
            body = await request.json() if (await request.text()).strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("calendarId", "primary"), str):
            return web.json_response({"error": "bad_request", "message": "the body must be {\"calendarId\": \"...\"} or empty"},
                                     status=400)
        calendar = self.find_calendar(body.get("calendarId", "primary"))
        if calendar is None:
            return web.json_response({"error": "not_found", "message": "no such calendar"}, status=404)
        self.changed(calendar["id"])
        return web.json_response({"sent": await self.send_pending()})

    # ------------------------------------------------------------------ the API

    async def _watch(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        calendar = self.find_calendar(request.match_info["calendarId"])
        if calendar is None:
            raise GoogleError(404, "notFound")
        body = await self._json_body(request)
        channel_id, kind, address, token = body.get("id"), body.get("type"), body.get("address"), body.get("token")
        if not isinstance(channel_id, str) or not channel_id:
            raise GoogleError(400, "required", "Required", location="id")
        if kind not in ("web_hook", "webhook"):
            raise GoogleError(400, "push.channelTypeNotSupported", f"Channel type '{kind}' is not supported.", domain="push")
        if not isinstance(address, str) or not address:
            raise GoogleError(400, "required", "Required", location="address")
        parts = urlsplit(address)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise GoogleError(400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}", domain="push")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise GoogleError(400, "invalid", "Invalid channel token.", location="token")
        if channel_id in self.used_channel_ids:
            raise GoogleError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique", domain="global")
        try:
            ttl = min(int((body.get("params") or {}).get("ttl") or DEFAULT_TTL), DEFAULT_TTL)
        except (TypeError, ValueError):
            raise GoogleError(400, "invalid", "Invalid value for: params.ttl", location="params.ttl") from None
        calendar_id = calendar["id"]
        channel = {
            "id": channel_id, "calendarId": calendar_id, "address": address, "token": token,
            "resourceId": hashlib.sha256(f"events {calendar_id}".encode()).hexdigest()[:27],
            "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{quote(calendar_id, safe='')}/events?alt=json",
            "expiration": int((self.clock() + max(ttl, 1)) * 1000), "messages": 0,
        }
        self.used_channel_ids.add(channel_id)
        self.channels[channel_id] = channel
        self._enqueue(channel, "sync")
        answer = {"kind": "api#channel", "id": channel_id, "resourceId": channel["resourceId"],
                  "resourceUri": channel["resourceUri"], "expiration": str(channel["expiration"])}
        if token is not None:
            answer["token"] = token
        return web.json_response(answer)

    async def _stop(self, request: web.Request) -> web.Response:
        self._authenticate(request, READ_EVENTS)
        body = await self._json_body(request)
        channel = self.channels.get(str(body.get("id") or ""))
        if channel is None or not self._live(channel) or channel["resourceId"] != body.get("resourceId"):
            raise GoogleError(404, "notFound", f"Channel '{body.get('id')}' not found for project 'fake'")
        del self.channels[channel["id"]]
        return web.Response(status=204)

    # ------------------------------------------------------------------ following the calendar's writes

    def create_event(self, calendar: dict[str, Any], body: dict[str, Any], seeding: bool = False) -> dict[str, Any]:
        event = super().create_event(calendar, body, seeding)  # type: ignore[misc]
        self.changed(calendar["id"])
        return event  # type: ignore[no-any-return]

    def apply_patch(self, calendar: dict[str, Any], event: dict[str, Any], body: dict[str, Any], seeding: bool = False) -> dict[str, Any]:
        patched = super().apply_patch(calendar, event, body, seeding)  # type: ignore[misc]
        self.changed(calendar["id"])
        return patched  # type: ignore[no-any-return]

    async def _events_delete(self, request: web.Request) -> web.Response:
        answer: web.Response = await super()._events_delete(request)  # type: ignore[misc]
        self.cancelled(self.find_calendar(request.match_info["calendarId"])["id"])
        return answer

    def cancelled(self, calendar_id: str) -> None:
        """A delete (the API's or the seeding helper's) in ``calendar_id``."""
        self.changed(calendar_id)

    def changed(self, calendar_id: str) -> None:
        for channel in list(self.channels.values()):
            if channel["calendarId"] == calendar_id and self._live(channel):
                self._enqueue(channel, "exists")

    # ------------------------------------------------------------------ sending

    def _live(self, channel: dict[str, Any]) -> bool:
        return bool(self.clock() * 1000 < channel["expiration"])

    def _enqueue(self, channel: dict[str, Any], state: str) -> None:
        channel["messages"] += 1
        headers = {
            "X-Goog-Channel-ID": channel["id"],
            "X-Goog-Channel-Expiration": formatdate(channel["expiration"] / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel["resourceId"],
            "X-Goog-Resource-URI": channel["resourceUri"],
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel["messages"]),
        }
        if channel["token"] is not None:
            headers["X-Goog-Channel-Token"] = channel["token"]
        self._pending.append({"channel": channel["id"], "address": channel["address"], "headers": headers})
        if self.auto_send and (self._sender is None or self._sender.done()):
            self._sender = asyncio.get_running_loop().create_task(self.send_pending())

    async def send_pending(self) -> list[int]:
        """Send every queued message, in order; the receivers' statuses (0: no answer). A message
        whose channel was stopped or has expired since it was queued is dropped."""
        statuses: list[int] = []
        while self._pending:
            message = self._pending.pop(0)
            channel = self.channels.get(message["channel"])
            if channel is None or not self._live(channel):
                continue
            try:
                async with aiohttp.ClientSession() as session, \
                        session.post(message["address"], data=b"", headers=message["headers"]) as resp:
                    status = resp.status
            except aiohttp.ClientError:
                status = 0
            statuses.append(status)
            async with self._sent:
                self.pushes.append({**message, "status": status})
                self._sent.notify_all()
        return statuses

    async def stop(self) -> None:
        """Stop sending (a message in flight is dropped), then stop serving."""
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await super().stop()  # type: ignore[misc]

    async def wait_for_pushes(self, count: int) -> list[dict[str, Any]]:
        """Until ``count`` messages have been sent in all (answered or not); the messages."""
        async with self._sent:
            await self._sent.wait_for(lambda: len(self.pushes) >= count)
        return self.pushes

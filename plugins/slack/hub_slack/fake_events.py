"""The sending side of Slack's Events API, for :class:`hub_slack.fake.FakeSlack`.

As Slack does: a JSON body, ``X-Slack-Request-Timestamp`` (Unix seconds) and
``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the app's
signing secret), POSTed to the app's Request URL. :meth:`SlackEvents.verify_url` sends the
``url_verification`` challenge Slack sends when the URL is entered in the app's settings.
``at`` lets a test send a request stamped at another time (a replay, a skewed clock).

Over HTTP, for a sandbox or a process that does not share the fake's memory (the control
routes, under ``/_fake``):

* ``POST /_fake/events/request_url`` ``{"url": ...}``: what entering the Request URL in the
  app's settings does: the ``url_verification`` challenge is sent to it, and the URL is kept
  only when the challenge comes back (else 400, as Slack's settings page refuses it).
* ``POST /_fake/events/send`` ``{"type": "message", "channel", "text", "user"}`` (every field
  optional; ``team_id`` defaults to the fake's team): an ``event_callback`` as if someone did
  that in Slack, signed and sent to the kept Request URL (409 before one is set); answers
  the receiver's status.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

from .events import signature

# The fields of ``POST /_fake/events/send`` and their defaults.
_SEND_DEFAULTS = {"type": "message", "channel": "C0000000001", "text": "hello from the fake Slack", "user": "U0000000001"}


class SlackEvents:
    signing_secret = "fake-slack-signing-secret-0000"
    app_id = "A0FAKEAPP01"
    bot_user_id = "U0FAKEBOT01"

    # Every request sent, as {"url", "body", "headers"}.
    sent: list[dict[str, Any]]
    # The app's Request URL, once verified through the control route.
    request_url: str | None = None
    control_path: str | None
    account: dict[str, Any]

    def add_event_routes(self, app: web.Application) -> None:
        if self.control_path:
            app.router.add_post(f"{self.control_path}/events/request_url", self._set_request_url)
            app.router.add_post(f"{self.control_path}/events/send", self._send_control)

    async def _set_request_url(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        url = body.get("url") if body is not None else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _problem(400, "the body must be {\"url\": \"http(s)://...\"}: the app's Request URL")
        try:
            verified = await self.verify_url(url)
        except aiohttp.ClientError:
            verified = False
        if not verified:
            return _problem(400, f"{url} did not answer the url_verification challenge with it")
        self.request_url = url
        return web.json_response({"ok": True, "request_url": url})

    async def _send_control(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if body is None:
            return _problem(400, "the body must be a JSON object (type, channel, text, user, team_id; all optional)")
        unknown = sorted(set(body) - {*_SEND_DEFAULTS, "team_id"})
        if unknown:
            return _problem(400, f"send takes no field {unknown[0]!r}")
        if any(not isinstance(v, str) or not v for v in body.values()):
            return _problem(400, "every field must be a non-empty string")
        if self.request_url is None:
            return _problem(409, "no Request URL yet: POST it to /_fake/events/request_url first")
        event = {**_SEND_DEFAULTS, **{k: v for k, v in body.items() if k != "team_id"}}
        event["ts"] = f"{time.time():.6f}"
        status, _ = await self.send_event(self.request_url, event, team_id=body.get("team_id") or self.account["team_id"])
        return web.json_response({"ok": True, "status": status})

    def signed(self, body: bytes, at: float | None = None) -> dict[str, str]:
        stamp = str(int(time.time() if at is None else at))
        return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature(self.signing_secret, stamp, body)}

    def event_body(self, event: dict[str, Any], *, team_id: str, user_id: str | None = None, event_id: str | None = None) -> bytes:
        """An ``event_callback`` as Slack wraps an event for one installation."""
        body = {
            "token": "fake-verification-token", "team_id": team_id, "api_app_id": self.app_id, "event": event,
            "type": "event_callback", "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": user_id or self.bot_user_id,
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
        }
        return json.dumps(body).encode()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if not hasattr(self, "sent"):
            self.sent = []
        self.sent.append({"url": url, "body": body, "headers": headers})
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    async def send_event(self, url: str, event: dict[str, Any], *, team_id: str, user_id: str | None = None,
                         event_id: str | None = None, at: float | None = None) -> tuple[int, str]:
        """Sign and POST one event to ``url``, as Slack delivers it. Returns (status, body text)."""
        body = self.event_body(event, team_id=team_id, user_id=user_id, event_id=event_id)
        return await self.post(url, body, self.signed(body, at))

    async def verify_url(self, url: str) -> bool:
        """Slack's check of a new Request URL: True when the challenge came back, as Slack requires."""
        challenge = secrets.token_urlsafe(24)
        body = json.dumps({"token": "fake-verification-token", "challenge": challenge, "type": "url_verification"}).encode()
        status, text = await self.post(url, body, self.signed(body))
        return status == 200 and text == challenge


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    raw = await request.text()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": "bad_request" if status == 400 else "conflict", "message": message}, status=status)

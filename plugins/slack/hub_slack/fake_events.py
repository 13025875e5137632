"""The sending side of Slack's Events API, for :class:`hub_slack.fake.FakeSlack`.

As Slack does: a JSON body, ``X-Slack-Request-Timestamp`` (Unix seconds) and
``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the app's
signing secret), POSTed to the app's Request URL. :meth:`SlackEvents.verify_url` sends the
``url_verification`` challenge Slack sends when the URL is entered in the app's settings.
``at`` lets a test send a request stamped at another time (a replay, a skewed clock).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import aiohttp

from .events import signature


class SlackEvents:
    signing_secret = "fake-slack-signing-secret-0000"
    app_id = "A0FAKEAPP01"
    bot_user_id = "U0FAKEBOT01"

    # Every request sent, as {"url", "body", "headers"}.
    sent: list[dict[str, Any]]

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

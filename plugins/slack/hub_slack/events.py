"""Slack's Events API, received by the hub (``hub_webhook``).

Slack signs every request with the app's signing secret: ``X-Slack-Signature`` is ``v0=`` +
hex HMAC-SHA256 over ``v0:{X-Slack-Request-Timestamp}:{raw body}``, and a timestamp more
than five minutes from the hub's clock is refused, so a captured request cannot be replayed
later. A new Request URL is first sent ``{"type": "url_verification", "challenge": ...}``,
answered with the challenge. An ``event_callback`` is routed by its ``team_id`` and, per
entry of ``authorizations``, the installation's user (the bot user for a bot token): the
integrations whose account metadata have that ``teamId`` and ``accountId``. Slack retries a
delivery it got no 2xx for with the same ``event_id``; the hub emits it once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hub import Provider, WebhookAnswer, WebhookEvent, WebhookRejected, WebhookRequest, WebhookResult, same_digest

WINDOW_SECONDS = 5 * 60


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``v0=`` signature of ``body`` sent at ``timestamp`` (Unix seconds, as text)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str | None, request: WebhookRequest) -> None:
    if not secret:
        raise WebhookRejected("Slack webhooks need providers.slack.signing_secret (the app's Signing Secret)")
    stamp = request.header("X-Slack-Request-Timestamp")
    given = request.header("X-Slack-Signature")
    if not stamp or not given:
        raise WebhookRejected("X-Slack-Signature and X-Slack-Request-Timestamp are required")
    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookRejected("X-Slack-Request-Timestamp: must be Unix seconds") from None
    if abs(request.received_at.timestamp() - sent) > WINDOW_SECONDS:
        raise WebhookRejected("X-Slack-Request-Timestamp: outside the five-minute window (a replay, or a clock far off)")
    if not same_digest(signature(secret, stamp, request.body), given):
        raise WebhookRejected("X-Slack-Signature: does not match the body")


def receive(provider: Provider, request: WebhookRequest) -> WebhookResult:
    verify(provider.settings.get("signing_secret"), request)
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return WebhookResult()  # signed, but nothing Slack sends: no event
    if body.get("type") == "url_verification":
        return WebhookResult(answer=WebhookAnswer(200, str(body.get("challenge") or ""), "text/plain"))
    event = body.get("event")
    team = body.get("team_id")
    if body.get("type") != "event_callback" or not isinstance(event, dict) or not team or not event.get("type"):
        return WebhookResult()
    data: dict[str, Any] = {"teamId": team, "eventId": body.get("event_id"), "eventTime": body.get("event_time"),
                            "apiAppId": body.get("api_app_id"), "event": event}  # never body["token"]
    users = sorted({str(a.get("user_id")) for a in body.get("authorizations") or () if isinstance(a, dict) and a.get("user_id")})
    matches = [{"teamId": str(team), "accountId": user} for user in users] or [{"teamId": str(team)}]
    return WebhookResult(events=tuple(
        WebhookEvent(type=str(event["type"]), match=m, data=data, dedupe_key=body.get("event_id")) for m in matches
    ))

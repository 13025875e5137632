"""What crosses the plugin boundary for provider webhooks in (docs/plugins.md, ``hub_webhook``).

The core reads an inbound request to ``/api/integrations/<provider>/webhook`` (body capped,
nothing parsed) into a :class:`WebhookRequest` and hands it to the provider's plugin, which
checks the provider's signature and answers a :class:`WebhookResult`: either a direct
answer (a URL check such as Slack's ``url_verification``) or the events it carries, each
saying how to find the integrations it concerns. A request whose signature is missing,
wrong or too old is refused by raising :class:`hub.WebhookRejected`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class WebhookRequest:
    """One inbound request, as received. ``headers`` has lower-case names; ``body`` is the
    raw bytes (verify signatures over these, never over re-encoded JSON); ``url`` is the
    address the provider was told to call (the hub's ``public_url`` + the path), which some
    providers (Trello) sign; ``received_at`` is the hub's clock, for replay windows."""

    method: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str]
    url: str
    received_at: datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class WebhookEvent:
    """One provider event carried by a request.

    ``type`` is the provider's own event name (``message``, ``updateCard``); the hub emits
    it as ``<provider>.<type>``. ``match`` says which integrations it concerns: every pair
    must equal the integration's stored account metadata (``teamId``, ``accountId``, …), or,
    for a key written ``state.<name>``, the plugin's own state of it (what an action stored
    with ``CallContext.update_state``). ``data`` goes out as the event's ``data.event``: no
    secrets. ``dedupe_key`` (the provider's event id) makes a redelivery of the same event
    to the same integration a no-op.

    For providers whose proof is per integration rather than per app (Google's channel
    token), three optional fields, all additive:

    ``verify`` is called with each matching integration's plugin state (what
    ``CallContext.update_state`` stored) and must answer true for the event to reach it:
    the place to compare a per-integration secret, in constant time (:func:`same_digest`).
    ``exclusive`` makes the whole request refused (401 ``webhook_rejected``, nothing
    stored) when the event reaches no integration at all, instead of accepted with
    ``routed: 0``. ``follow_up`` asks the core to call the plugin's
    ``hub_webhook_follow_up`` for each integration the event reaches, as an action would
    run (the integration's token, its state), before emitting; what it returns becomes
    the event's ``data``. ``quiet`` events are verified, routed and logged as activity
    but emit nothing (a provider's "channel is live" ping).
    """

    type: str
    match: Mapping[str, str]
    data: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    verify: Callable[[Mapping[str, Any]], bool] | None = field(default=None, compare=False)
    exclusive: bool = False
    follow_up: bool = False
    quiet: bool = False


@dataclass(frozen=True)
class WebhookAnswer:
    """A direct answer to the provider (a challenge or a URL check); nothing is stored."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class WebhookResult:
    """What ``hub_webhook`` returns: an ``answer``, or ``events`` (possibly none, for a
    request that is genuine but reports nothing the hub routes)."""

    events: tuple[WebhookEvent, ...] = ()
    answer: WebhookAnswer | None = None

    def __post_init__(self) -> None:
        if isinstance(self.events, list):
            object.__setattr__(self, "events", tuple(self.events))


def same_digest(expected: str | bytes, given: str | bytes | None) -> bool:
    """Compare a computed signature with the one received, in constant time."""
    if given is None:
        return False
    a = expected.encode() if isinstance(expected, str) else expected
    b = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(a, b)

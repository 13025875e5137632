"""Writing an event into the outbox, inside the transaction that makes the change it reports.

:meth:`Outbox.emit` adds the event and one delivery per subscriber that asked for its type
to the caller's session; nothing is sent from here. If the change rolls back, so does its
event; if it commits, the event is stored and some process delivers it (hub/events/sender.py).
Provider events (inbound webhooks) are emitted through the same method with their own type
and ``data``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..infra.eventsconfig import EventsConfig
from ..store.models import Event, EventDelivery, Integration, iso_utc, utcnow

PENDING, DELIVERED, DEAD, NO_SUBSCRIBERS = "PENDING", "DELIVERED", "DEAD", "NO_SUBSCRIBERS"
EVENT_STATUSES = (PENDING, DELIVERED, DEAD, NO_SUBSCRIBERS)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


class Outbox:
    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        # What "now" is for stamping and scheduling events; tests move it.
        self.clock: Callable[[], datetime] = utcnow

    def subscribers_for(self, event_type: str) -> list[str]:
        return [name for name, sub in self.config.subscribers.items() if sub.enabled and sub.wants(event_type)]

    async def emit(
        self,
        session: AsyncSession,
        integration: Integration,
        event_type: str,
        *,
        reason: str | None,
        previous: str | None = None,
        data: Mapping[str, Any] | None = None,
        once_key: str | None = None,
    ) -> Event:
        """Add an event about ``integration`` (flushed, so it has an id) to ``session``.

        ``data`` adds fields to the payload's ``data`` (a provider event's own); it must hold
        nothing secret, since the payload is stored and sent as it is."""
        if integration.id is None:
            raise ValueError("emit after the integration row is flushed: the event names its id")
        now = self.clock()
        event_id = new_event_id()
        body: dict[str, Any] = {
            "userId": integration.user_id,
            "provider": integration.provider,
            "integrationId": integration.id,
            "status": integration.status,
            "previousStatus": previous,
            "reason": reason,
        }
        if data:
            body.update(data)
        payload = {"id": event_id, "type": event_type, "timestamp": iso_utc(now), "data": body}
        subscribers = self.subscribers_for(event_type)
        event = Event(
            event_id=event_id,
            type=event_type,
            user_id=integration.user_id,
            provider=integration.provider,
            integration_id=integration.id,
            status=PENDING if subscribers else NO_SUBSCRIBERS,
            payload=payload,
            once_key=once_key,
            created_at=now,
        )
        session.add(event)
        if subscribers:
            await session.flush()
            session.add_all(
                EventDelivery(event_id=event.id, subscriber=name, integration_id=integration.id, state=PENDING, attempts=0,
                              next_attempt_at=now, created_at=now)
                for name in subscribers
            )
        return event

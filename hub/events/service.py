"""The events room's face to the composition root, the API and the CLI: the outbox the core
writes through, the delivery loop and the expiry sweep each process runs, and the reads and
redeliveries an operator or a host asks for."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..activity import ActivityWriter
from ..errors import NotFound, ValidationFailed
from ..infra.eventsconfig import EventsConfig
from ..infra.periodic import Periodic
from ..store.models import Event, EventDelivery, iso_utc
from .deliveries import DeliveryStore
from .expiring import ExpiringSweep
from .outbox import Outbox
from .sender import Deliverer

log = logging.getLogger("hub.events")


class EventService:
    def __init__(self, config: EventsConfig, sessions: async_sessionmaker[AsyncSession], writer: ActivityWriter) -> None:
        self.config = config
        self.outbox = Outbox(config)
        self.deliveries = DeliveryStore(sessions)
        self.deliverer = Deliverer(config, self.deliveries, writer, lambda: self.outbox.clock())
        self.expiring = ExpiringSweep(config, sessions, self.outbox)
        self._loops = [
            Periodic("event delivery", self.deliverer.run_once, config.delivery_interval_seconds, jitter=0.2),
            Periodic("token expiry sweep", self.expiring.sweep, config.expiring_sweep_seconds, jitter=0.2),
            Periodic("event prune", self._prune_pass, config.prune_interval_seconds, jitter=0.2),
        ]

    async def start(self) -> None:
        for loop in self._loops:
            if loop.interval > 0 and (loop.job != self.deliverer.run_once or self.config.subscribers):
                await loop.start()

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()
        await self.deliverer.close()

    async def page(self, *, user_id: str | None, event_type: str | None = None, status: str | None = None,
                   limit: int = 50, cursor: str | None = None) -> tuple[list[tuple[Event, list[EventDelivery]]], str | None]:
        """Events newest first, each with its deliveries, and the next page's cursor."""
        return await self.deliveries.page(user_id=user_id, event_type=event_type, status=status, limit=limit, cursor=cursor)

    async def retry(self, event_ids: Sequence[str], *, all_dead: bool = False) -> int:
        if not all_dead:
            await self._known(event_ids)
        return await self.deliveries.retry(event_ids, dead=all_dead, now=self.outbox.clock())

    async def replay(self, event_ids: Sequence[str], subscribers: Sequence[str] | None = None) -> int:
        await self._known(event_ids)
        names = list(subscribers) if subscribers else [n for n, s in self.config.subscribers.items() if s.enabled]
        unknown = sorted(set(names) - set(self.config.subscribers))
        if unknown:
            raise ValidationFailed(f"subscriber: {unknown[0]} is not in events.subscribers (known: {', '.join(self.config.subscribers) or 'none'})")
        return await self.deliveries.replay(event_ids, names, self.outbox.clock())

    async def enable(self, name: str) -> None:
        if name not in self.config.subscribers:
            raise ValidationFailed(f"subscriber: {name} is not in events.subscribers (known: {', '.join(self.config.subscribers) or 'none'})")
        await self.deliveries.set_disabled(name, None, None)

    async def subscriber_states(self) -> dict[str, Any]:
        stored = await self.deliveries.subscribers()
        return {
            name: {"url": sub.url, "events": sub.events, "enabled": sub.enabled,
                   "disabledAt": iso_utc(stored[name].disabled_at) if name in stored else None,
                   "disabledReason": stored[name].disabled_reason if name in stored else None}
            for name, sub in self.config.subscribers.items()
        }

    async def removed_subscribers(self) -> dict[str, int]:
        """Subscribers no longer in the config that still have deliveries waiting, with how
        many: nothing sends them; the prune deletes their events after the retention."""
        return await self.deliveries.pending_elsewhere(list(self.config.subscribers))

    async def prune(self, days: int | None = None) -> int:
        keep = days or self.config.retention_days
        return await self.deliveries.prune(self.outbox.clock() - timedelta(days=keep), list(self.config.subscribers))

    async def _prune_pass(self) -> None:
        pruned = await self.prune()
        if pruned:
            log.info("events retention: %d event(s) older than %d days pruned", pruned, self.config.retention_days)

    @property
    def prune_passes(self) -> Periodic:
        return self._loops[2]

    async def _known(self, event_ids: Sequence[str]) -> None:
        missing = sorted(set(event_ids) - await self.deliveries.known(event_ids))
        if missing:
            raise NotFound(f"event {missing[0]}: no such event")


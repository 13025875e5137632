"""The outbox's tables, as the delivery loop, the API and the CLI use them.

Claiming is a compare-and-swap on a delivery's lease, so on any number of processes and on
either database one process holds a delivery at a time; the candidates are read first (on
PostgreSQL skipping rows another claim has locked). A delivery is a candidate only when no
earlier delivery of the same integration to the same subscriber is still pending: an
integration's events reach a subscriber in the order they happened.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from ..activity import decode_cursor, encode_cursor
from ..store.models import Event, EventDelivery, EventSubscriber
from .outbox import DEAD, DELIVERED, NO_SUBSCRIBERS, PENDING


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds the lease of, with what it sends."""

    id: int
    owner: str
    subscriber: str
    attempts: int
    event_id: str
    event_type: str
    integration_id: int | None
    provider: str
    payload: Any


@dataclass(frozen=True)
class Outcome:
    state: str  # PENDING (to try again), DELIVERED or DEAD
    attempts: int
    next_attempt_at: datetime
    status: int | None
    error: str | None
    delivered_at: datetime | None = None


class DeliveryStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def claim(self, subscribers: Sequence[str], now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Take the leases of up to ``limit`` due deliveries to ``subscribers``, oldest first."""
        if not subscribers:
            return []
        d, p = aliased(EventDelivery), aliased(EventDelivery)
        earlier = exists().where(p.subscriber == d.subscriber, p.integration_id == d.integration_id, p.state == PENDING, p.id < d.id)
        query = (
            select(d.id)
            .where(
                d.state == PENDING,
                d.subscriber.in_(list(subscribers)),
                d.next_attempt_at <= now,
                or_(d.lease_until.is_(None), d.lease_until <= now),
                ~earlier,
            )
            .order_by(d.id)
            .limit(limit)
        )
        owner = secrets.token_hex(8)
        if self.sessions.kw["bind"].dialect.name == "postgresql":
            # One transaction: rows another process is claiming right now are skipped, not waited for.
            async with self.sessions.begin() as session:
                ids = list((await session.scalars(query.with_for_update(skip_locked=True, of=d))).all())
                await _lease(session, ids, owner, now, lease)
        else:
            # SQLite: read, then one conditional UPDATE (a read turned into a write inside
            # one transaction fails outright when another writer went first).
            async with self.sessions() as session:
                ids = list((await session.scalars(query)).all())
            if ids:
                async with self.sessions.begin() as session:
                    await _lease(session, ids, owner, now, lease)
        if not ids:
            return []
        async with self.sessions() as session:
            rows = await session.execute(
                select(EventDelivery, Event)
                .join(Event, Event.id == EventDelivery.event_id)
                .where(EventDelivery.id.in_(ids), EventDelivery.lease_owner == owner)
                .order_by(EventDelivery.id)
            )
            return [
                Claimed(dl.id, owner, dl.subscriber, dl.attempts, ev.event_id, ev.type, ev.integration_id, ev.provider, ev.payload)
                for dl, ev in rows.all()
            ]

    async def finish(self, claimed: Claimed, outcome: Outcome) -> bool:
        """Record an attempt's outcome, if this process still holds the lease; the event's
        status follows. False when the lease was lost (another process took it over)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(EventDelivery)
                .where(EventDelivery.id == claimed.id, EventDelivery.lease_owner == claimed.owner)
                .values(
                    state=outcome.state,
                    attempts=outcome.attempts,
                    next_attempt_at=outcome.next_attempt_at,
                    last_status=outcome.status,
                    last_error=outcome.error,
                    delivered_at=outcome.delivered_at,
                    lease_until=None,
                    lease_owner=None,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return False
            event_pk = await session.scalar(select(EventDelivery.event_id).where(EventDelivery.id == claimed.id))
            await refresh_status(session, [event_pk])
        return True

    async def disabled(self) -> set[str]:
        async with self.sessions() as session:
            rows = await session.scalars(select(EventSubscriber.name).where(EventSubscriber.disabled_at.is_not(None)))
            return set(rows.all())

    async def set_disabled(self, name: str, when: datetime | None, reason: str | None) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(EventSubscriber, name, with_for_update=True)
            if row is None:
                session.add(EventSubscriber(name=name, disabled_at=when, disabled_reason=reason))
            else:
                row.disabled_at, row.disabled_reason = when, reason

    async def subscribers(self) -> dict[str, EventSubscriber]:
        async with self.sessions() as session:
            return {row.name: row for row in (await session.scalars(select(EventSubscriber))).all()}

    async def page(
        self, *, user_id: str | None, event_type: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[tuple[Event, list[EventDelivery]]], str | None]:
        """Events newest first, with their deliveries; the cursor of the next page."""
        where = []
        if user_id is not None:
            where.append(Event.user_id == user_id)
        if event_type is not None:
            where.append(Event.type == event_type)
        if status is not None:
            where.append(Event.status == status)
        if cursor:
            where.append(Event.id < decode_cursor(cursor))
        async with self.sessions() as session:
            events = list((await session.scalars(select(Event).where(*where).order_by(Event.id.desc()).limit(limit + 1))).all())
            more = len(events) > limit
            events = events[:limit]
            found: dict[int, list[EventDelivery]] = {e.id: [] for e in events}
            if events:
                for dl in (await session.scalars(select(EventDelivery).where(EventDelivery.event_id.in_(list(found))).order_by(EventDelivery.id))).all():
                    found[dl.event_id].append(dl)
        return [(e, found[e.id]) for e in events], (encode_cursor(events[-1].id) if more and events else None)

    async def retry(self, event_ids: Sequence[str], *, dead: bool, now: datetime) -> int:
        """Dead deliveries (of ``event_ids``, or every dead one with ``dead``) back to PENDING,
        due now, with their attempts counted afresh. The number put back."""
        async with self.sessions.begin() as session:
            scope = [EventDelivery.state == DEAD]
            if not dead:
                scope.append(EventDelivery.event_id.in_(select(Event.id).where(Event.event_id.in_(list(event_ids)))))
            touched = list((await session.scalars(select(EventDelivery.event_id).where(*scope))).all())
            result = await session.execute(
                update(EventDelivery)
                .where(*scope)
                .values(state=PENDING, attempts=0, next_attempt_at=now, lease_until=None, lease_owner=None)
                .execution_options(synchronize_session=False)
            )
            await refresh_status(session, touched)
        return int(result.rowcount or 0)

    async def replay(self, event_ids: Sequence[str], subscribers: Sequence[str], now: datetime) -> int:
        """Send events again, delivered or not, to ``subscribers`` that are not already about to
        (a new delivery each; the same ``webhook-id``, so a subscriber can tell). The count."""
        made = 0
        async with self.sessions.begin() as session:
            events = list((await session.scalars(select(Event).where(Event.event_id.in_(list(event_ids))).order_by(Event.id))).all())
            for event in events:
                busy = set((await session.scalars(
                    select(EventDelivery.subscriber).where(EventDelivery.event_id == event.id, EventDelivery.state == PENDING)
                )).all())
                for name in subscribers:
                    if name in busy:
                        continue
                    session.add(EventDelivery(event_id=event.id, subscriber=name, integration_id=event.integration_id, state=PENDING,
                                              attempts=0, next_attempt_at=now, created_at=now))
                    made += 1
            await session.flush()
            await refresh_status(session, [e.id for e in events])
        return made

    async def known(self, event_ids: Sequence[str]) -> set[str]:
        async with self.sessions() as session:
            return set((await session.scalars(select(Event.event_id).where(Event.event_id.in_(list(event_ids))))).all())

    async def prune(self, older_than: datetime, configured: Sequence[str]) -> int:
        """Delete events created before ``older_than`` that nothing will deliver any more:
        finished ones, and pending ones whose pending deliveries all go to subscribers not in
        ``configured`` (removed from the config: no process would ever send them). Their
        deliveries go with them."""
        live = exists().where(
            EventDelivery.event_id == Event.id, EventDelivery.state == PENDING, EventDelivery.subscriber.in_(list(configured))
        )
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(Event)
                .where(Event.created_at < older_than, or_(Event.status != PENDING, ~live))
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount or 0)

    async def pending_elsewhere(self, configured: Sequence[str]) -> dict[str, int]:
        """Pending deliveries to subscribers no longer configured, counted per name."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(EventDelivery.subscriber, func.count())
                .where(EventDelivery.state == PENDING, EventDelivery.subscriber.not_in(list(configured)))
                .group_by(EventDelivery.subscriber)
            )
            return {name: int(count) for name, count in rows.all()}


async def _lease(session: AsyncSession, ids: list[int], owner: str, now: datetime, lease: timedelta) -> None:
    """The compare-and-swap: a lease taken by another process in the meantime is left alone."""
    if not ids:
        return
    await session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.id.in_(ids),
            EventDelivery.state == PENDING,
            or_(EventDelivery.lease_until.is_(None), EventDelivery.lease_until <= now),
        )
        .values(lease_until=now + lease, lease_owner=owner)
        .execution_options(synchronize_session=False)
    )


async def refresh_status(session: AsyncSession, event_pks: Sequence[int]) -> None:
    """Sum up the deliveries of these events into their ``status``."""
    if not event_pks:
        return
    states = (
        select(
            EventDelivery.event_id,
            func.sum(case((EventDelivery.state == PENDING, 1), else_=0)),
            func.sum(case((EventDelivery.state == DEAD, 1), else_=0)),
            func.count(),
        )
        .where(EventDelivery.event_id.in_(list(set(event_pks))))
        .group_by(EventDelivery.event_id)
    )
    for event_pk, pending, dead, total in (await session.execute(states)).all():
        status = PENDING if pending else DEAD if dead else DELIVERED if total else NO_SUBSCRIBERS
        await session.execute(
            update(Event).where(and_(Event.id == event_pk, Event.status != status)).values(status=status).execution_options(synchronize_session=False)
        )


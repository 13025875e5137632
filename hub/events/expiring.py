"""``integration.token_expiring``: a token that cannot be refreshed (Trello's, which lasts
30 days) is announced ``events.token_expiring_seconds`` before it runs out, once.

Every process sweeps every ``events.expiring_sweep_seconds``. "Once" is kept by the
event's ``once_key`` (unique: integration and expiry), so two processes sweeping together
still write one event, and a new token (a new expiry) is announced anew.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..infra.eventsconfig import EventsConfig
from ..store.models import Event, Integration, iso_utc
from .outbox import Outbox

log = logging.getLogger("hub.events")

TOKEN_EXPIRING = "integration.token_expiring"


def once_key(row: Integration) -> str:
    assert row.token_expiry is not None
    return f"token_expiring:{row.id}:{int(row.token_expiry.timestamp())}"


class ExpiringSweep:
    def __init__(self, config: EventsConfig, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, *, batch_size: int = 200) -> None:
        self.config = config
        self.sessions = sessions
        self.outbox = outbox
        self.batch_size = batch_size

    async def sweep(self) -> int:
        """One pass; the number of events written."""
        now = self.outbox.clock()
        horizon = now + timedelta(seconds=self.config.token_expiring_seconds)
        announced = exists().where(
            Event.integration_id == Integration.id, Event.type == TOKEN_EXPIRING, Event.created_at >= Integration.updated_at
        )
        due = and_(
            Integration.status == "ACTIVE",
            Integration.access_token.is_not(None),
            Integration.refresh_token.is_(None),
            Integration.token_expiry.is_not(None),
            Integration.token_expiry > now,
            Integration.token_expiry <= horizon,
        )
        async with self.sessions() as session:
            ids = list((await session.scalars(select(Integration.id).where(due, ~announced).order_by(Integration.token_expiry).limit(self.batch_size))).all())
        written = 0
        for integration_id in ids:
            try:
                async with self.sessions.begin() as session:
                    row = await session.scalar(select(Integration).where(Integration.id == integration_id, due).with_for_update())
                    if row is None:
                        continue
                    left = row.token_expiry - now if row.token_expiry else timedelta(0)
                    await self.outbox.emit(
                        session,
                        row,
                        TOKEN_EXPIRING,
                        reason=f"the access token expires in {_hours(left)} and cannot be refreshed: the user must connect again",
                        previous=row.status,
                        data={"expiresAt": iso_utc(row.token_expiry)},
                        once_key=once_key(row),
                    )
                    await session.flush()
                written += 1
            except IntegrityError:
                pass  # announced already, by this process or another
        if written:
            log.info("announced %d token(s) about to expire", written)
        return written


def _hours(left: timedelta) -> str:
    hours = left.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"

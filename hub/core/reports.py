"""What a user may read about their integrations: the list with summaries, one
integration, its log pages, statistics and daily counts.

Every read first lets the activity writer commit the rows queued before it, so a caller
always sees its own calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import activity
from ..activity import ActivityWriter, LogQuery
from ..infra.auth import Caller
from ..store.integrations import IntegrationStore
from ..store.models import Integration
from .lifecycle import Status
from .manage import require
from .runtime import Providers

Summary = dict[str, Any]


class Reports:
    def __init__(self, providers: Providers, store: IntegrationStore, sessions: async_sessionmaker[AsyncSession], writer: ActivityWriter) -> None:
        self.providers = providers
        self.store = store
        self.sessions = sessions
        self.writer = writer

    async def integrations(self, caller: Caller) -> list[tuple[Integration, Summary]]:
        """The user's integrations with enabled providers, each with its 7-day summary."""
        rows = [r for r in await self.store.of_user(caller.user_id, exclude_status=Status.DELETED.value) if r.provider in self.providers]
        await self.writer.flush()
        async with self.sessions() as session:
            sums = await activity.summaries(session, [r.id for r in rows])
        return [(r, sums[r.id]) for r in rows]

    async def integration(self, caller: Caller, provider: str) -> tuple[Integration, Summary]:
        row = await require(self.store, caller.user_id, self.providers.runtime(provider))
        await self.writer.flush()
        async with self.sessions() as session:
            sums = await activity.summaries(session, [row.id])
        return row, sums[row.id]

    async def logs(self, caller: Caller, provider: str, query: LogQuery) -> dict[str, Any]:
        return await self._read(caller, provider, lambda session, iid: activity.list_logs(session, iid, query))

    async def stats(self, caller: Caller, provider: str, days: int) -> dict[str, Any]:
        return await self._read(caller, provider, lambda session, iid: activity.stats(session, iid, days))

    async def daily(self, caller: Caller, provider: str, days: int) -> dict[str, Any]:
        return await self._read(caller, provider, lambda session, iid: activity.daily(session, iid, days))

    async def _read(self, caller: Caller, provider: str, query: Callable[[AsyncSession, int], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """``query`` over the caller's integration, once the rows buffered before the read
        are written (so callers see their own calls), but never waiting on rows queued after
        it, nor longer than the writer's ``read_wait``: past that it answers with what is
        committed."""
        row = await require(self.store, caller.user_id, self.providers.runtime(provider))
        await self.writer.flush()
        async with self.sessions() as session:
            return await query(session, row.id)

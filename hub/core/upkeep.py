"""Activity upkeep, run by every process now and then: on PostgreSQL, the month partitions of
``integration_logs`` made ahead of need; everywhere, when ``activity.prune_in_background``
is on, the rows past ``activity.retention_days`` pruned.

Running it in every process is safe: partitions are made under an advisory lock and
skipped when they exist (``hub.activity.partitions``), and two prunes at once each delete
what the other has not, taking its share of the rollup with it."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..activity import Pruned, ensure_partitions, prune_expired
from ..store.models import utcnow
from ..infra.periodic import Periodic

log = logging.getLogger("hub.activity")

# How long stopping waits for a pass in flight.
STOP_WAIT_SECONDS = 10.0


class ActivityUpkeep:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, months_ahead: int, retention_days: int, prune: bool, interval_seconds: float
    ) -> None:
        self.sessions = sessions
        self.months_ahead = months_ahead
        self.retention = timedelta(days=retention_days)
        self.prune = prune
        self.interval = interval_seconds
        self._job = Periodic("activity upkeep", self._pass, interval_seconds or 1.0, jitter=0.2)
        # Held while a pass runs, so stopping lets a pass in flight finish its statements
        # rather than cancelling them under the database driver.
        self._running = asyncio.Lock()

    @property
    def passes(self) -> int:
        return self._job.passes

    async def wait_for_passes(self, passes: int) -> None:
        await self._job.wait_for_passes(passes)

    async def _pass(self) -> None:
        async with self._running:
            await self.run_once()

    async def run_once(self) -> Pruned | None:
        """One pass: make the partitions ahead, then prune if pruning is on."""
        now = utcnow()
        async with self.sessions.begin() as session:
            await ensure_partitions(await session.connection(), now, ahead=self.months_ahead)
        if not self.prune:
            return None
        pruned = await prune_expired(self.sessions, now - self.retention)
        if pruned.rows or pruned.partitions:
            log.info("activity retention: %d rows older than %d days pruned (%d partitions dropped)",
                     pruned.rows, self.retention.days, len(pruned.partitions))
        return pruned

    async def start(self) -> None:
        if self.interval > 0:
            await self._job.start()

    async def stop(self) -> None:
        """Stop after the pass in flight, if any, has finished (or after
        :data:`STOP_WAIT_SECONDS`, when it is stuck on the database)."""
        try:
            await asyncio.wait_for(self._running.acquire(), STOP_WAIT_SECONDS)
        except asyncio.TimeoutError:
            log.warning("activity upkeep still running after %.0fs at shutdown; stopping it", STOP_WAIT_SECONDS)
            await self._job.stop()
            return
        try:
            await self._job.stop()
        finally:
            self._running.release()

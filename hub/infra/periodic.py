"""A job each process runs on its own every so often (pruning stored answers, renewing
tokens ahead of need): one task, a count of finished passes that tests wait on instead of
the clock, and a failed pass logged and retried at the next one."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger("hub.periodic")


class Periodic:
    def __init__(self, what: str, job: Callable[[], Awaitable[object]], interval: float, *, jitter: float = 0.0) -> None:
        """``job`` runs every ``interval`` seconds, give or take ``jitter`` (a fraction of
        it, so processes started together drift apart); ``what`` names it in the log."""
        self.what = what
        self.job = job
        self.interval = interval
        self.jitter = jitter
        # Passes finished so far, failed ones included.
        self.passes = 0
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"hub-{self.what.replace(' ', '-')}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_for_passes(self, passes: int) -> None:
        """Until ``passes`` passes have finished in all."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.passes >= passes)

    async def _loop(self) -> None:
        while True:
            try:
                await self.job()
            except Exception as exc:  # the database is away: the next pass tries again
                log.warning("%s failed (%s); trying again in %.0fs", self.what, type(exc).__name__, self.interval)
            self.passes += 1
            async with self._progress:
                self._progress.notify_all()
            await asyncio.sleep(self.interval * random.uniform(1 - self.jitter, 1 + self.jitter))

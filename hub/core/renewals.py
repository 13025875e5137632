"""Renewing what plugins set up upstream before it runs out (``renewals:`` in the config).

A plugin says when something of an integration's runs out (Google's push channels do,
after a week at most) with ``ctx.renew_by(deadline)``; the core keeps that deadline in the
row (``integrations.renew_by``). Every process looks, every ``renewals.interval_seconds``,
for ACTIVE or EXPIRED integrations whose deadline is less than ``renewals.ahead_seconds``
away, claims each row's renewal lease (one conditional UPDATE: of any number of processes,
one wins, the others pass the row by) and calls the plugin's ``hub_renew`` for it through
:class:`~hub.core.hookcalls.IntegrationHooks`, so the call has a usable token and is an
activity row (``renew``). What the hook sets with ``renew_by`` is saved (no call: no further
renewal) and frees the lease;
a failure leaves the deadline and the lease, so the row is tried again once the lease ends.
The core knows nothing of what is renewed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from ..errors import HubError
from ..infra.periodic import Periodic
from ..store.integrations import IntegrationStore
from ..store.models import Integration, utcnow
from .hookcalls import IntegrationHooks, keep_call_state
from .lifecycle import Status
from .runtime import Providers
from .statemerge import merge_deadline

log = logging.getLogger("hub.renewals")

RENEWABLE = (Status.ACTIVE.value, Status.EXPIRED.value)


class Renewals:
    def __init__(self, providers: Providers, store: IntegrationStore, hooks: IntegrationHooks, *, ahead_seconds: float,
                 interval_seconds: float, lease_seconds: float, batch_size: int, concurrency: int) -> None:
        self.providers = providers
        self.store = store
        self.hooks = hooks
        self.ahead = timedelta(seconds=ahead_seconds)
        self.lease = timedelta(seconds=lease_seconds)
        self.interval = interval_seconds
        self.batch_size = batch_size
        self.concurrency = concurrency
        # The hub's "now" for deadlines; tests move it.
        self.clock: Callable[[], datetime] = utcnow
        self._job = Periodic("renewals sweep", self.sweep, interval_seconds or 1.0, jitter=0.2)

    async def sweep(self) -> int:
        """One pass: the number of integrations this process renewed."""
        now = self.clock()
        rows = await self.store.due_renewals(now + self.ahead, now, statuses=RENEWABLE, limit=self.batch_size)
        due = [r for r in rows if r.provider in self.providers and self.hooks.implements(self.providers[r.provider], "hub_renew")]
        if not due:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def renew(row: Integration) -> bool:
            async with gate:
                if not await self.store.claim_renewal(row.id, now, now + self.lease):
                    return False  # another process has it
                return await self.renew(row)

        renewed = sum(await asyncio.gather(*(renew(row) for row in due)))
        if renewed:
            log.info("renewed %d integration(s) ahead of their deadline", renewed)
        return renewed

    async def renew(self, row: Integration) -> bool:
        rt = self.providers[row.provider]
        try:
            _, ctx = await self.hooks.call(rt, row, "hub_renew", "renew")
        except HubError as exc:
            log.info("renewal of integration %d (%s) failed: %s; tried again after the lease", row.id, row.provider, exc.code)
            return False
        except Exception as exc:  # the database went away: the lease runs out, the next sweep tries again
            log.warning("renewal of integration %d (%s) failed: %s", row.id, row.provider, type(exc).__name__)
            return False
        async with self.store.locked(row.id) as (_, fresh):
            if fresh is None:
                return False
            keep_call_state(fresh, ctx)
            if not ctx.renewal_set:
                # Renewed, and nothing further asked: no renewal loop; unless another call
                # asked for a deadline meanwhile (something new upstream).
                fresh.renew_by = merge_deadline(ctx._renew_base, None, fresh.renew_by)
            fresh.renew_lease_until = None
        return True

    async def start(self) -> None:
        if self.interval > 0:
            await self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    @property
    def sweeps(self) -> int:
        return self._job.passes

    async def wait_for_sweeps(self, count: int) -> None:
        await self._job.wait_for_passes(count)

"""Refreshing tokens before anyone needs them (``refresh:`` in the config).

Every process looks, every ``refresh.interval_seconds`` (with a little jitter so that
processes started together drift apart), for ACTIVE integrations whose access token runs
out within ``refresh.ahead_seconds`` and that hold a refresh token, soonest first, and
renews them through :meth:`TokenSessions.refresh_early`. That claims the row's refresh
lease with the same compare-and-swap a call uses, so across any number of processes one
refreshes each token and the others pass it by; nobody waits for anybody.

A host's call then finds a token with more than ``security.refresh_margin_seconds`` left
and does not refresh on its path. When the sweep falls behind or is off, calls refresh
as they always did. A refresh the provider refuses moves the integration to ERROR, and
one that fails for now leaves it as it was: the same outcomes as a refresh on a call.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ..errors import HubError
from ..store.integrations import IntegrationStore
from ..store.models import Integration, utcnow
from ..infra.periodic import Periodic
from .runtime import Providers
from .tokens import TokenSessions

log = logging.getLogger("hub.refresher")


class RefreshAhead:
    def __init__(
        self,
        providers: Providers,
        store: IntegrationStore,
        tokens: TokenSessions,
        *,
        ahead_seconds: float,
        interval_seconds: float,
        batch_size: int,
        concurrency: int,
    ) -> None:
        self.providers = providers
        self.store = store
        self.tokens = tokens
        self.ahead_seconds = ahead_seconds
        self.interval = interval_seconds
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._sweeper = Periodic("background refresh sweep", self.sweep, interval_seconds, jitter=0.2)

    def ahead(self, row: Integration) -> float:
        """How long before its expiry this row's token is renewed: ``ahead_seconds``, but
        at most half the token's life (a short-lived token is not renewed on every sweep)
        and never less than the margin at which a call would renew it itself."""
        ahead = float(self.ahead_seconds)
        if row.token_expiry is not None and row.updated_at is not None:
            life = (row.token_expiry - row.updated_at).total_seconds()
            if life > 0:
                ahead = min(ahead, life / 2)
        return max(ahead, self.tokens.margin(row))

    async def sweep(self) -> int:
        """One pass: renew what is due now; the number of tokens this process renewed."""
        now = utcnow()
        horizon = max(float(self.ahead_seconds), float(self.tokens.refresh_margin_seconds))
        rows = await self.store.expiring(now + timedelta(seconds=horizon), now, limit=self.batch_size)
        due = [
            row for row in rows
            if row.provider in self.providers and row.token_expiry is not None
            and (row.token_expiry - now).total_seconds() <= self.ahead(row)
        ]
        if not due:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def renew(row: Integration) -> bool:
            async with gate:
                try:
                    return await self.tokens.refresh_early(self.providers[row.provider], row)
                except HubError as exc:
                    # The lifecycle move and the activity row are already written.
                    log.info("background refresh of integration %d (%s) failed: %s", row.id, row.provider, exc.code)
                except Exception as exc:
                    log.warning("background refresh of integration %d (%s) failed: %s", row.id, row.provider, type(exc).__name__)
                return False

        renewed = sum(await asyncio.gather(*(renew(row) for row in due)))
        if renewed:
            log.info("renewed %d token(s) ahead of expiry", renewed)
        return renewed

    async def start(self) -> None:
        if self.interval > 0:
            await self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()

    @property
    def sweeps(self) -> int:
        """Sweeps finished so far (tests wait on it rather than on the clock)."""
        return self._sweeper.passes

    async def wait_for_sweeps(self, count: int) -> None:
        """Until the loop has finished ``count`` sweeps in all."""
        await self._sweeper.wait_for_passes(count)

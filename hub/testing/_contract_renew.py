"""The tests of :class:`hub.testing.ProviderContract` for ``hub_renew``: what a plugin set up
upstream and asked the hub to renew (``ctx.renew_by``) is renewed by one pass of the hub's
renewal sweep before its deadline, and a failed renewal keeps the deadline for a pass after
the lease. Each test skips, saying why, when the plugin has no ``hub_renew`` or nothing asks
for a renewal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ._contract_parts import ContractMixin, implements, renewal_of, upstream_calls
from .fake import FakeProvider
from .kit import hub_of
from .observe import _rewrite, activity

# How many requests the default provoke_renewal_failure fails: more than a hook's calls and
# the hub's retries of them. Whatever is left is cleared after the pass.
RENEWAL_FAULTS = 10


class RenewalContract(ContractMixin):
    """The ``hub_renew`` part of :class:`hub.testing.ProviderContract`."""

    # ------------------------------------------------------------------ hooks

    async def prepare_renewal(self, client: TestClient) -> bool | None:
        """Set up what the plugin renews (a push channel, a webhook subscription), through the
        hub's actions so the plugin asks for its renewal with ``ctx.renew_by``, and return
        ``True``. By default ``None``: the renewal tests skip, unless connecting alone gave the
        integration a renewal deadline."""
        return None

    def provoke_renewal_failure(self, fake: FakeProvider) -> None:
        """Make the provider fail the calls ``hub_renew`` makes: by default the next requests
        to ``fake.api_path`` answer 500."""
        fake.fail_next(500, {"error": "contract_failure"}, path=fake.api_path, count=RENEWAL_FAULTS)

    # ------------------------------------------------------------------ plumbing

    async def renewal_due(self, make_hub: Any) -> tuple[Any, Any, datetime]:
        """A connected hub whose integration is due for renewal at the next pass of its sweep:
        ``(client, the hub's Renewals, the deadline the row is due at)``. The background loop
        is stopped, so only the passes the test runs call the hook; the deadline the plugin
        asked is moved to half of ``renewals.ahead_seconds`` from the hub's now (a deadline
        that near is what the sweep picks), so nobody waits for it."""
        if not implements(self.plugin, "hub_renew"):
            pytest.skip("the plugin implements no hub_renew")
        client = await self.connected(make_hub)
        prepared = await self.prepare_renewal(client)
        asked, _ = await renewal_of(client, self.user)
        if asked is None:
            if prepared is None:
                pytest.skip("nothing asks for a renewal: override prepare_renewal(client) to set up what hub_renew renews "
                            "(a push channel, a webhook subscription) and return True")
            raise AssertionError("after prepare_renewal the integration has no renewal deadline: what set it up must "
                                 "call ctx.renew_by(deadline)")
        renewals = hub_of(client).renewals
        await renewals.stop()
        now = renewals.clock()
        due = now + renewals.ahead / 2 if renewals.ahead else now - timedelta(seconds=1)
        await _rewrite(client, self.user, lambda row: {"renew_by": due})
        return client, renewals, due

    async def renew_rows(self, client: Any) -> list[dict[str, Any]]:
        """The integration's ``renew`` activity rows, newest first."""
        return await activity(client, self.user, action="renew")

    # ------------------------------------------------------------------ the contract

    async def test_renewal_runs_before_the_deadline(self, make_hub: Any) -> None:
        client, renewals, due = await self.renewal_due(make_hub)
        await renewals.sweep()
        rows = await self.renew_rows(client)
        assert len(rows) == 1, (f"one pass of the renewal sweep over a row due by {due.isoformat()} called hub_renew "
                                f"{len(rows)} times, not once: {rows}")
        assert rows[0]["status"] == "SUCCESS", f"the renewal failed: {rows[0]}"
        deadline, lease = await renewal_of(client, self.user)
        assert deadline is None or deadline > due, (
            f"after the renewal the deadline is {deadline.isoformat()}, not later than {due.isoformat()}: call "
            "ctx.renew_by with the new deadline (or not at all, for no further renewal)")
        assert lease is None or lease <= renewals.clock(), f"the renewal lease is still held after the renewal (until {lease.isoformat()})"
        await renewals.sweep()
        again = await self.renew_rows(client)
        assert len(again) == 1, f"a second pass right after the renewal called hub_renew again: {again}"

    async def test_failed_renewal_keeps_the_deadline(self, make_hub: Any) -> None:
        client, renewals, due = await self.renewal_due(make_hub)
        fake = client.fake
        seen = len(fake.calls)
        self.provoke_renewal_failure(fake)
        await renewals.sweep()
        if hasattr(fake, "clear_faults"):
            fake.clear_faults()
        rows = await self.renew_rows(client)
        assert len(rows) == 1, f"one pass of the renewal sweep called hub_renew {len(rows)} times, not once: {rows}"
        if rows[0]["status"] != "FAILED":
            pytest.skip(f"hub_renew absorbed the provider's failures itself (its row is {rows[0]['status']}, calls "
                        f"{upstream_calls(fake, seen)}): override provoke_renewal_failure(fake) with one it passes on")
        assert rows[0]["errorMessage"], f"the failed renew row says nothing of the failure: {rows[0]}"
        deadline, _ = await renewal_of(client, self.user)
        assert deadline == due, (f"a failed renewal moved the deadline from {due.isoformat()} to "
                                 f"{deadline.isoformat() if deadline else None}: it must stay, so the renewal is tried again")
        _, view = await self.view(client)
        assert view["status"] == "ACTIVE", f"a failed renewal changed the integration's state: {view}"
        await renewals.sweep()
        assert len(await self.renew_rows(client)) == 1, (
            "a pass right after a failed renewal called hub_renew again: the row stays leased for renewals.lease_seconds")
        later = renewals.clock() + renewals.lease + timedelta(seconds=1)
        renewals.clock = lambda: later
        await renewals.sweep()
        rows = await self.renew_rows(client)
        assert [r["status"] for r in rows] == ["SUCCESS", "FAILED"], (
            f"once the fault was gone and the lease had run out, a pass did not renew: {rows}")
        deadline, _ = await renewal_of(client, self.user)
        assert deadline is None or deadline > due, f"after the renewal the deadline is {deadline}, not later than {due.isoformat()}"

"""Refreshing ahead of need: tokens about to run out are renewed in the background, once
across processes, so a host's call does not refresh on its path; a refusal or a failure
ends exactly as it would on a call."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hub.infra.config import ConfigError, config_from_dict
from hub.store.models import utcnow
from helpers import connect_slack
from support import auth, build_hub
from test_refresh import post, refreshes

pytestmark = pytest.mark.usefixtures("slack_rotating")


async def near_expiry(app: Any, user: str = "alice", *, left: float = 120, life: float = 43200) -> None:
    """The stored token has ``left`` seconds to live, of a ``life`` it was issued with."""
    now = utcnow()
    await app.db.set_integration(user, token_expiry=now + timedelta(seconds=left), updated_at=now + timedelta(seconds=left - life))


async def test_a_token_near_expiry_is_renewed_in_the_background_and_the_call_does_not_refresh(hub_app, fake_slack) -> None:
    await near_expiry(hub_app)
    before = await hub_app.db.token()
    assert await hub_app.hub.refresh_ahead.sweep() == 1
    assert len(refreshes(fake_slack)) == 1
    after = await hub_app.db.token()
    assert after.access_token != before.access_token
    assert after.expires_at is not None and after.expires_at > utcnow() + timedelta(hours=1)
    row = await hub_app.db.integration()
    assert row.status == "ACTIVE" and row.refresh_lease_until is None
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert len(refreshes(fake_slack)) == 1  # the call used the renewed token as it was
    await hub_app.db.settle()
    assert [r.status for r in await hub_app.db.activity(action="refresh_token")] == ["SUCCESS"]


async def test_a_token_with_time_to_spare_is_left_alone(hub_app, fake_slack) -> None:
    await near_expiry(hub_app, left=3600)
    assert await hub_app.hub.refresh_ahead.sweep() == 0
    assert refreshes(fake_slack) == []


async def test_a_short_lived_token_is_renewed_in_its_second_half_only(hub_app, fake_slack) -> None:
    """``ahead_seconds`` (300) is capped at half the token's life: a 60 s token is not
    renewed with 45 s left, and is with 25 s left."""
    await near_expiry(hub_app, left=45, life=60)
    assert await hub_app.hub.refresh_ahead.sweep() == 0
    await near_expiry(hub_app, left=25, life=60)
    assert await hub_app.hub.refresh_ahead.sweep() == 1
    assert len(refreshes(fake_slack)) == 1


async def test_two_processes_sweeping_together_renew_each_token_once(hub_app, fake_slack, make_config, aiohttp_client) -> None:
    """Two hubs on one database stand for two processes: the row lease lets one renew."""
    users = ["alice", "bob", "carol", "dave"]
    for user in users[1:]:
        await connect_slack(hub_app, auth(user))
    other = build_hub(make_config())
    await other.start()
    try:
        for user in users:
            await near_expiry(hub_app, user)
        fake_slack.delay = 0.1  # keep each refresh in flight while the other sweep arrives
        first, second = await asyncio.gather(hub_app.hub.refresh_ahead.sweep(), other.refresh_ahead.sweep())
    finally:
        await other.stop()
    assert first + second == len(users)
    assert len(refreshes(fake_slack)) == len(users)
    for user in users:
        assert (await hub_app.db.integration(user)).token_expiry > utcnow() + timedelta(hours=1)


async def test_a_refused_background_refresh_moves_to_error_as_a_call_would(hub_app, fake_slack) -> None:
    await near_expiry(hub_app)
    fake_slack.revoke_all()
    assert await hub_app.hub.refresh_ahead.sweep() == 0
    row = await hub_app.db.integration()
    assert row.status == "ERROR" and "reconnect" in row.status_reason and row.refresh_lease_until is None
    await hub_app.db.settle()
    assert [r.status for r in await hub_app.db.activity(action="refresh_token")] == ["FAILED"]
    # The next sweep leaves an ERROR integration alone.
    assert await hub_app.hub.refresh_ahead.sweep() == 0
    assert len(refreshes(fake_slack)) == 1


async def test_a_failure_for_now_leaves_the_token_in_use_and_the_next_sweep_renews_it(hub_app, fake_slack) -> None:
    await near_expiry(hub_app)
    before = await hub_app.db.token()
    fake_slack.fail_next(503, "Service Unavailable", path="/api/oauth.v2.access", count=10)
    assert await hub_app.hub.refresh_ahead.sweep() == 0
    row = await hub_app.db.integration()
    assert row.status == "ACTIVE" and row.refresh_lease_until is None
    assert (await hub_app.db.token()).access_token == before.access_token
    fake_slack.clear_faults()
    assert await hub_app.hub.refresh_ahead.sweep() == 1
    assert (await hub_app.db.token()).access_token != before.access_token


async def test_the_background_loop_renews_on_its_own(hub_app, fake_slack, make_config, aiohttp_client) -> None:
    from conftest import serve_hub

    app = await serve_hub(make_config(refresh={"interval_seconds": 0.05}), aiohttp_client)
    await near_expiry(app)
    sweeper = app.hub.refresh_ahead
    async with asyncio.timeout(30):  # a guard against a hang, not a timing
        while not refreshes(fake_slack):
            await sweeper.wait_for_sweeps(sweeper.sweeps + 1)
    row = await app.db.integration()
    assert row.token_expiry > utcnow() + timedelta(hours=1)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"interval_seconds": -1}, "refresh.interval_seconds"),
        ({"ahead_seconds": "soon"}, "refresh.ahead_seconds"),
        ({"concurrency": 0}, "refresh.concurrency"),
        ({"batch_size": 100_001}, "refresh.batch_size"),
        ({"every": 5}, "refresh.every"),
    ],
)
def test_bad_refresh_settings_are_refused_naming_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"refresh": section}, env={})
    assert field in str(caught.value)

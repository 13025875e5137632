"""Token refresh: transparent, single-flight (in one process and across hub instances),
and the error class deciding the lifecycle move."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from helpers import connect_slack
from hub.store.models import Integration, IntegrationLog, utcnow
from hub.web import create_app
from support import auth, build_hub


def refreshes(fake) -> list:
    return [c for c in fake.calls_to("oauth.v2.access") if c.form.get("grant_type") == "refresh_token"]


async def row_of(hub, user: str = "alice") -> Integration:
    async with hub.sessions() as s:
        return await s.scalar(select(Integration).where(Integration.user_id == user))


async def expire_stored_token(hub, user: str = "alice") -> None:
    async with hub.sessions.begin() as s:
        await s.execute(update(Integration).where(Integration.user_id == user).values(token_expiry=utcnow() - timedelta(seconds=5)))


async def post(client, user: str = "alice", text: str = "hi"):
    return await client.post("/api/integrations/slack/message", json={"channel": "general", "text": text}, headers=auth(user))


async def test_rotation_connect_stores_refresh_token_and_expiry(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    view = (await (await hub_app.get("/api/integrations/slack", headers=auth("alice"))).json())["data"]
    assert view["hasRefreshToken"] is True
    assert view["tokenExpiresAt"] is not None


async def test_expired_token_is_refreshed_before_the_call(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    await expire_stored_token(hub_app.hub)
    fake_slack.expire_access_tokens()
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert len(refreshes(fake_slack)) == 1
    # the refresh token the fake issued last is the one now stored (old one was spent)
    row = await row_of(hub_app.hub)
    assert row.status == "ACTIVE" and row.token_expiry > utcnow()


async def test_token_expired_answer_triggers_one_refresh_and_a_retry(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    fake_slack.expire_access_tokens()  # upstream says token_expired though our clock disagrees
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert len(refreshes(fake_slack)) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 2


async def test_concurrent_calls_share_one_refresh(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    await expire_stored_token(hub_app.hub)
    fake_slack.expire_access_tokens()
    answers = await asyncio.gather(*(post(hub_app, text=f"m{i}") for i in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert len(refreshes(fake_slack)) == 1


async def test_two_hub_instances_share_one_refresh(hub_app, fake_slack, make_config, aiohttp_client):
    """Two hubs on one database behave like two processes: the row lease lets one refresh."""
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    other = await aiohttp_client(create_app(build_hub(make_config())))
    await expire_stored_token(hub_app.hub)
    fake_slack.expire_access_tokens()
    fake_slack.delay = 0.2  # keep the refresh in flight while the other hub arrives
    calls = [post(hub_app, text=f"a{i}") for i in range(20)] + [post(other, text=f"b{i}") for i in range(20)]
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * 40
    assert len(refreshes(fake_slack)) == 1


async def test_rejected_refresh_moves_to_error_with_reconnect_message(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    await expire_stored_token(hub_app.hub)
    fake_slack.revoke_all()
    resp = await post(hub_app)
    body = await resp.json()
    assert resp.status == 409
    assert body["error"]["code"] == "reconnect_required"
    assert "reconnect" in body["error"]["message"]
    row = await row_of(hub_app.hub)
    assert row.status == "ERROR"
    assert "reconnect required" in row.status_reason
    async with hub_app.hub.sessions() as s:
        moves = (await s.scalars(select(IntegrationLog).where(IntegrationLog.kind == "transition"))).all()
    assert moves[-1].request_data["from"] == "ACTIVE" and moves[-1].request_data["to"] == "ERROR"


async def test_transient_refresh_failure_leaves_expired_and_recovers(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    await expire_stored_token(hub_app.hub)
    fake_slack.expire_access_tokens()
    fake_slack.http_error_next("oauth.v2.access", 503)
    resp = await post(hub_app)
    assert resp.status == 502, await resp.text()
    assert (await resp.json())["error"]["code"] == "provider_unavailable"
    assert (await row_of(hub_app.hub)).status == "EXPIRED"
    # the token endpoint is back: the next call refreshes and succeeds
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert (await row_of(hub_app.hub)).status == "ACTIVE"


async def test_refresh_route(hub_app, fake_slack):
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    before = await row_of(hub_app.hub)
    resp = await hub_app.post("/api/integrations/slack/refresh", headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    after = await row_of(hub_app.hub)
    assert after.access_token != before.access_token and after.version > before.version
    assert len(refreshes(fake_slack)) == 1


async def test_refresh_route_without_refresh_token_is_a_clear_conflict(hub_app, fake_slack):
    await connect_slack(hub_app, auth("alice"))
    resp = await hub_app.post("/api/integrations/slack/refresh", headers=auth("alice"))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "no_refresh_token"


async def test_revoked_token_moves_integration_to_error(hub_app, fake_slack):
    await connect_slack(hub_app, auth("alice"))
    fake_slack.revoke_all()
    resp = await post(hub_app)
    body = await resp.json()
    assert resp.status == 409 and body["error"]["details"]["providerError"] == "token_revoked"
    row = await row_of(hub_app.hub)
    assert row.status == "ERROR" and "token_revoked" in row.status_reason

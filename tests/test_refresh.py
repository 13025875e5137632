"""Token refresh: transparent, single-flight (in one process and across hub instances),
and the error class deciding the lifecycle move."""

from __future__ import annotations

import asyncio

import pytest

from hub.store.models import utcnow
from hub.web import create_app
from support import auth, build_hub


def refreshes(fake) -> list:
    return [c for c in fake.calls_to("/api/oauth.v2.access") if c.form.get("grant_type") == "refresh_token"]


async def post(client, user: str = "alice", text: str = "hi"):
    return await client.post("/api/integrations/slack/message", json={"channel": "general", "text": text}, headers=auth(user))


@pytest.mark.usefixtures("slack_rotating")
async def test_rotation_connect_stores_refresh_token_and_expiry(hub_app, fake_slack):
    view = (await (await hub_app.get("/api/integrations/slack", headers=auth("alice"))).json())["data"]
    assert view["hasRefreshToken"] is True
    assert view["tokenExpiresAt"] is not None


@pytest.mark.usefixtures("slack_rotating")
async def test_expired_token_is_refreshed_before_the_call(hub_app, fake_slack):
    await hub_app.db.expire_token()
    fake_slack.expire_tokens()
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert len(refreshes(fake_slack)) == 1
    # the refresh token the fake issued last is the one now stored (old one was spent)
    row = await hub_app.db.integration()
    assert row.status == "ACTIVE" and row.token_expiry > utcnow()


@pytest.mark.usefixtures("slack_rotating")
async def test_token_expired_answer_triggers_one_refresh_and_a_retry(hub_app, fake_slack):
    fake_slack.expire_tokens()  # upstream says token_expired though our clock disagrees
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert len(refreshes(fake_slack)) == 1
    assert len(fake_slack.calls_to("/api/chat.postMessage")) == 2


@pytest.mark.usefixtures("slack_rotating")
async def test_concurrent_calls_share_one_refresh(hub_app, fake_slack):
    await hub_app.db.expire_token()
    fake_slack.expire_tokens()
    answers = await asyncio.gather(*(post(hub_app, text=f"m{i}") for i in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert len(refreshes(fake_slack)) == 1


@pytest.mark.usefixtures("slack_rotating")
async def test_two_hub_instances_share_one_refresh(hub_app, fake_slack, make_config, aiohttp_client):
    """Two hubs on one database behave like two processes: the row lease lets one refresh."""
    other = await aiohttp_client(create_app(build_hub(make_config())))
    await hub_app.db.expire_token()
    fake_slack.expire_tokens()
    fake_slack.delay = 0.2  # keep the refresh in flight while the other hub arrives
    calls = [post(hub_app, text=f"a{i}") for i in range(20)] + [post(other, text=f"b{i}") for i in range(20)]
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * 40
    assert len(refreshes(fake_slack)) == 1


@pytest.mark.usefixtures("slack_rotating")
async def test_rejected_refresh_moves_to_error_with_reconnect_message(hub_app, fake_slack):
    await hub_app.db.expire_token()
    fake_slack.revoke_all()
    resp = await post(hub_app)
    body = await resp.json()
    assert resp.status == 409
    assert body["error"]["code"] == "reconnect_required"
    assert "reconnect" in body["error"]["message"]
    row = await hub_app.db.integration()
    assert row.status == "ERROR"
    assert "reconnect required" in row.status_reason
    moves = await hub_app.db.activity(kind="transition")
    assert moves[-1].request_data["from"] == "ACTIVE" and moves[-1].request_data["to"] == "ERROR"


@pytest.mark.usefixtures("slack_rotating")
async def test_transient_refresh_failure_leaves_expired_and_recovers(hub_app, fake_slack):
    await hub_app.db.expire_token()
    fake_slack.expire_tokens()
    fake_slack.fail_next(503, path="/api/oauth.v2.access")
    resp = await post(hub_app)
    assert resp.status == 502, await resp.text()
    assert (await resp.json())["error"]["code"] == "provider_unavailable"
    assert (await hub_app.db.integration()).status == "EXPIRED"
    # the token endpoint is back: the next call refreshes and succeeds
    resp = await post(hub_app)
    assert resp.status == 200, await resp.text()
    assert (await hub_app.db.integration()).status == "ACTIVE"


@pytest.mark.usefixtures("slack_rotating")
async def test_refresh_route(hub_app, fake_slack):
    before = await hub_app.db.integration()
    resp = await hub_app.post("/api/integrations/slack/refresh", headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    after = await hub_app.db.integration()
    assert after.access_token != before.access_token and after.version > before.version
    assert len(refreshes(fake_slack)) == 1


@pytest.mark.usefixtures("slack_connected")
async def test_refresh_route_without_refresh_token_is_a_clear_conflict(hub_app, fake_slack):
    resp = await hub_app.post("/api/integrations/slack/refresh", headers=auth("alice"))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "no_refresh_token"


@pytest.mark.usefixtures("slack_connected")
async def test_revoked_token_moves_integration_to_error(hub_app, fake_slack):
    fake_slack.revoke_all()
    resp = await post(hub_app)
    body = await resp.json()
    assert resp.status == 409 and body["error"]["details"]["providerError"] == "token_revoked"
    row = await hub_app.db.integration()
    assert row.status == "ERROR" and "token_revoked" in row.status_reason

"""Issue 2's main path, through the real HTTP server and the fake Slack."""

from __future__ import annotations

from pathlib import Path

from support import PG_URL, auth
from helpers import callback_path, connect_slack, consent, query_of


async def test_connect_act_observe_disconnect_delete(hub_app, fake_slack):
    client, h = hub_app, auth("alice")

    # connect -> authUrl -> consent -> callback -> ACTIVE with team metadata
    resp = await client.get("/api/integrations/slack/connect", headers=h)
    data = (await resp.json())["data"]
    assert set(data) == {"authUrl", "expiresAt"}
    params = query_of(data["authUrl"])
    assert params["client_id"] == "slack-client"
    assert params["redirect_uri"].endswith("/api/integrations/slack/callback")
    assert params["scope"] == "channels:read,groups:read,chat:write,users:read"
    location = await consent(data["authUrl"])
    resp = await client.get(callback_path(location))
    assert resp.status == 200
    assert "Slack connected" in await resp.text()

    resp = await client.get("/api/integrations/slack", headers=h)
    integ = (await resp.json())["data"]
    assert integ["status"] == "ACTIVE"
    assert integ["account"]["teamName"] == "Fake Workspace"
    assert integ["account"]["teamId"] == "T0000000001"
    assert "access_token" not in str(integ) and "xoxb" not in str(integ)

    # an action: POST message
    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "hello"}, headers=h)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["ts"]
    assert fake_slack.messages[-1]["text"] == "hello"

    # GET channels across two pages
    resp = await client.get("/api/integrations/slack/channels", params={"limit": "2"}, headers=h)
    page1 = (await resp.json())["data"]
    assert len(page1["channels"]) == 2 and page1["nextCursor"]
    resp = await client.get("/api/integrations/slack/channels", params={"limit": "2", "cursor": page1["nextCursor"]}, headers=h)
    page2 = (await resp.json())["data"]
    assert page2["channels"] and {c["id"] for c in page2["channels"]}.isdisjoint({c["id"] for c in page1["channels"]})

    # the logs list each call
    resp = await client.get("/api/integrations/slack/logs", headers=h)
    items = (await resp.json())["data"]["items"]
    actions = [i["action"] for i in items if i["kind"] == "call"]
    assert actions[:3] == ["list_channels", "list_channels", "post_message"]
    assert "exchange_code" in actions

    # stats in the exact shape
    resp = await client.get("/api/integrations/slack/stats", params={"days": "7"}, headers=h)
    stats = (await resp.json())["data"]
    assert set(stats) == {
        "period", "totalRequests", "successfulRequests", "failedRequests", "successRate",
        "averageDuration", "p50Duration", "p95Duration", "percentilesEstimated", "actionBreakdown",
    }
    assert stats["period"] == "Last 7 days"
    assert stats["totalRequests"] == stats["successfulRequests"] == 4
    assert stats["successRate"] == "100.00%"
    assert stats["actionBreakdown"][0] == {"action": "list_channels", "count": 2}

    # disconnect -> INACTIVE, and Slack heard auth.revoke
    resp = await client.delete("/api/integrations/slack/disconnect", headers=h)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["status"] == "INACTIVE"
    assert len(fake_slack.calls_to("/api/auth.revoke")) == 1

    # an action on an INACTIVE integration is refused, naming the state
    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)
    assert resp.status == 409
    assert "INACTIVE" in (await resp.json())["error"]["message"]

    # delete -> DELETED (tombstone kept)
    resp = await client.delete("/api/integrations/slack", headers=h)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "DELETED"


async def test_database_file_holds_no_issued_token(hub_app, fake_slack):
    if PG_URL:
        return  # the raw-bytes check reads the SQLite file; PostgreSQL runs the rest
    await connect_slack(hub_app, auth("alice"))
    await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=auth("alice"))
    await hub_app.db.settle()
    db_path = Path(hub_app.hub.config.database.url.split(":///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert fake_slack.issued
    for token in fake_slack.issued:
        assert token.encode() not in raw

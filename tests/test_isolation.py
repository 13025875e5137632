"""One user can neither see nor touch another user's integration.

Alice connects Slack and posts a message. Bob then aims every per-integration route at
Slack. Without an integration of his own he gets 404 (or his own empty list); with one of
his own, each route acts on his row only. Alice's row, her activity rows and what Slack
holds for her stay exactly as they were, and her integration keeps working.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from helpers import connect_slack, consent, query_of
from support import Rows, auth

SLACK = "/api/integrations/slack"

# Every route that names "the caller's Slack integration", with a body a real client could send.
ROUTES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "get-integration": ("GET", SLACK, {}),
    "delete-integration": ("DELETE", SLACK, {}),
    "live-status": ("GET", f"{SLACK}/status", {}),
    "deactivate": ("PATCH", f"{SLACK}/status", {"json": {"status": "INACTIVE"}}),
    "reactivate": ("PATCH", f"{SLACK}/status", {"json": {"status": "ACTIVE"}}),
    "refresh": ("POST", f"{SLACK}/refresh", {}),
    "disconnect": ("DELETE", f"{SLACK}/disconnect", {}),
    "logs": ("GET", f"{SLACK}/logs", {}),
    "stats": ("GET", f"{SLACK}/stats", {"params": {"days": "30"}}),
    "post-message": ("POST", f"{SLACK}/message", {"json": {"channel": "general", "text": "from bob"}}),
    "list-channels": ("GET", f"{SLACK}/channels", {}),
    "get-user": ("GET", f"{SLACK}/users/U0000000001", {}),
}


async def alice_state(db: Rows, fake: Any, token: str) -> dict[str, Any]:
    """Alice's row, her activity rows, and what the fake Slack holds for her."""
    logs = await db.activity(user="alice", provider="slack")
    row = await db.integration("alice", "slack")
    assert row is not None
    return {
        "row": (
            row.id, row.provider, row.status, row.status_reason, row.access_token, row.refresh_token, row.token_expiry,
            row.scopes, row.meta, row.updated_at, row.last_sync_at, row.version,
        ),
        "logs": [(r.id, r.kind, r.action, r.status, r.request_data, r.error_message) for r in logs],
        "token_revoked": token in fake.tokens and fake.tokens[token].revoked,
        "messages": [dict(m) for m in fake.messages],
    }


def bearer_of(call: Any) -> str:
    return call.headers.get("Authorization", "").removeprefix("Bearer ")


async def post_as(client: Any, headers: dict[str, str], text: str) -> dict[str, Any]:
    resp = await client.post(f"{SLACK}/message", json={"channel": "general", "text": text}, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body["data"]


@pytest.fixture
async def alice(hub_app: Any, fake_slack: Any) -> str:
    """Alice connected, with one message posted. Returns her Slack access token."""
    h = auth("alice")
    await connect_slack(hub_app, h)
    await post_as(hub_app, h, "hello from alice")
    token = bearer_of(fake_slack.calls_to("/api/chat.postMessage")[-1])
    assert token in fake_slack.issued
    return token


async def mint_slack_token(fake: Any) -> str:
    """A token Bob obtains from Slack without the hub (as a host app's own install might)."""
    redirect = "https://bob.example.org/slack"
    query = urlencode({"client_id": "slack-client", "scope": "channels:read,chat:write,users:read",
                       "redirect_uri": redirect, "state": "bob"})
    code = query_of(await consent(f"{fake.base_url}/oauth/v2/authorize?{query}"))["code"]
    form = {"client_id": "slack-client", "client_secret": "slack-secret-value-123", "code": code, "redirect_uri": redirect}
    async with aiohttp.ClientSession() as session, session.post(f"{fake.base_url}/api/oauth.v2.access", data=form) as resp:
        body = await resp.json()
    assert body["ok"], body
    return body["access_token"]


@pytest.mark.parametrize("route", list(ROUTES))
async def test_bob_cannot_reach_alices_integration(route: str, hub_app: Any, fake_slack: Any, alice: str, db: Rows):
    method, path, kwargs = ROUTES[route]
    before = await alice_state(db, fake_slack, alice)
    upstream_calls = len(fake_slack.calls)

    resp = await hub_app.request(method, path, headers=auth("bob"), **kwargs)
    text = await resp.text()
    assert resp.status == 404, text
    body = await resp.json()
    assert body["error"]["code"] == "integration_not_found", body
    # The refusal says nothing about Alice or her workspace.
    for leak in ("alice", "Fake Workspace", "T0000000001", "U0FAKEBOT01"):
        assert leak not in text, leak

    assert len(fake_slack.calls) == upstream_calls, [c.path for c in fake_slack.calls[upstream_calls:]]
    assert await alice_state(db, fake_slack, alice) == before
    # Bob's attempt created nothing for him either.
    assert await db.integrations("bob") == []

    data = await post_as(hub_app, auth("alice"), "still here")
    assert data["ts"]
    assert bearer_of(fake_slack.calls_to("/api/chat.postMessage")[-1]) == alice


@pytest.mark.parametrize("user", ["bob", "Alice", "alice ", "alice\u200b", "ALICE"])
async def test_other_users_see_an_empty_list(user: str, hub_app: Any, fake_slack: Any, alice: str):
    """The JWT's sub is matched exactly: look-alike ids are other people."""
    resp = await hub_app.get("/api/integrations", headers=auth(user))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"] == []
    resp = await hub_app.get(SLACK, headers=auth(user))
    assert resp.status == 404, await resp.text()

    resp = await hub_app.get("/api/integrations", headers=auth("alice"))
    mine = (await resp.json())["data"]
    assert [i["provider"] for i in mine] == ["slack"] and mine[0]["status"] == "ACTIVE"


async def test_bobs_own_integration_never_touches_alices(hub_app: Any, fake_slack: Any, alice: str, db: Rows):
    """Bob stores his own token, uses every route on his integration, then disconnects and
    deletes it: Alice's row, logs and Slack grant are untouched throughout."""
    bob = auth("bob")
    before = await alice_state(db, fake_slack, alice)
    bob_token = await mint_slack_token(fake_slack)
    assert bob_token != alice

    resp = await hub_app.post(f"{SLACK}/tokens", json={"token": bob_token}, headers=bob)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["data"]["status"] == "ACTIVE"
    assert await alice_state(db, fake_slack, alice) == before

    await post_as(hub_app, bob, "hello from bob")
    assert bearer_of(fake_slack.calls_to("/api/chat.postMessage")[-1]) == bob_token
    for route in ("live-status", "list-channels", "get-user", "stats", "deactivate", "reactivate"):
        method, path, kwargs = ROUTES[route]
        resp = await hub_app.request(method, path, headers=bob, **kwargs)
        assert resp.status == 200, (route, await resp.text())

    # Bob's log is his alone: none of Alice's rows, all of his own calls.
    resp = await hub_app.get(f"{SLACK}/logs", params={"limit": "200"}, headers=bob)
    bob_logs = (await resp.json())["data"]["items"]
    assert {i["id"] for i in bob_logs}.isdisjoint({row[0] for row in before["logs"]})
    assert "post_message" in [i["action"] for i in bob_logs]
    assert not any("hello from alice" in str(i) for i in bob_logs)

    resp = await hub_app.get("/api/integrations", headers=bob)
    assert [i["provider"] for i in (await resp.json())["data"]] == ["slack"]

    for route in ("disconnect", "delete-integration"):
        method, path, kwargs = ROUTES[route]
        resp = await hub_app.request(method, path, headers=bob, **kwargs)
        assert resp.status == 200, (route, await resp.text())
    assert fake_slack.tokens[bob_token].revoked

    after = await alice_state(db, fake_slack, alice)
    assert after["row"] == before["row"]
    assert after["logs"] == before["logs"]
    assert after["token_revoked"] is False
    assert [m for m in after["messages"] if m not in before["messages"]] == [
        m for m in fake_slack.messages if m.get("text") == "hello from bob"
    ]

    await post_as(hub_app, auth("alice"), "alice still connected")
    assert bearer_of(fake_slack.calls_to("/api/chat.postMessage")[-1]) == alice
    resp = await hub_app.get(SLACK, headers=auth("alice"))
    assert (await resp.json())["data"]["status"] == "ACTIVE"

"""Issue 18: every connected account's actions as MCP tools, through the official SDK's own
client against the real server (Streamable HTTP at /mcp, and stdio in a subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from conftest import serve_hub
from helpers import connect_slack
from support import JWT_SECRET, auth, slack_section, trello_section
from test_trello import connect_by_posting

# A safety net for a wedged run only: every wait below is on an event, never on the clock.
DEADLINE = 30.0
SLACK_TOOLS = {"slack_post_message", "slack_list_channels", "slack_get_user"}
MESSAGE = {"channel": "C0000000001", "text": "Deploy finished"}


@pytest.fixture
async def app(make_config, fake_trello, aiohttp_client):
    """A hub with Slack and Trello, alice connected to both."""
    client = await serve_hub(make_config(providers={"trello": trello_section(fake_trello)}), aiohttp_client)
    await connect_slack(client, auth("alice"))
    await connect_by_posting(client, fake_trello)
    return client


@asynccontextmanager
async def mcp_client(app: Any, user: str = "alice", **kw: Any) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=auth(user))
    async with http, Client(streamable_http_client(str(app.make_url("/mcp")), http_client=http), **kw) as client:
        yield client


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


def posts(fake_slack: Any) -> list[Any]:
    return fake_slack.calls_to("/api/chat.postMessage")


async def test_tools_of_both_accounts_are_listed_and_called_with_activity_rows(app, fake_slack, fake_trello):
    async with mcp_client(app) as client:
        listing = {t.name: t for t in (await client.list_tools()).tools}
        assert SLACK_TOOLS <= set(listing)
        assert {"trello_list_boards", "trello_create_card", "hub_connect"} <= set(listing)
        post, boards = listing["slack_post_message"], listing["trello_list_boards"]
        assert post.input_schema["required"] == ["channel"] and "Slack" in (post.description or "")
        assert post.annotations.read_only_hint is False and boards.annotations.read_only_hint is True
        assert post.output_schema["type"] == "object"

        sent = await client.call_tool("slack_post_message", MESSAGE)
        assert not sent.is_error, sent.content
        assert sent.structured_content["channel"] == "C0000000001" and sent.structured_content["ts"]
        assert len(posts(fake_slack)) == 1

        read = await client.call_tool("trello_list_boards", {})
        assert not read.is_error, read.content
        assert fake_trello.calls_to("/1/members/me/boards")

    slack_rows = await app.db.activity(provider="slack", action="post_message")
    trello_rows = await app.db.activity(provider="trello", action="list_boards")
    assert [r.status for r in slack_rows] == ["SUCCESS"] and slack_rows[0].request_data["_via"] == "mcp"
    assert slack_rows[0].request_data["text"] == "Deploy finished"
    assert [r.request_data.get("_via") for r in trello_rows] == ["mcp"]


async def test_a_second_user_sees_only_their_own_tools(app, fake_slack):
    async with mcp_client(app, "bob") as bob:
        assert await tool_names(bob) == {"hub_connect"}
        refused = await bob.call_tool("slack_post_message", MESSAGE)
    assert refused.is_error and refused.structured_content["error"]["code"] == "integration_not_found"
    assert "hub_connect" in refused.structured_content["error"]["message"]
    assert posts(fake_slack) == []  # alice's account was never used for bob
    await connect_slack(app, auth("bob"))
    async with mcp_client(app, "bob") as bob:
        assert await tool_names(bob) == SLACK_TOOLS | {"hub_connect"}


async def test_bad_input_is_a_tool_error_that_reaches_no_provider(app, fake_slack):
    async with mcp_client(app) as client:
        result = await client.call_tool("slack_post_message", {"text": "no channel"})
        unknown = await client.call_tool("slack_no_such_action", {})
    assert result.is_error
    error = result.structured_content["error"]
    assert error["code"] == "validation_error" and "channel" in error["message"]
    assert unknown.is_error and unknown.structured_content["error"]["code"] == "unknown_action"
    assert posts(fake_slack) == []
    assert await app.db.activity(action="post_message") == []


async def test_disconnecting_removes_the_tools_and_notifies_an_open_listen_stream(app):
    async with mcp_client(app) as client:
        assert SLACK_TOOLS <= await tool_names(client)
        async with client.listen(tools_list_changed=True) as events:
            resp = await app.delete("/api/integrations/slack/disconnect", headers=auth("alice"))
            assert resp.status == 200, await resp.text()
            async with asyncio.timeout(DEADLINE):
                event = await anext(aiter(events))
        assert "ToolsListChanged" in type(event).__name__
        names = await tool_names(client)
    assert not names & SLACK_TOOLS and "trello_list_boards" in names


async def test_a_handshake_era_session_is_notified_on_the_session(app, fake_slack):
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_client(app, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.tools.list_changed is True
        assert SLACK_TOOLS <= await tool_names(client)
        resp = await app.delete("/api/integrations/slack/disconnect", headers=auth("alice"))
        assert resp.status == 200
        async with asyncio.timeout(DEADLINE):
            await changed.wait()
        assert not await tool_names(client) & SLACK_TOOLS


async def test_no_jwt_is_401_with_the_resource_metadata(app):
    resp = await app.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert resp.status == 401
    base = app.hub.config.public_url
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource"' in resp.headers["WWW-Authenticate"]
    meta = await app.get("/.well-known/oauth-protected-resource")
    doc = await meta.json()
    assert meta.status == 200 and doc["resource"] == base and doc["bearer_methods_supported"] == ["header"]
    sub = await (await app.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert sub["resource"] == base + "/mcp"


async def test_an_error_integration_is_a_tool_error_saying_reconnect(app, fake_slack):
    await app.db.set_integration(status="ERROR", status_reason="reconnect required: revoked")
    async with mcp_client(app) as client:
        assert not await tool_names(client) & SLACK_TOOLS
        result = await client.call_tool("slack_post_message", MESSAGE)
    assert result.is_error
    error = result.structured_content["error"]
    assert "reconnect" in error["message"] and "hub_connect" in error["message"]
    assert posts(fake_slack) == []


async def test_an_expired_integration_refreshes_then_calls(make_config, fake_slack, aiohttp_client):
    fake_slack.rotation = True
    app = await serve_hub(make_config(), aiohttp_client)
    await connect_slack(app, auth("alice"))
    await app.db.set_integration(status="EXPIRED")
    await app.db.expire_token()
    fake_slack.expire_tokens()
    async with mcp_client(app) as client:
        assert SLACK_TOOLS <= await tool_names(client)
        result = await client.call_tool("slack_post_message", MESSAGE)
    assert not result.is_error, result.content
    refreshes = [c for c in fake_slack.calls_to("/api/oauth.v2.access") if c.form.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1 and len(posts(fake_slack)) == 1
    assert (await app.db.integration()).status == "ACTIVE"


async def test_an_idempotency_key_runs_a_call_once(app, fake_slack):
    async with mcp_client(app) as client:
        first = await client.call_tool("slack_post_message", MESSAGE, meta={"idempotencyKey": "k-1"})
        again = await client.call_tool("slack_post_message", MESSAGE, meta={"idempotencyKey": "k-1"})
        other = await client.call_tool("slack_post_message", {**MESSAGE, "text": "else"}, meta={"idempotencyKey": "k-1"})
    assert not first.is_error and again.structured_content == first.structured_content
    assert len(posts(fake_slack)) == 1
    assert other.is_error and other.structured_content["error"]["code"] == "idempotency_key_reused"


async def test_the_connect_tool_returns_a_link_for_a_provider(app):
    async with mcp_client(app, "bob") as bob:
        tools = {t.name: t for t in (await bob.list_tools()).tools}
        assert set(tools["hub_connect"].input_schema["properties"]["provider"]["enum"]) == {"slack", "trello"}
        result = await bob.call_tool("hub_connect", {"provider": "slack"})
        bad = await bob.call_tool("hub_connect", {"provider": "nope"})
    assert not result.is_error, result.content
    link = result.structured_content
    assert link["connected"] is False and link["expiresAt"] and link["connectSessionId"]
    # A connect session offering only that provider: nothing starts until a browser opens it.
    assert "/connect/" in link["url"] and await app.db.states("bob") == []
    opened = await app.get(link["url"][link["url"].index("/connect/"):])
    page = await opened.text()
    assert opened.status == 200 and "Slack" in page and "Trello" not in page
    again = await app.get(link["url"][link["url"].index("/connect/"):])
    assert again.status == 410
    assert bad.is_error and bad.structured_content["error"]["code"] == "unknown_provider"


async def test_an_unexpected_failure_says_nothing_of_its_cause(app, monkeypatch):
    from mcp.shared.exceptions import MCPError

    async def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("postgresql://hub:s3cret-word@db/hub is down")

    async with mcp_client(app) as client:
        monkeypatch.setattr(app.hub.tools, "call", broken)
        result = await client.call_tool("slack_post_message", MESSAGE)
        monkeypatch.setattr(app.hub.tools, "available", broken)
        with pytest.raises(MCPError) as listing:
            await client.list_tools()
    assert result.is_error and result.structured_content["error"]["code"] == "internal_error"
    assert "s3cret" not in str(result.content) and "s3cret" not in str(listing.value)
    assert "could not list the tools" in str(listing.value)  # the hub's own words, not the SDK's default


async def test_a_session_belongs_to_the_user_who_opened_it(app):
    """The transport's own rule, checked at the HTTP level: another user's JWT on an open
    session's id is answered as if the session did not exist."""
    head = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    hello = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    resp = await app.post("/mcp", json=hello, headers={**head, **auth("alice")})
    assert resp.status == 200, await resp.text()
    session = {**head, "Mcp-Session-Id": resp.headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25"}
    await resp.read()
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    assert (await app.post("/mcp", json=listing, headers={**session, **auth("bob")})).status == 404
    mine = await app.post("/mcp", json=listing, headers={**session, **auth("alice")})
    assert mine.status == 200 and "slack_post_message" in await mine.text()


async def test_stdio_serves_the_named_user(app, tmp_path, db_url, encryption_keys, fake_slack, fake_trello):
    import json

    config = tmp_path / "hub.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "server": {"public_url": app.hub.config.public_url},
        "database": {"url": db_url},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": encryption_keys},
        "providers": {"slack": slack_section(fake_slack), "trello": trello_section(fake_trello)},
    }))
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hub", "mcp", "--config", str(config), "--user", "alice", "--no-migrate"], env=dict(os.environ)
    )
    async with Client(params) as client:
        names = await tool_names(client)
        result = await client.call_tool("slack_list_channels", {})
    assert SLACK_TOOLS <= names and "trello_list_boards" in names
    assert not result.is_error, result.content
    rows = await app.db.activity(provider="slack", action="list_channels")
    assert [r.request_data.get("_via") for r in rows] == ["mcp"]


async def test_the_sdk_starts_with_the_first_mcp_request_and_not_after_the_stop(app):
    """Start-up leaves the SDK alone (docs/performance.md, P6): the session manager starts
    when /mcp is first asked, and a request arriving once the app is stopping is a 503."""
    from hub.web.mcp_http import MCP_KEY

    endpoint = app.app[MCP_KEY]
    assert not endpoint.started
    async with mcp_client(app) as client:
        assert SLACK_TOOLS <= await tool_names(client)
    assert endpoint.started
    await endpoint.stop()
    late = await app.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=auth("alice"))
    assert late.status == 503 and (await late.json())["error"]["code"] == "unavailable"

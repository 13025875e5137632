"""What a client sees when the provider misbehaves: the documented status and message,
a FAILED activity row, and no change of state unless the lifecycle says so."""

from __future__ import annotations

import gzip
import json
import socket

import pytest
from aiohttp import web

from hub.store.models import IntegrationLog
from hub.web import HUB_KEY, create_app
from support import Rows, auth, build_hub, slack_section


async def last_log(db: Rows) -> IntegrationLog:
    return (await db.activity(kind="call"))[-1]


async def status_of(db: Rows) -> str:
    return (await db.integration()).status


async def post(client):
    return await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))


@pytest.mark.usefixtures("slack_connected")
async def test_429_on_a_write_goes_to_the_client_with_retry_after(hub_app, fake_slack, db):
    fake_slack.rate_limit_next(retry_after=7, path="/api/chat.postMessage")
    resp = await post(hub_app)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert len(fake_slack.calls_to("/api/chat.postMessage")) == 1  # a write is never replayed
    row = await last_log(db)
    assert (row.action, row.status) == ("post_message", "FAILED")
    assert await status_of(db) == "ACTIVE"


@pytest.mark.usefixtures("slack_connected")
async def test_429_on_a_read_is_retried_after_the_wait(hub_app, fake_slack):
    fake_slack.rate_limit_next(retry_after=1, path="/api/conversations.list")
    resp = await hub_app.get("/api/integrations/slack/channels", headers=auth("alice"))
    assert resp.status == 200
    assert len(fake_slack.calls_to("/api/conversations.list")) == 2


@pytest.mark.usefixtures("slack_connected")
async def test_429_with_a_wait_beyond_the_cap_is_not_retried(hub_app, fake_slack):
    fake_slack.rate_limit_next(retry_after=60, path="/api/conversations.list")
    resp = await hub_app.get("/api/integrations/slack/channels", headers=auth("alice"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "60"
    assert len(fake_slack.calls_to("/api/conversations.list")) == 1


@pytest.mark.usefixtures("slack_connected")
async def test_5xx_is_a_502_and_keeps_the_state(hub_app, fake_slack, db):
    fake_slack.fail_next(503, path="/api/chat.postMessage")
    resp = await post(hub_app)
    assert resp.status == 502
    body = await resp.json()
    assert body["error"]["code"] == "provider_unavailable" and "503" in body["error"]["message"]
    assert (await last_log(db)).status == "FAILED"
    assert await status_of(db) == "ACTIVE"


@pytest.mark.usefixtures("slack_connected")
async def test_slack_error_codes_map_to_statuses(hub_app, fake_slack, db):
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "nope", "text": "x"}, headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 404 and body["error"]["details"]["providerError"] == "channel_not_found"
    fake_slack.slack_error_next("chat.postMessage", "fatal_error")
    resp = await post(hub_app)
    body = await resp.json()
    assert resp.status == 502 and body["error"]["details"]["providerError"] == "fatal_error"
    assert await status_of(db) == "ACTIVE"


@pytest.fixture
async def second_hub(slack_connected, fake_slack, make_config, aiohttp_client):
    """A second hub on the same database whose Slack API URL and limits a test chooses."""

    async def make(api_url: str, **upstream):
        section = slack_section(fake_slack)
        section["urls"] = {**section["urls"], "api": api_url}
        config = make_config(providers={"slack": section}, upstream={"max_retry_wait": 2, **upstream})
        return await aiohttp_client(create_app(build_hub(config)))

    return make


async def test_timeout_is_a_504(second_hub, fake_slack):
    client = await second_hub(fake_slack.base_url + "/api", total_timeout=0.3)
    fake_slack.delay = 1.0
    resp = await post(client)
    assert resp.status == 504
    assert (await resp.json())["error"]["code"] == "provider_timeout"
    assert (await last_log(Rows(client.app[HUB_KEY]))).status == "FAILED"


async def test_refused_connection_is_a_502(second_hub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await second_hub(f"http://127.0.0.1:{port}/api")
    resp = await post(client)
    body = await resp.json()
    assert resp.status == 502 and "could not reach" in body["error"]["message"]


@pytest.fixture
async def raw_server(aiohttp_server):
    """A server answering every call with ``respond(request)``, headers and all."""

    async def make(respond):
        app = web.Application()
        app.router.add_route("*", "/api/{method}", respond)
        server = await aiohttp_server(app)
        return str(server.make_url("/api"))

    return make


@pytest.fixture
async def odd_server(raw_server):
    """A server answering every call with ``body``."""

    async def make(body: bytes, content_type: str = "application/json"):
        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type)

        return await raw_server(answer)

    return make


async def test_malformed_json_is_a_502(second_hub, odd_server):
    client = await second_hub(await odd_server(b"{not json", "text/plain"))
    resp = await post(client)
    body = await resp.json()
    assert resp.status == 502 and body["error"]["code"] == "provider_bad_response"


async def test_oversized_response_is_refused(second_hub, odd_server):
    big = json.dumps({"ok": True, "padding": "x" * 50_000}).encode()
    client = await second_hub(await odd_server(big), max_response_bytes=4096)
    resp = await post(client)
    body = await resp.json()
    assert resp.status == 502 and "limit" in body["error"]["message"]


async def test_oversized_chunked_response_without_a_length_is_refused(second_hub, raw_server):
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"ok": true, "padding": "')
        for _ in range(20):
            await resp.write(b"x" * 1000)
        await resp.write(b'"}')
        return resp

    client = await second_hub(await raw_server(chunked), max_response_bytes=4096)
    resp = await post(client)
    body = await resp.json()
    assert resp.status == 502 and "limit" in body["error"]["message"], body


async def test_a_small_compressed_body_is_capped_by_its_decompressed_size(second_hub, raw_server):
    """A few hundred gzip bytes can unpack to megabytes: the cap counts what is unpacked."""
    plain = json.dumps({"ok": True, "padding": "x" * 200_000}).encode()
    packed = gzip.compress(plain)
    assert len(packed) < 4096 < len(plain)

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=packed, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    client = await second_hub(await raw_server(bomb), max_response_bytes=4096)
    resp = await post(client)
    body = await resp.json()
    assert resp.status == 502 and "limit" in body["error"]["message"], body

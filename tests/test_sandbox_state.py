"""The sandbox's fakes keep what they issued and hold across a restart, on the same ports."""

from __future__ import annotations

import json

from helpers import callback_path, consent, query_of
from hub.core.hub import Hub
from hub.infra.secrets import Secrets
from hub.sandbox import start_fakes
from hub.web import create_app
from support import JWT_SECRET, auth, make_registry
from test_sandbox import config_for


async def start(db_url, keys, state_dir, aiohttp_client):
    registry = make_registry()
    config = config_for(db_url, keys)
    fakes = await start_fakes(config, registry, state_dir=state_dir)
    hub = Hub(config, registry, Secrets(JWT_SECRET, keys))
    client = await aiohttp_client(create_app(hub))
    hub.config.server.public_url = str(client.make_url("")).rstrip("/")
    return fakes, client


def timeless(state: dict) -> dict:
    """A fake's exported state without its instants: converting them between clocks shifts them by microseconds."""
    text = json.dumps(state)
    return json.loads(text, object_hook=lambda d: {k: v for k, v in d.items() if k not in ("issued_at", "expires_at")})


def fake_of(fakes, name):
    return next(state.owner for state in fakes.states if state.name == name)


async def connect_all(client, fakes) -> None:
    for provider in ("slack", "google_calendar"):
        resp = await client.get(f"/api/integrations/{provider}/connect", headers=auth("alice"))
        location = await consent((await resp.json())["data"]["authUrl"])
        resp = await client.get(callback_path(location), headers={"Accept": "application/json"})
        assert (await resp.json())["data"]["status"] == "ACTIVE", provider
    resp = await client.get("/api/integrations/trello/connect", headers=auth("alice"))
    state = query_of(query_of((await resp.json())["data"]["authUrl"])["return_url"])["state"]
    resp = await client.post("/api/integrations/trello/tokens", json={"token": fake_of(fakes, "trello").issue_token(), "state": state})
    assert resp.status == 201, await resp.text()


async def act(client) -> None:
    for method, path, body in (("POST", "slack/message", {"channel": "general", "text": "hello"}),
                               ("GET", "trello/boards", None), ("GET", "google_calendar/calendars", None)):
        resp = await client.request(method, f"/api/integrations/{path}", json=body, headers=auth("alice"))
        assert resp.status == 200, (path, await resp.text())


async def test_every_fake_keeps_its_tokens_data_and_port_across_a_restart(db_url, encryption_keys, aiohttp_client, tmp_path):
    state_dir = tmp_path / "sandbox"
    fakes, client = await start(db_url, encryption_keys, state_dir, aiohttp_client)
    try:
        await connect_all(client, fakes)
        await act(client)
        before = {state.name: timeless(state.owner.export_state()) for state in fakes.states}
        urls = dict(fakes.urls)
    finally:
        await client.close()
        await fakes.stop()
    assert {p.name for p in state_dir.iterdir()} == {"slack.json", "trello.json", "google_calendar.json"}

    fakes, client = await start(db_url, encryption_keys, state_dir, aiohttp_client)
    try:
        assert fakes.urls == urls
        for state in fakes.states:
            assert timeless(state.owner.export_state()) == before[state.name], state.name
        await act(client)
        resp = await client.get("/api/integrations", headers=auth("alice"))
        assert {i["provider"]: i["status"] for i in (await resp.json())["data"]} == {
            "slack": "ACTIVE", "trello": "ACTIVE", "google_calendar": "ACTIVE"}
        assert [m["text"] for m in fake_of(fakes, "slack").messages] == ["hello", "hello"]
    finally:
        await client.close()
        await fakes.stop()


async def test_a_taken_port_or_an_unreadable_state_file_starts_the_fake_afresh(db_url, encryption_keys, aiohttp_client, tmp_path, caplog):
    import socket

    state_dir = tmp_path / "sandbox"
    fakes, client = await start(db_url, encryption_keys, state_dir, aiohttp_client)
    await client.close()
    await fakes.stop()
    slack_port = json.loads((state_dir / "slack.json").read_text())["port"]
    (state_dir / "trello.json").write_text("{not json")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", slack_port))
        squatter.listen()
        fakes, client = await start(db_url, encryption_keys, state_dir, aiohttp_client)
        try:
            assert set(fakes.urls) == {"slack", "trello", "google_calendar"}
            assert not fakes.urls["slack"].endswith(f":{slack_port}")
            assert f"port {slack_port} is taken" in caplog.text and "trello.json is unreadable" in caplog.text
        finally:
            await client.close()
            await fakes.stop()

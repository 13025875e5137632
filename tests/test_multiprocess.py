"""Issue 6, item 8: refresh single-flight with rotating refresh tokens, in one process and
across ``hub serve`` processes sharing one database, and a connect that crosses processes.

The fakes rotate: Slack with ``rotation=True`` (a refresh token is spent by its first use)
and Google with ``rotate_refresh=True`` (each refresh hands out a new refresh token
and spends the old one). So a second refresh with a token already used is refused
(``invalid_refresh_token`` / ``invalid_grant``) and would show up as a failed call: a test
that sees every call succeed and the fake count exactly one refresh proves the refresh ran
once, whoever asked for it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from helpers import callback_path, connect_slack, consent
from hub.store.engine import create_engine, sessionmaker
from hub.store.models import Integration, IntegrationLog, utcnow
from hub.web import HUB_KEY, create_app
from hub_google_calendar.fake import FakeGoogle
from hub_slack.fake import FakeSlack
from procs import HubProcess, free_port, write_config
from support import Rows, auth, build_hub, google_section, slack_section

SLACK, GOOGLE = "slack", "google_calendar"
CALLS = 200


class Provider:
    """What differs between the two rotating fakes, behind one face."""

    def __init__(self, name: str, fake: Any) -> None:
        self.name = name
        self.fake = fake

    def section(self) -> dict[str, Any]:
        section = slack_section(self.fake) if self.name == SLACK else google_section(self.fake)
        return {**section, "max_concurrency": 400}

    def refresh_calls(self) -> list[Any]:
        path = "/api/oauth.v2.access" if self.name == SLACK else "/token"
        return [c for c in self.fake.calls_to(path) if c.form.get("grant_type") == "refresh_token"]

    def action(self, i: int) -> tuple[str, str, Any]:
        if self.name == SLACK:
            return "POST", "/api/integrations/slack/message", {"channel": "general", "text": f"m{i}"}
        return "GET", "/api/integrations/google_calendar/calendars", None

    @property
    def action_name(self) -> str:
        return "post_message" if self.name == SLACK else "list_calendars"

    def live_refresh_tokens(self) -> set[str]:
        fake = self.fake
        return {t.value for t in fake.tokens.values() if t.kind == "refresh" and t.usable(fake.clock())}


@pytest.fixture(params=[SLACK, GOOGLE])
async def provider(request: pytest.FixtureRequest) -> Any:
    if request.param == SLACK:
        fake: Any = FakeSlack(client_id="slack-client", client_secret="slack-secret-value-123", rotation=True)
    else:
        fake = FakeGoogle(rotate_refresh=True)
    await fake.start()
    yield Provider(request.param, fake)
    await fake.stop()


async def connect(session: Any, provider: Provider, user: str = "alice") -> dict[str, Any]:
    if provider.name == SLACK:
        return (await connect_slack(session, auth(user)))["data"]
    resp = await session.get("/api/integrations/google_calendar/connect", headers=auth(user))
    assert resp.status == 200, await resp.text()
    location = await consent((await resp.json())["data"]["authUrl"])
    resp = await session.get(callback_path(location), headers={"Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def expire(db_url: str, provider: Provider) -> None:
    """The stored token is past its expiry, and the provider agrees."""
    engine = create_engine(db_url)
    try:
        async with sessionmaker(engine).begin() as s:
            await s.execute(update(Integration).values(token_expiry=utcnow() - timedelta(seconds=5)))
    finally:
        await engine.dispose()
    provider.fake.expire_tokens()


async def stored(db_url: str) -> tuple[list[Integration], list[IntegrationLog]]:
    engine = create_engine(db_url)
    try:
        async with sessionmaker(engine)() as s:
            return list((await s.scalars(select(Integration))).all()), list((await s.scalars(select(IntegrationLog))).all())
    finally:
        await engine.dispose()


async def call(session: aiohttp.ClientSession, base: str, provider: Provider, i: int) -> tuple[int, Any]:
    method, path, body = provider.action(i)
    async with session.request(method, f"{base}{path}", json=body, headers=auth("alice")) as resp:
        return resp.status, await resp.json(content_type=None)


def assert_one_clean_refresh(provider: Provider, answers: list[tuple[int, Any]], logs: list[IntegrationLog]) -> None:
    statuses = [status for status, _ in answers]
    assert statuses == [200] * CALLS, {s: statuses.count(s) for s in set(statuses)}
    refreshes = provider.refresh_calls()
    assert len(refreshes) == 1, f"{len(refreshes)} refreshes at the provider"
    if provider.name == GOOGLE:
        assert provider.fake.refresh_count == 1  # the one refresh succeeded: no invalid_grant
    refresh_rows = [r for r in logs if r.action == "refresh_token"]
    assert [(r.status, r.error_message) for r in refresh_rows] == [("SUCCESS", None)]
    calls = [r for r in logs if r.action == provider.action_name]
    assert len(calls) == CALLS and {r.status for r in calls} == {"SUCCESS"}
    assert not [r for r in logs if r.status == "FAILED"]


async def test_200_concurrent_calls_in_one_process_refresh_a_rotating_token_once(
    provider: Provider, make_config: Any, aiohttp_client: Any, db_url: str
) -> None:
    client = await aiohttp_client(create_app(build_hub(make_config(providers={provider.name: provider.section()}))))
    await connect(client, provider)
    await expire(db_url, provider)
    provider.fake.delay = 0.2  # the refresh stays in flight while the other calls arrive

    answers = await asyncio.gather(*(call(client.session, str(client.make_url("")).rstrip("/"), provider, i) for i in range(CALLS)))

    db = Rows(client.app[HUB_KEY])
    logs, rows = await db.activity(), await db.integrations()
    assert_one_clean_refresh(provider, answers, logs)
    # The rotated refresh token is the one stored, and it is the provider's only live one.
    (row,) = rows
    token = await db.token(provider=provider.name)
    assert provider.live_refresh_tokens() == {token.refresh_token}
    assert row.status == "ACTIVE" and row.refresh_lease_until is None


async def start_pair(tmp_path: Path, db_url: str, encryption_keys: str, provider: Provider) -> tuple[HubProcess, HubProcess]:
    """Two ``hub serve`` processes on one database, behind one public address (process A's:
    the stand-in for the load balancer that both would sit behind)."""
    ports = free_port(), free_port()
    public = f"http://127.0.0.1:{ports[0]}"
    procs = []
    for name, port in zip("AB", ports):
        config = write_config(
            tmp_path / f"hub-{name}.yaml", db_url=db_url, encryption_keys=encryption_keys, port=port,
            providers={provider.name: provider.section()}, public_url=public,
        )
        procs.append(HubProcess(config, port, workdir=tmp_path / name, name=f"hub-{name}"))
    # A first, alone: it brings the schema up to date; then B.
    await procs[0].start()
    await procs[1].start()
    return procs[0], procs[1]


async def test_two_processes_refresh_a_rotating_token_once_between_them(
    provider: Provider, tmp_path: Path, db_url: str, encryption_keys: str
) -> None:
    a, b = await start_pair(tmp_path, db_url, encryption_keys, provider)
    async with a, b:
        async with aiohttp.ClientSession(base_url=a.url) as s:
            await connect(s, provider)
        await expire(db_url, provider)
        provider.fake.delay = 0.3

        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as load:
            answers = await asyncio.gather(*(call(load, (a, b)[i % 2].url, provider, i) for i in range(CALLS)))

        assert await a.stop() == 0 and await b.stop() == 0
        for p in (a, b):
            assert "Traceback" not in p.output(), p.output()

    rows, logs = await stored(db_url)
    assert_one_clean_refresh(provider, answers, logs)
    (row,) = rows
    assert row.status == "ACTIVE" and row.refresh_lease_until is None
    assert len(provider.live_refresh_tokens()) == 1


async def test_connect_begun_on_one_process_is_finished_on_the_other(
    provider: Provider, tmp_path: Path, db_url: str, encryption_keys: str
) -> None:
    a, b = await start_pair(tmp_path, db_url, encryption_keys, provider)
    async with a, b, aiohttp.ClientSession() as browser:
        async with browser.get(f"{a.url}/api/integrations/{provider.name}/connect", headers=auth("alice")) as resp:
            assert resp.status == 200, await resp.text()
            auth_url = (await resp.json())["data"]["authUrl"]
        location = await consent(auth_url)
        assert location.startswith(a.url + f"/api/integrations/{provider.name}/callback?")
        # The load balancer sends the browser's return to the other process.
        async with browser.get(b.url + callback_path(location), headers={"Accept": "application/json"}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["data"]["status"] == "ACTIVE" and body["data"]["hasRefreshToken"] is True
        if provider.name == GOOGLE:  # the PKCE verifier stored by A was used by B
            (exchange,) = [c for c in provider.fake.calls_to("/token") if c.form.get("grant_type") == "authorization_code"]
            assert exchange.form.get("code_verifier")

        # The state was used up for both: replaying the return on A is refused.
        async with browser.get(a.url + callback_path(location), headers={"Accept": "application/json"}) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"]["code"] == "state_replayed"

        # Both processes see and use the one integration.
        for p in (a, b):
            method, path, data = provider.action(0)
            async with browser.request(method, p.url + path, json=data, headers=auth("alice")) as resp:
                assert resp.status == 200, (p.name, await resp.text())
        assert await a.stop() == 0 and await b.stop() == 0
    rows, _ = await stored(db_url)
    assert [(r.user_id, r.provider, r.status) for r in rows] == [("alice", provider.name, "ACTIVE")]

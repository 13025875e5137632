"""Review findings on connecting and authentication (2026-12): the OAuth state is used once
even under a race, JWTs minted for other services are refused, a reconnect to another
account does not keep the old account's grant, return URLs are matched on normalised whole
path segments, and pending states stay bounded."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from conftest import serve_hub
from helpers import callback_path, consent, query_of
from sqlalchemy import event
from sqlalchemy.util import await_only

from hub.infra.auth import JWTVerifier
from hub.errors import Unauthorized
from support import JWT_SECRET, Rows, auth

SLACK = "/api/integrations/slack"
TRELLO = "/api/integrations/trello"
JSON_ACCEPT = {"Accept": "application/json"}
DEFAULT_CAP = 20  # security.max_pending_states when not configured
ARRIVAL_DEADLINE = 5.0  # seconds; only reached where the database itself serialises the requests


async def start_connect(client: Any, user: str = "alice", **params: str) -> str:
    """``connect``; returns the provider authorization URL."""
    resp = await client.get(f"{SLACK}/connect", params=params, headers=auth(user))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["data"]["authUrl"])


# --- finding 4: a state is used once, also when callbacks race --------------------------------


async def _arrive(barrier: asyncio.Barrier) -> None:
    try:
        await asyncio.wait_for(barrier.wait(), ARRIVAL_DEADLINE)
    except (TimeoutError, asyncio.BrokenBarrierError):
        pass  # the others are held elsewhere (a real row lock): let this one go on


@contextmanager
def racing_for_the_state(hub: Any, parties: int) -> Iterator[None]:
    """The worst interleaving, every time: each request that is about to mark the state used
    waits until all ``parties`` requests have got that far, so every one of them has
    already looked at the state before any writes it. Where the database really locks the
    row, the others never get there and the first goes on after the deadline."""
    barrier = asyncio.Barrier(parties)

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE OAUTH_STATES"):
            await_only(_arrive(barrier))

    event.listen(hub.engine.sync_engine, "before_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(hub.engine.sync_engine, "before_cursor_execute", hold)


async def test_concurrent_callbacks_with_one_state_connect_once(hub_app: Any, fake_slack: Any) -> None:
    path = callback_path(await consent(await start_connect(hub_app)))
    with racing_for_the_state(hub_app.hub, 6):
        answers = await asyncio.gather(*(hub_app.get(path, headers=JSON_ACCEPT) for _ in range(6)))
    bodies = [(r.status, await r.json()) for r in answers]

    assert sorted(status for status, _ in bodies) == [200, 400, 400, 400, 400, 400], bodies
    refused = [body["error"]["code"] for status, body in bodies if status != 200]
    assert refused == ["state_replayed"] * 5, bodies
    assert len(fake_slack.calls_to("/api/oauth.v2.access")) == 1  # the code was exchanged once
    assert len(await hub_app.db.activity(action="exchange_code")) == 1


async def test_concurrent_token_posts_with_one_state_store_once(trello_app: Any, fake_trello: Any) -> None:
    resp = await trello_app.get(f"{TRELLO}/connect", headers=auth("alice"))
    state = query_of(query_of((await resp.json())["data"]["authUrl"])["return_url"])["state"]
    token = fake_trello.issue_token()
    with racing_for_the_state(trello_app.hub, 5):
        answers = await asyncio.gather(
            *(trello_app.post(f"{TRELLO}/tokens", json={"token": token, "state": state}) for _ in range(5))
        )
    bodies = [(r.status, await r.json()) for r in answers]

    assert sorted(status for status, _ in bodies) == [201, 400, 400, 400, 400], bodies
    assert [b["error"]["code"] for s, b in bodies if s != 201] == ["state_replayed"] * 4, bodies
    assert len(fake_trello.calls_to("/1/tokens/", "GET")) == 1  # verified with Trello once
    assert len(await trello_app.db.activity(action="import_token")) == 1  # stored once


async def test_a_peek_at_the_state_does_not_use_it_up(trello_app: Any, fake_trello: Any) -> None:
    resp = await trello_app.get(f"{TRELLO}/connect", headers=auth("alice"))
    state = query_of(query_of((await resp.json())["data"]["authUrl"])["return_url"])["state"]
    for _ in range(2):  # the fragment page may be reloaded
        page = await trello_app.get(f"{TRELLO}/callback", params={"state": state})
        assert page.status == 200
    resp = await trello_app.post(f"{TRELLO}/tokens", json={"token": fake_trello.issue_token(), "state": state})
    assert resp.status == 201, await resp.text()
    page = await trello_app.get(f"{TRELLO}/callback", params={"state": state})
    assert page.status == 400 and "already used" in await page.text()


# --- finding 5: tokens for other audiences ------------------------------------------------------


def _jwt(**claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "iat": now, "exp": now + 300, **claims}, JWT_SECRET, algorithm="HS256")


def test_a_token_for_another_audience_is_refused_when_none_is_configured() -> None:
    verifier = JWTVerifier(secret=JWT_SECRET)
    assert verifier.verify(f"Bearer {_jwt()}").user_id == "alice"  # no aud: accepted, as before
    for aud in ("payments-api", ["payments-api", "billing"]):
        token = _jwt(aud=aud)
        for _ in range(2):  # a refusal is never remembered by the cache
            with pytest.raises(Unauthorized) as info:
                verifier.verify(f"Bearer {token}")
            assert info.value.status == 401
            assert "aud" in info.value.message and "auth.audience" in info.value.message
    assert not any("payments-api" in str(c.claims.get("aud")) for _, c in verifier._verified.values())


def test_a_configured_audience_works_as_before() -> None:
    verifier = JWTVerifier(secret=JWT_SECRET, audience="integration-hub")
    assert verifier.verify(f"Bearer {_jwt(aud='integration-hub')}").user_id == "alice"
    assert verifier.verify(f"Bearer {_jwt(aud=['x', 'integration-hub'])}").user_id == "alice"
    for token in (_jwt(aud="payments-api"), _jwt()):
        with pytest.raises(Unauthorized):
            verifier.verify(f"Bearer {token}")


async def test_the_api_refuses_a_token_minted_for_another_service(hub_app: Any) -> None:
    resp = await hub_app.get("/api/integrations", headers={"Authorization": f"Bearer {_jwt(aud='payments-api')}"})
    body = await resp.json()
    assert resp.status == 401 and body["error"]["code"] == "unauthorized", body
    assert "aud" in body["error"]["message"]
    assert (await hub_app.get("/api/integrations", headers={"Authorization": f"Bearer {_jwt()}"})).status == 200


# --- finding 6: reconnecting another account ---------------------------------------------------


async def connect_workspace(client: Any, team: str | None = None, user: str = "alice") -> dict[str, Any]:
    auth_url = await start_connect(client, user)
    if team:
        auth_url += "&" + urlencode({"team": team})  # the user picks another workspace on the consent page
    resp = await client.get(callback_path(await consent(auth_url)), headers=JSON_ACCEPT)
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body["data"])


async def test_connecting_another_account_revokes_and_drops_the_old_grant(hub_app: Any, fake_slack: Any) -> None:
    db = hub_app.db
    fake_slack.rotation = True
    first = await connect_workspace(hub_app)
    assert first["hasRefreshToken"] and first["account"]["teamId"] == "T0000000001"
    old = await db.token()

    fake_slack.rotation = False
    second = await connect_workspace(hub_app, team="T0000000002")
    assert second["account"]["teamId"] == "T0000000002"
    assert not second["hasRefreshToken"]
    new = await db.token()
    assert new.refresh_token is None and new.access_token != old.access_token
    assert fake_slack.tokens[old.access_token].revoked and fake_slack.tokens[old.refresh_token].revoked  # A's grant is gone upstream
    assert not fake_slack.tokens[new.access_token].revoked
    revokes = await db.activity(action="revoke_token")
    assert [r.status for r in revokes] == ["SUCCESS"]
    assert "T0000000001" in str(revokes[0].request_data)

    # Nothing of A's grant is left to refresh with; B still works.
    resp = await hub_app.post(f"{SLACK}/refresh", headers=auth("alice"))
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "no_refresh_token"
    resp = await hub_app.get(f"{SLACK}/status", headers=auth("alice"))
    assert resp.status == 200 and (await resp.json())["data"]["account"]["teamId"] == "T0000000002"


async def test_a_failed_revoke_of_the_old_account_does_not_block_the_new_one(hub_app: Any, fake_slack: Any) -> None:
    fake_slack.rotation = True
    await connect_workspace(hub_app)
    fake_slack.rotation = False
    fake_slack.slack_error_next("auth.revoke", "internal_error")
    second = await connect_workspace(hub_app, team="T0000000002")
    assert second["status"] == "ACTIVE" and not second["hasRefreshToken"]
    assert (await hub_app.db.token()).refresh_token is None
    assert [r.status for r in await hub_app.db.activity(action="revoke_token")] == ["FAILED"]


async def test_reconnecting_the_same_account_keeps_its_refresh_token(hub_app: Any, fake_slack: Any) -> None:
    db = hub_app.db
    fake_slack.rotation = True
    await connect_workspace(hub_app)
    old = await db.token()

    fake_slack.rotation = False
    again = await connect_workspace(hub_app)
    assert again["hasRefreshToken"]
    assert (await db.token()).refresh_token == old.refresh_token
    assert not fake_slack.calls_to("/api/auth.revoke")
    assert await db.activity(action="revoke_token") == []
    resp = await hub_app.post(f"{SLACK}/refresh", headers=auth("alice"))
    assert resp.status == 200, await resp.text()


# --- finding 7: return URLs ---------------------------------------------------------------------

ALLOWED = ["https://app.example.com/settings", "https://app.example.com/base/", "http://localhost:3000"]

REFUSED = {
    "dot-dot": "https://app.example.com/settings/../admin/logout",
    "encoded-dot-dot": "https://app.example.com/settings/%2e%2e/admin",
    "encoded-dot-dot-upper": "https://app.example.com/settings/%2E%2E/admin",
    "half-encoded-dot-dot": "https://app.example.com/settings/.%2e/admin",
    "dot-dot-with-params": "https://app.example.com/settings/..;/admin",
    "double-encoded-dot-dot": "https://app.example.com/settings/%252e%252e/admin",
    "encoded-slash": "https://app.example.com/settings%2F..%2Fadmin",
    "encoded-slash-lower": "https://app.example.com/settings/..%2fadmin",
    "backslash": "https://app.example.com/settings/..\\admin",
    "backslash-before-host": "https://app.example.com\\@evil.com/settings",
    "encoded-backslash": "https://app.example.com/settings/%5C..%5Cadmin",
    "prefix-not-segment": "https://app.example.com/settingsXYZ",
    "prefix-not-segment-dash": "https://app.example.com/settings-old/x",
    "prefix-of-slash-entry": "https://app.example.com/basement",
    "userinfo-other-host": "https://app.example.com@evil.com/",
    "userinfo-same-host": "https://someone:pw@app.example.com/settings",
    "different-port": "https://app.example.com:8443/settings",
    "different-scheme": "http://app.example.com/settings",
    "control-character": "https://app.example.com/settings/\t../admin",
    "default-port-other-scheme": "http://localhost:443/",
}

ACCEPTED = {
    "exact": ("https://app.example.com/settings", "https://app.example.com/settings"),
    "below": ("https://app.example.com/settings/profile", "https://app.example.com/settings/profile"),
    "uppercase-host": ("https://APP.Example.COM/settings", "https://app.example.com/settings"),
    "default-port": ("https://app.example.com:443/settings/x", "https://app.example.com/settings/x"),
    "dots-that-stay-inside": ("https://app.example.com/settings/./a/../profile", "https://app.example.com/settings/profile"),
    "encoded-unreserved": ("https://app.example.com/%73ettings/%7Ebob", "https://app.example.com/settings/~bob"),
    "other-encodings-kept": ("https://app.example.com/settings/a%20b", "https://app.example.com/settings/a%20b"),
    "query-and-fragment": ("https://app.example.com/settings?tab=1&x=%2F..#top", "https://app.example.com/settings?tab=1&x=%2F..#top"),
    "slash-entry-itself": ("https://app.example.com/base/", "https://app.example.com/base/"),
    "slash-entry-without-slash": ("https://app.example.com/base", "https://app.example.com/base"),
    "slash-entry-below": ("https://app.example.com/base/x/y?z=1", "https://app.example.com/base/x/y?z=1"),
    "port-kept": ("http://localhost:3000/anything", "http://localhost:3000/anything"),
    "empty-path": ("http://localhost:3000", "http://localhost:3000/"),
}


@pytest.fixture
async def redirect_app(make_config: Any, aiohttp_client: Any) -> Any:
    return await serve_hub(make_config(server={"allowed_redirects": ALLOWED}), aiohttp_client)


async def test_return_url_tricks_are_refused(redirect_app: Any) -> None:
    wrong: list[str] = []
    for name, url in REFUSED.items():
        resp = await redirect_app.get(f"{SLACK}/connect", params={"return_url": url}, headers=auth(f"u-{name}"))
        body = await resp.json()
        if resp.status != 400 or body["error"]["details"]["field"] != "return_url":
            wrong.append(f"{name}: {resp.status} {body}")
    assert wrong == []
    assert await redirect_app.db.states() == []


async def test_allowed_return_urls_are_stored_normalised(redirect_app: Any) -> None:
    wrong: list[str] = []
    for name, (url, expected) in ACCEPTED.items():
        resp = await redirect_app.get(f"{SLACK}/connect", params={"return_url": url}, headers=auth(f"u-{name}"))
        if resp.status != 200:
            wrong.append(f"{name}: {resp.status} {await resp.text()}")
            continue
        state = query_of((await resp.json())["data"]["authUrl"])["state"]
        issued = await redirect_app.db.states(state=state)
        stored = issued[0].return_url if issued else None
        if stored != expected:
            wrong.append(f"{name}: stored {stored!r}, expected {expected!r}")
    assert wrong == []


async def test_the_callback_redirects_to_the_normalised_url(redirect_app: Any, fake_slack: Any) -> None:
    auth_url = await start_connect(redirect_app, return_url="https://APP.example.com:443/settings/./x/../profile?tab=1")
    resp = await redirect_app.get(callback_path(await consent(auth_url)), allow_redirects=False)
    assert resp.status == 302
    target = resp.headers["Location"]
    assert target.startswith("https://app.example.com/settings/profile?tab=1&"), target
    assert query_of(target)["status"] == "connected"


# --- finding 9: pending states stay bounded ---------------------------------------------------


async def test_one_users_pending_states_stay_under_the_cap(hub_app: Any, fake_slack: Any, db: Rows) -> None:
    first = await start_connect(hub_app)
    for _ in range(20):  # 500 connects in all, 25 at a time, as a busy client would
        await asyncio.gather(*(start_connect(hub_app) for _ in range(25)))
    last = await start_connect(hub_app)
    assert len(await db.states("alice")) <= DEFAULT_CAP

    # The newest connect still works; the oldest was dropped.
    resp = await hub_app.get(callback_path(await consent(last)), headers=JSON_ACCEPT)
    assert resp.status == 200, await resp.text()
    resp = await hub_app.get(callback_path(await consent(first)), headers=JSON_ACCEPT)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_state"

    # States spent on declined consents count too: they cannot pile up either.
    for _ in range(DEFAULT_CAP + 10):
        resp = await hub_app.get(callback_path(await consent(await start_connect(hub_app, "bob"), "deny")), headers=JSON_ACCEPT)
        assert resp.status == 400
    assert len(await db.states("bob")) <= DEFAULT_CAP


async def test_the_cap_is_configurable(make_config: Any, aiohttp_client: Any, fake_slack: Any) -> None:
    client = await serve_hub(make_config(security={"max_pending_states": 3}), aiohttp_client)
    for _ in range(10):
        await start_connect(client)
    assert len(await client.db.states("alice")) == 3


async def test_expired_states_are_deleted_at_expiry(hub_app: Any, fake_slack: Any, db: Rows, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_app.hub
    ttl = hub.config.security.state_ttl_seconds
    users = [f"user-{i}" for i in range(40)]
    for user in users:
        await start_connect(hub_app, user)
    spent = await start_connect(hub_app, "spender")
    resp = await hub_app.get(callback_path(await consent(spent, "deny")), headers=JSON_ACCEPT)
    assert resp.status == 400  # a consumed state, left for the purge too
    real = hub.states.clock

    monkeypatch.setattr(hub.states, "clock", lambda: real() + timedelta(seconds=ttl - 5))
    await start_connect(hub_app, "late")
    assert len(await db.states()) == len(users) + 2  # none has expired yet

    monkeypatch.setattr(hub.states, "clock", lambda: real() + timedelta(seconds=ttl + 1))
    await start_connect(hub_app, "late")
    rows = await db.states()
    assert {r.user_id for r in rows} == {"late"} and len(rows) == 2


async def test_the_cap_holds_under_concurrent_connects_from_many_users(hub_app: Any, fake_slack: Any, db: Rows) -> None:
    users = [f"user-{i}" for i in range(5)]
    await asyncio.gather(*(start_connect(hub_app, user) for _ in range(DEFAULT_CAP + 15) for user in users))
    counts = dict(Counter(row.user_id for row in await db.states()))
    assert counts == {user: DEFAULT_CAP for user in users}

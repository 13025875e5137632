"""Connect sessions (issue 15, item 3), over plain HTTP: each "browser" is an aiohttp
session with a cookie jar of its own.

The reproduced login CSRF: user A starts a connect, victim B opens that authorization URL
and approves, and the callback stores B's account under A. With a connect session the
state is bound to the cookie of the browser that opened A's link, so B's callback is
refused and nothing is stored; A's own browser still finishes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import func, select

from conftest import serve_hub
from helpers import consent, query_of
from hub.infra.config import ConfigError, config_from_dict, load_config
from hub.store.models import ConnectSession, OAuthState, utcnow
from support import auth, trello_section

APP = "https://app.example.com/"
OPENER = "https://app.example.com"


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A browser of its own: its cookies are its alone (the hub is on 127.0.0.1, which a
    default cookie jar would refuse to keep cookies for)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s


async def create(client: Any, user: str = "alice", **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/connect-sessions", json=body, headers=auth(user))
    answer = await resp.json()
    assert resp.status == 201, answer
    return answer["data"]


async def open_link(b: aiohttp.ClientSession, url: str) -> str:
    """Open the link as a browser does; returns the session page's URL."""
    async with b.get(url, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        return str(resp.url.join(aiohttp.client.URL(resp.headers["Location"])))


async def start(b: aiohttp.ClientSession, page_url: str, provider: str = "slack") -> str:
    """Press the provider's Connect link on the session page; returns the provider's URL."""
    async with b.get(page_url) as page:
        text = await page.text()
        assert page.status == 200, text
    href = re.search(rf'id="start-{provider}" href="([^"]+)"', text)
    assert href, text
    async with b.get(str(page.url.join(aiohttp.client.URL(href.group(1)))), allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def visit(b: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with b.get(url, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


def code_of(page: str) -> str | None:
    found = re.search(r'data-code="([^"]*)"', page)
    return found.group(1) if found else None


async def session_rows(client: Any) -> list[ConnectSession]:
    async with client.hub.sessions() as s:
        return list((await s.scalars(select(ConnectSession).order_by(ConnectSession.created_at))).all())


@pytest.fixture
async def hub(make_config, fake_trello, aiohttp_client) -> Any:
    config = make_config(providers={"trello": trello_section(fake_trello)}, connect_sessions={"opener_origins": [OPENER]})
    return await serve_hub(config, aiohttp_client)


# --- the reproduction ------------------------------------------------------------------


async def test_the_plain_connect_url_can_be_finished_by_any_browser(hub, fake_slack):
    """The finding itself, on the route that stays for backends: documented, not fixed."""
    resp = await hub.get("/api/integrations/slack/connect", headers=auth("alice"))
    auth_url = (await resp.json())["data"]["authUrl"]
    async with browser() as victim:
        status, _, _ = await visit(victim, await consent(auth_url))
    assert status == 200
    assert [r.user_id for r in await hub.db.integrations()] == ["alice"]


async def test_a_callback_in_another_browser_is_refused_and_stores_nothing(hub, fake_slack):
    session = await create(hub, providers=["slack"])
    async with browser() as alice, browser() as victim:
        page = await open_link(alice, session["url"])
        auth_url = await start(alice, page)
        # Alice hands the authorization URL to the victim, who approves on the real consent page.
        callback = await consent(auth_url)
        status, text, _ = await visit(victim, callback)
        assert (status, code_of(text)) == (401, "connect_session_cookie_missing")
        status, body, _ = await visit(victim, callback, headers={"Accept": "application/json"})
        assert status == 401 and '"connect_session_cookie_missing"' in body
        # A cookie of the right name but not the one the flow was started with.
        victim.cookie_jar.update_cookies({f"hub_cs_{session['id']}": "made-up"}, response_url=aiohttp.client.URL(hub.hub.config.public_url))
        status, text, _ = await visit(victim, callback)
        assert (status, code_of(text)) == (401, "connect_session_cookie_mismatch")
        assert await hub.db.integrations() == []
        [state] = await hub.db.states("alice")
        assert state.consumed_at is None and state.session_id == session["id"]

        # Alice's own browser still finishes the very same flow.
        status, text, _ = await visit(alice, callback)
        assert status == 200 and 'data-status="success"' in text, text
    assert [r.user_id for r in await hub.db.integrations()] == ["alice"]
    view = (await (await hub.get(f"/api/connect-sessions/{session['id']}", headers=auth("alice"))).json())["data"]
    assert (view["status"], view["connectedProvider"]) == ("completed", "slack")


async def test_the_cookie_is_httponly_lax_and_secure_behind_https(hub, fake_slack):
    async with browser() as b:
        async with b.get((await create(hub))["url"], allow_redirects=False) as resp:
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
        url = (await create(hub))["url"]
        hub.hub.config.server.public_url = "https://hub.example.com"
        async with b.get(url, allow_redirects=False) as resp:
            assert "Secure" in resp.headers["Set-Cookie"]


# --- the link ------------------------------------------------------------------------


async def test_a_link_opens_once(hub, fake_slack):
    session = await create(hub)
    assert session["status"] == "pending" and session["providers"] == ["slack", "trello"]
    assert session["url"].startswith(hub.hub.config.public_url + "/connect/")
    async with browser() as alice, browser() as other:
        await open_link(alice, session["url"])
        status, text, _ = await visit(other, session["url"])
        assert (status, code_of(text)) == (410, "connect_session_used")
        # The page under the session's own address is the opener's alone.
        status, text, _ = await visit(other, f"{hub.hub.config.public_url}/connect/sessions/{session['id']}")
        assert (status, code_of(text)) == (401, "connect_session_cookie_missing")
    status, text, _ = await visit(hub, "/connect/not-a-link")
    assert (status, code_of(text)) == (404, "connect_session_unknown")
    rows = await session_rows(hub)
    assert [r.status for r in rows] == ["opened"]
    assert session["url"].rsplit("/", 1)[1] not in repr([tuple(vars(r).values()) for r in rows]), "the link's secret was stored"


async def test_expiry_follows_the_clock(hub, fake_slack):
    store = hub.hub.connect_sessions.store
    first, second = await create(hub), await create(hub)
    async with browser() as alice:
        page = await open_link(alice, second["url"])
        store.clock = lambda: utcnow() + timedelta(seconds=601)
        status, text, _ = await visit(alice, first["url"])
        assert (status, code_of(text)) == (410, "connect_session_expired")
        status, text, _ = await visit(alice, page)
        assert (status, code_of(text)) == (410, "connect_session_expired")
        status, text, _ = await visit(alice, page + "/start/slack")
        assert (status, code_of(text)) == (410, "connect_session_expired")
    for s in (first, second):
        view = (await (await hub.get(f"/api/connect-sessions/{s['id']}", headers=auth("alice"))).json())["data"]
        assert view["status"] == "expired"
    assert await hub.db.states("alice") == []


async def test_sessions_a_day_past_expiry_are_pruned_in_the_background(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(connect_sessions={"prune_interval_seconds": 0.01}), aiohttp_client)
    sessions = client.hub.connect_sessions
    old, _ = await create(client), await create(client, user="bob")
    # Expired, but still shown (GET says why a link failed) until a day has passed.
    sessions.store.clock = lambda: utcnow() + timedelta(seconds=601)
    await asyncio.wait_for(sessions.pruner.wait_for_passes(sessions.pruner.passes + 2), 30)
    assert len(await session_rows(client)) == 2
    view = (await (await client.get(f"/api/connect-sessions/{old['id']}", headers=auth("alice"))).json())["data"]
    assert view["status"] == "expired"
    # A day later both go, though neither user created another session.
    sessions.store.clock = lambda: utcnow() + timedelta(days=1, seconds=601)
    await asyncio.wait_for(sessions.pruner.wait_for_passes(sessions.pruner.passes + 2), 30)
    assert await session_rows(client) == []


async def test_a_state_started_before_expiry_still_finishes(hub, fake_slack):
    session = await create(hub, providers=["slack"])
    async with browser() as alice:
        callback = await consent(await start(alice, await open_link(alice, session["url"])))
        hub.hub.connect_sessions.store.clock = lambda: utcnow() + timedelta(seconds=601)
        status, _, _ = await visit(alice, callback)
    assert status == 200


async def test_cancelled_sessions_open_nothing_and_finish_nothing(hub, fake_slack):
    waiting, running = await create(hub), await create(hub)
    async with browser() as alice:
        callback = await consent(await start(alice, await open_link(alice, running["url"])))
        for s in (waiting, running):
            resp = await hub.delete(f"/api/connect-sessions/{s['id']}", headers=auth("alice"))
            assert resp.status == 200 and (await resp.json())["data"]["status"] == "cancelled"
        status, text, _ = await visit(alice, waiting["url"])
        assert (status, code_of(text)) == (410, "connect_session_cancelled")
        status, text, _ = await visit(alice, callback)
        assert (status, code_of(text)) == (410, "connect_session_cancelled")
    assert await hub.db.integrations() == []


async def test_the_per_user_cap_cancels_the_oldest(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(connect_sessions={"max_open_per_user": 2}), aiohttp_client)
    made = [await create(client) for _ in range(3)]
    await create(client, user="bob")  # another user's sessions count for him alone
    states = [(await (await client.get(f"/api/connect-sessions/{s['id']}", headers=auth("alice"))).json())["data"]["status"] for s in made]
    assert states == ["cancelled", "pending", "pending"]
    async with browser() as alice:
        status, text, _ = await visit(alice, made[0]["url"])
        assert (status, code_of(text)) == (410, "connect_session_cancelled")
        await open_link(alice, made[2]["url"])


async def test_another_users_session_is_unknown(hub, fake_slack):
    session = await create(hub)
    for method in ("GET", "DELETE"):
        resp = await hub.request(method, f"/api/connect-sessions/{session['id']}", headers=auth("bob"))
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (404, "connect_session_unknown"), body
        assert "alice" not in await resp.text()
    [row] = await session_rows(hub)
    assert row.status == "pending"
    resp = await hub.get("/api/connect-sessions/" + "x" * 300, headers=auth("alice"))
    assert resp.status == 404
    resp = await hub.get(f"/api/connect-sessions/{session['id']}")
    assert resp.status == 401


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"providers": "slack"}, 400, "validation_error", "providers"),
        ({"providers": []}, 400, "validation_error", "providers"),
        ({"providers": ["slack", 3]}, 400, "validation_error", "providers[1]"),
        ({"providers": ["slack", ""]}, 400, "validation_error", "providers[1]"),
        ({"providers": ["slack", "slack"]}, 400, "validation_error", "providers[1]"),
        ({"providers": ["nosuch"]}, 400, "validation_error", "providers[0]"),
        ({"providers": ["google_calendar"]}, 503, "provider_not_configured", "providers[0]"),
        ({"providers": ["slack"] * 51}, 400, "validation_error", "providers"),
        ({"return_url": "https://evil.example.net/"}, 400, "return_url_not_allowed", "return_url"),
        ({"return_url": "javascript:alert(1)"}, 400, None, "return_url"),
        ({"return_url": 5}, 400, "validation_error", "return_url"),
        ({"opener_origin": "https://evil.example.net"}, 400, "opener_origin_not_allowed", "opener_origin"),
        ({"opener_origin": ["https://app.example.com"]}, 400, "validation_error", "opener_origin"),
        ({"opener_origin": ""}, 400, "validation_error", "opener_origin"),
        ({"provider": "slack"}, 400, "validation_error", "provider"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(make_config, fake_slack, aiohttp_client, body, status, code, field):
    config = make_config(providers={"google_calendar": {"enabled": True}}, connect_sessions={"opener_origins": [OPENER]})
    client = await serve_hub(config, aiohttp_client)
    resp = await client.post("/api/connect-sessions", json=body, headers=auth("alice"))
    answer = await resp.json()
    assert resp.status == status, answer
    assert code is None or answer["error"]["code"] == code
    assert answer["error"]["details"]["field"] == field
    assert await session_rows(client) == []


@pytest.mark.parametrize(("data", "status"), [("{", 400), ("[]", 400), ("null", 400)])
async def test_a_body_that_is_not_an_object(hub, data, status):
    resp = await hub.post("/api/connect-sessions", data=data, headers={**auth("alice"), "Content-Type": "application/json"})
    assert resp.status == status
    assert await session_rows(hub) == []


async def test_a_provider_not_in_the_session_is_refused(hub, fake_slack):
    session = await create(hub, providers=["trello"])
    async with browser() as alice:
        page = await open_link(alice, session["url"])
        status, text, _ = await visit(alice, page + "/start/slack")
        assert (status, code_of(text)) == (400, "provider_not_in_session")
        async with alice.post(page + "/paste/slack", data={"token": "xoxb-abc"}) as resp:
            assert (resp.status, code_of(await resp.text())) == (400, "provider_not_in_session")
    assert await hub.db.states("alice") == [] and await hub.db.integrations() == []


# --- how the host hears of the outcome ---------------------------------------------------


async def test_the_return_url_gets_the_outcome(hub, fake_slack):
    session = await create(hub, providers=["slack"], return_url=APP + "done?x=1")
    async with browser() as alice:
        page = await open_link(alice, session["url"])
        status, _, headers = await visit(alice, await consent(await start(alice, page)))
        assert status == 302
        assert query_of(headers["Location"]) == {"x": "1", "provider": "slack", "status": "connected", "connect_session": session["id"]}
        assert headers["Location"].startswith(APP + "done?")
        # Used up: its page does not start another connect.
        status, text, _ = await visit(alice, page)
        assert (status, code_of(text)) == (410, "connect_session_used")


async def test_a_declined_consent_goes_back_as_an_error(hub, fake_slack):
    session = await create(hub, providers=["slack"], return_url=APP)
    async with browser() as alice:
        page = await open_link(alice, session["url"])
        status, _, headers = await visit(alice, await consent(await start(alice, page), decision="deny"))
        assert status == 302 and query_of(headers["Location"])["error"] == "access_denied"
        await start(alice, page)  # nothing was connected: the page still offers its providers


async def test_the_opener_gets_a_post_message_to_its_origin_only(hub, fake_slack):
    session = await create(hub, providers=["slack"], opener_origin=OPENER)
    assert session["openerOrigin"] == OPENER
    async with browser() as alice:
        status, text, headers = await visit(alice, await consent(await start(alice, await open_link(alice, session["url"]))))
    assert status == 200 and 'data-status="success"' in text
    assert f'"openerOrigin": "{OPENER}"' in text and '"type": "hub:connect"' in text and '"*"' not in text
    nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in text and "frame-ancestors 'none'" in headers["Content-Security-Policy"]


# --- token providers: Trello's fragment flow and pasted tokens -------------------------------


async def test_trellos_fragment_flow_is_bound_too(hub, fake_trello):
    session = await create(hub, providers=["trello"])
    async with browser() as alice, browser() as victim:
        authorize = await start(alice, await open_link(alice, session["url"]), "trello")
        callback = query_of(authorize)["return_url"]
        state = query_of(callback)["state"]
        path = urlsplit(callback)
        status, text, _ = await visit(victim, callback)
        assert (status, code_of(text)) == (401, "connect_session_cookie_missing")
        token = fake_trello.issue_token()
        post = f"{path.scheme}://{path.netloc}{path.path.rsplit('/', 1)[0]}/tokens"
        async with victim.post(post, json={"token": token, "state": state}) as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "connect_session_cookie_missing"
        assert await hub.db.integrations() == []
        status, text, _ = await visit(alice, callback)
        assert status == 200
        async with alice.post(post, json={"token": token, "state": state}) as resp:
            assert resp.status == 201, await resp.text()
    assert [r.user_id for r in await hub.db.integrations()] == ["alice"]


async def test_a_pasted_token_needs_the_cookie(hub, fake_trello):
    session = await create(hub, providers=["trello"], opener_origin=OPENER)
    token = fake_trello.issue_token()
    async with browser() as alice, browser() as other:
        page = await open_link(alice, session["url"])
        async with other.post(page + "/paste/trello", data={"token": token}) as resp:
            assert (resp.status, code_of(await resp.text())) == (401, "connect_session_cookie_missing")
        async with alice.post(page + "/paste/trello", data={"token": token}, headers={"Origin": "https://evil.example.net"}) as resp:
            assert resp.status == 401
        assert await hub.db.integrations() == []
        async with alice.post(page + "/paste/trello", data={"token": "not a token"}) as resp:
            assert resp.status == 400 and "token" in await resp.text()
        async with alice.post(page + "/paste/trello", data={"token": token}) as resp:
            text = await resp.text()
            assert resp.status == 201, text
            assert '"openerOrigin": "https://app.example.com"' in text
    assert [r.user_id for r in await hub.db.integrations()] == ["alice"]


# --- the plain route ---------------------------------------------------------------------


async def test_direct_connect_can_be_turned_off(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(security={"allow_direct_connect": False}), aiohttp_client)
    resp = await client.get("/api/integrations/slack/connect", headers=auth("alice"))
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (403, "direct_connect_disabled")
    assert "connect-sessions" in body["error"]["message"]
    async with client.hub.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(OAuthState)) == 0
    session = await create(client, providers=["slack"])
    async with browser() as alice:
        status, _, _ = await visit(alice, await consent(await start(alice, await open_link(alice, session["url"]))))
    assert status == 200


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"connect_sessions": {"opener_origins": ["https://app.example.com/path"]}}, "connect_sessions.opener_origins"),
        ({"connect_sessions": {"opener_origins": ["*"]}}, "connect_sessions.opener_origins"),
        ({"connect_sessions": {"ttl_seconds": 5}}, "connect_sessions.ttl_seconds"),
        ({"connect_sessions": {"max_open_per_user": 0}}, "connect_sessions.max_open_per_user"),
        ({"connect_sessions": {"cookie": "x"}}, "connect_sessions.cookie: unknown key"),
        ({"security": {"allow_direct_connect": "sometimes"}}, "security.allow_direct_connect"),
    ],
)
def test_a_bad_setting_names_its_yaml_path(section, path):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(section, env={})
    assert path in str(caught.value)


def test_the_shipped_config_keeps_the_defaults():
    config = load_config(Path(__file__).resolve().parent.parent / "config" / "hub.yaml", env={})
    assert config.security.allow_direct_connect is True
    assert (config.connect_sessions.ttl_seconds, config.connect_sessions.max_open_per_user, config.connect_sessions.opener_origins) == (600, 10, [])

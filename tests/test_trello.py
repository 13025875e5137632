"""Issue 3: Trello through the real HTTP server and the fake Trello, where the hub's own test
helpers are needed (a real browser, the rows, the logs, the clock). The plugin's tests
(plugins/trello/tests/test_hub.py) cover the token flow, the actions and Trello's errors with
hub.testing alone."""

from __future__ import annotations

import asyncio
import time
import json
import logging
from datetime import timedelta

from browser import chromium
from helpers import query_of
from hub_trello.fake import credentials_in
from support import auth, build_hub, trello_section

T = "/api/integrations/trello"


async def connect_by_posting(client, fake, user="alice", **token_kw) -> str:
    """The callback page's part, done as its script does: post the token with the state."""
    resp = await client.get(f"{T}/connect", headers=auth(user))
    auth_url = (await resp.json())["data"]["authUrl"]
    state = query_of(query_of(auth_url)["return_url"])["state"]
    token = fake.issue_token(**token_kw)
    resp = await client.post(f"{T}/tokens", json={"token": token, "state": state})
    assert resp.status == 201, await resp.text()
    return token


async def view(client, user="alice"):
    return (await (await client.get(T, headers=auth(user))).json())["data"]


async def test_connect_in_a_real_browser(trello_app, fake_trello):
    resp = await trello_app.get(f"{T}/connect", headers=auth("alice"))
    auth_url = (await resp.json())["data"]["authUrl"]
    async with chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        await page.goto(auth_url)
        await page.click("#allow")
        await page.wait_for_selector('#result[data-status="success"]', timeout=10_000)
        assert "Trello connected" in await page.inner_text("#result")
        assert "#token" not in page.url  # the fragment is gone from the address bar
        assert errors == [], "\n".join(errors)
    data = await view(trello_app)
    assert data["status"] == "ACTIVE"
    assert data["account"]["username"] == "ada" and data["account"]["fullName"] == "Ada Lovelace"
    assert data["tokenExpiresAt"] is not None  # taken from Trello's token info


async def test_declined_in_a_real_browser(trello_app, fake_trello):
    resp = await trello_app.get(f"{T}/connect", headers=auth("alice"))
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto((await resp.json())["data"]["authUrl"])
        await page.click("#deny")
        await page.wait_for_selector('#result[data-status="error"]', timeout=10_000)
        assert "declined" in await page.inner_text("#result")
    assert (await trello_app.get(T, headers=auth("alice"))).status == 404


async def test_unknown_board_gives_trellos_message_and_a_failed_row(trello_app, fake_trello):
    await connect_by_posting(trello_app, fake_trello)
    resp = await trello_app.get(f"{T}/boards/{'0' * 24}", headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 404
    assert "The requested resource was not found." in body["error"]["message"]
    row = (await trello_app.db.activity(action="get_board"))[0]
    assert row.status == "FAILED" and "not found" in row.error_message


async def test_token_never_in_a_url_a_log_or_a_response(trello_app, fake_trello, caplog):
    caplog.set_level(logging.DEBUG)
    token = await connect_by_posting(trello_app, fake_trello)
    h = auth("alice")
    bodies = []
    for path in ("/boards", "/boards/" + "0" * 24, ""):
        resp = await trello_app.get(f"{T}{path}", headers=h)
        bodies.append(await resp.text())
    bodies.append(await (await trello_app.get(f"{T}/logs", headers=h)).text())
    bodies.append(await (await trello_app.delete(f"{T}/disconnect", headers=h)).text())
    for call in fake_trello.calls:
        assert "token" not in call.query, f"{call.method} {call.path} carried the token in its query"
        if token in call.path:
            # Trello names a token by its value: only token info and revoke may hold it
            assert call.path.startswith("/1/tokens/") and call.method in ("GET", "DELETE")
        elif call.path.startswith("/1/") and call.path != "/1/authorize":
            assert credentials_in(call) == "header"
    hub_log = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert token not in hub_log
    assert all(token not in b for b in bodies)
    rows = await trello_app.db.activity()
    assert token not in json.dumps([[r.request_data, r.response_data, r.error_message] for r in rows])


async def test_burst_stays_within_trellos_limit(make_config, fake_trello, aiohttp_client):
    # Trello's real budget (100 per 10 s) would make this test take 20 s; the same
    # mechanism is exercised on a one-second budget configured for the hub. What this test
    # can know for certain is the hub's side: with 100 requests per window, the last of 300
    # cannot leave before two windows have passed, however busy the machine (a busy loop
    # only makes it later). Where the calls land at the fake is not asserted: the client,
    # the hub and the fake share one event loop here, so arrivals bunch when it is starved.
    # That no window ever admits more than the budget is checked exactly, on virtual time,
    # in tests/test_ratelimit.py.
    fake_trello.token_limit = fake_trello.key_limit = 10_000  # the fake's own budget stays out of the way
    section = {**trello_section(fake_trello), "rate_limits": [{"requests": 100, "seconds": 1.0}]}
    hub = build_hub(make_config(providers={"trello": section}))
    from hub.web import create_app

    client = await aiohttp_client(create_app(hub))
    hub.config.server.public_url = str(client.make_url("")).rstrip("/")
    await connect_by_posting(client, fake_trello)
    started = time.monotonic()
    answers = await asyncio.gather(*(client.get(f"{T}/boards", headers=auth("alice")) for _ in range(300)))
    elapsed = time.monotonic() - started
    assert [a.status for a in answers] == [200] * 300
    assert len([c for c in fake_trello.calls if c.path == "/1/members/me/boards"]) == 300
    assert elapsed >= 2.0, f"300 calls at 100 per second went out in {elapsed:.2f} s: the hub did not pace them"


async def test_expired_token_is_expired_not_error(trello_app, fake_trello):
    await connect_by_posting(trello_app, fake_trello, expiration="1hour")
    await trello_app.db.expire_token(provider="trello", ago=timedelta(minutes=1))
    fake_trello.expire_tokens()
    resp = await trello_app.get(f"{T}/boards", headers=auth("alice"))
    assert resp.status == 409 and "expired" in (await resp.json())["error"]["message"]
    assert (await trello_app.db.integration(provider="trello")).status == "EXPIRED"

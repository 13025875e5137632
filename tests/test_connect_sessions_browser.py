"""Connect sessions in a real headless Chromium (Debian's), each user a browser context of
their own (their own cookies): the login-CSRF reproduction refused, a host page told the
outcome by postMessage from the popup it opened, and Trello's fragment flow and a pasted
token run from the session's page."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from playwright.async_api import Page, expect

from browser import chromium
from conftest import serve_hub
from support import auth, trello_section
from test_dashboard import back_on_dashboard, card, jwt, open_dashboard


async def create(client: Any, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/connect-sessions", json=body, headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


def refused_with(page: Page, code: str) -> Any:
    return expect(page.locator("#result")).to_have_attribute("data-code", code)


async def test_an_authorization_url_handed_to_another_browser_connects_nothing(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(), aiohttp_client)
    session = await create(client, providers=["slack"])
    async with chromium() as browser:
        alice = await (await browser.new_context()).new_page()
        victim = await (await browser.new_context()).new_page()
        await alice.goto(session["url"])
        await expect(alice).to_have_url(re.compile(r"/connect/sessions/cs_"))  # the link's secret left the address bar
        await alice.get_by_role("link", name="Connect Slack").click()
        await alice.wait_for_url(f"{fake_slack.base_url}/**")
        handed_over = alice.url  # user A gives the victim the provider's consent URL

        await victim.goto(handed_over)
        await victim.click("#allow")
        await refused_with(victim, "connect_session_cookie_missing")
        await expect(victim.locator("#result")).to_have_attribute("data-status", "error")
        assert await client.db.integrations() == []

        await alice.click("#allow")  # the browser the session was opened in finishes
        await expect(alice.locator("#result")).to_have_attribute("data-status", "success")
    assert [r.user_id for r in await client.db.integrations()] == ["alice"]


HOST_PAGE = """<!doctype html><html><body data-msg="">
<button id="go">Connect an account</button>
<script>
  var hub = new URL(%(url)s).origin;
  document.getElementById("go").onclick = function () { window.open(%(url)s, "connect", "width=600,height=700"); };
  window.addEventListener("message", function (e) {
    if (e.origin === hub) { document.body.dataset.msg = JSON.stringify(e.data); }
  });
</script></body></html>"""


async def test_the_host_page_hears_the_outcome_by_post_message(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(), aiohttp_client)
    host = web.Application()
    links: dict[str, str] = {}

    async def host_page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE % {"url": json.dumps(links["url"])}, content_type="text/html")

    host.router.add_get("/", host_page)
    host_client = await aiohttp_client(host)
    origin = str(host_client.make_url("")).rstrip("/")
    client.hub.config.connect_sessions.opener_origins.append(origin)
    session = await create(client, providers=["slack"], opener_origin=origin)
    links["url"] = session["url"]
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(origin + "/")
        async with page.expect_popup() as opened:
            await page.click("#go")
        popup = await opened.value
        await popup.get_by_role("link", name="Connect Slack").click()
        await popup.wait_for_url(f"{fake_slack.base_url}/**")
        await popup.click("#allow")
        await expect(page.locator("body")).not_to_have_attribute("data-msg", "", timeout=10_000)
        message = json.loads(await page.locator("body").get_attribute("data-msg") or "{}")
        if not popup.is_closed():
            await popup.wait_for_event("close")  # the page closes itself once it has told the host
    assert message == {"type": "hub:connect", "sessionId": session["id"], "provider": "slack", "status": "connected"}


async def test_trellos_flow_and_a_pasted_token_from_the_session_page(make_config, fake_slack, fake_trello, aiohttp_client):
    client = await serve_hub(make_config(providers={"trello": trello_section(fake_trello)}), aiohttp_client)
    by_flow = await create(client, providers=["trello"])
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(by_flow["url"])
        await page.get_by_role("link", name="Connect Trello").click()
        await page.wait_for_url(f"{fake_trello.base_url}/**")
        await page.click("#allow")
        await expect(page.locator("#result")).to_have_attribute("data-status", "success", timeout=10_000)
        assert [r.user_id for r in await client.db.integrations()] == ["alice"]

        await client.delete("/api/integrations/trello", headers=auth("alice"))
        by_paste = await create(client, providers=["trello"])
        await page.goto(by_paste["url"])
        await page.get_by_text("Paste a token or API key instead").click()
        await page.get_by_label("Trello token").fill(fake_trello.issue_token())
        await page.get_by_role("button", name="Connect with this token").click()
        await expect(page.locator("#result")).to_have_attribute("data-status", "success")
    rows = await client.db.integrations()
    assert [(r.user_id, r.status) for r in rows] == [("alice", "ACTIVE")]


async def test_the_dashboard_connects_through_a_session_when_direct_connect_is_off(make_config, fake_slack, aiohttp_client):
    client = await serve_hub(make_config(security={"allow_direct_connect": False}), aiohttp_client)
    base = client.hub.config.server.public_url
    client.hub.config.server.allowed_redirects.append(base + "/")
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await open_dashboard(page, base, jwt())
        await card(page, "slack").get_by_role("button", name="Connect").click()
        await page.get_by_role("link", name="Connect Slack").click()  # the session's page
        await page.wait_for_url(f"{fake_slack.base_url}/**")
        await page.click("#allow")
        await back_on_dashboard(page, base)
        await expect(page.locator("#notices")).to_contain_text("Slack is connected.")
        await expect(card(page, "slack")).to_have_attribute("data-status", "ACTIVE")
    assert [r.status for r in await client.db.integrations("alice")] == ["ACTIVE"]
    assert [s.session_id is not None for s in await client.db.states("alice")] == [True]

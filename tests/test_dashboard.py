"""The integrations dashboard at ``/``, driven in a real headless Chromium against a hub
whose providers point at the fakes: connect through each provider's consent page, run
actions from the console, read the activity, disconnect; phone width and keyboard use;
and the screenshots in docs/screenshots/."""

from __future__ import annotations

import json
import re
from datetime import timedelta
import os
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import update

from browser import chromium
from conftest import serve_hub
from hub.activity import rebuild_rollups
from hub.store.models import IntegrationLog, utcnow
from support import auth, google_section, trello_section

# The committed screenshots are refreshed on request only (HUB_UPDATE_SCREENSHOTS=1), so an
# ordinary run leaves the checkout as it found it.
DOC_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def screenshot_dir(tmp_path: Path) -> Path:
    return DOC_SCREENSHOTS if os.environ.get("HUB_UPDATE_SCREENSHOTS") else tmp_path
GREEN = "rgb(45, 164, 78)"  # --ok-dot: an ACTIVE card's marker
YELLOW = "rgb(212, 167, 44)"  # --warn-dot: INACTIVE


def jwt(user: str = "alice") -> str:
    return auth(user)["Authorization"].split()[1]


class Watch:
    """Everything that went wrong in the page: console errors, uncaught exceptions and
    requests that failed at the network level. A test may declare the HTTP errors it
    provokes on purpose (Chromium logs each 4xx/5xx answer to fetch as a console error)."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.expected: list[tuple[int, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: self.problems.append(f"request failed: {req.method} {req.url} ({req.failure})"))

    def expect_http_error(self, status: int, url_part: str) -> None:
        self.expected.append((status, url_part))

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        for status, part in self.expected:
            if f"status of {status}" in msg.text and part in where:
                return
        self.problems.append(f"console error: {msg.text} at {where}")

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


async def quiet(page: Page) -> None:
    """Wait until the page has no API call in flight."""
    # (wait_for_function would evaluate a string, which the page's own CSP forbids)
    await expect(page.locator("html")).to_have_attribute("data-busy", "false")


async def open_dashboard(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/#token={token}")
    await expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true")
    await quiet(page)
    assert "token" not in page.url, "the token stayed in the address bar"


def card(page: Page, provider: str):
    return page.locator(f'.card[data-provider="{provider}"]')


async def back_on_dashboard(page: Page, base: str) -> None:
    await expect(page).to_have_url(f"{base}/", timeout=10_000)  # outcome read, query string cleaned
    await expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true")
    await quiet(page)


async def dot_colour(page: Page, provider: str) -> str:
    return await card(page, provider).locator(".dot").evaluate("el => getComputedStyle(el).backgroundColor")


async def served(make_config: Any, aiohttp_client: Any, **providers: Any) -> tuple[Any, str]:
    client = await serve_hub(make_config(providers=providers), aiohttp_client)
    base = client.hub.config.server.public_url
    # The dashboard asks to come back to itself after a consent page.
    client.hub.config.server.allowed_redirects.append(base + "/")
    return client, base


async def test_connect_act_inspect_and_disconnect_slack(make_config, fake_slack, aiohttp_client):
    # Trello is enabled without credentials: listed, but it cannot be connected.
    client, base = await served(make_config, aiohttp_client, trello={"enabled": True})
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        await page.goto(f"{base}/")  # no token yet: the sign-in form
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#dashboard")).to_be_hidden()
        token = jwt()
        await open_dashboard(page, base, token)  # only the fragment changes: no reload
        assert await page.evaluate("sessionStorage.getItem('hub.dashboard.token')") == token
        await expect(page.locator("#who")).to_have_text("alice")

        slack = card(page, "slack")
        await expect(slack).to_have_attribute("data-status", "NONE")
        await expect(slack.locator(".badge")).to_have_text("Not connected")
        trello = card(page, "trello")
        await expect(trello.locator(".badge")).to_have_text("Not connected")
        await expect(trello.get_by_role("button", name="Connect")).to_be_disabled()
        await expect(trello).to_contain_text("providers.trello.api_key is not set")
        await expect(page.locator("#console-empty")).to_be_visible()

        # Connect: the hub's authorize URL, the fake Slack's consent page, back here.
        await slack.get_by_role("button", name="Connect").click()
        await page.wait_for_url(f"{fake_slack.base_url}/**")
        await page.click("#allow")
        await back_on_dashboard(page, base)
        await expect(page.locator("#notices")).to_contain_text("Slack is connected.")
        await expect(slack).to_have_attribute("data-status", "ACTIVE")
        await expect(slack.locator(".badge")).to_have_text("Active")
        await expect(slack.locator('[data-field="account"]')).to_contain_text("Fake Workspace")
        await expect(slack.locator(".card-sync")).to_have_text(re.compile(r"Last sync: (just now|\dm ago)"))
        assert await dot_colour(page, "slack") == GREEN

        # Account data is shown as text, never parsed as markup.
        hostile = '<img src="/x" id="pwned">Team & <b>co</b>'
        row = await client.db.integration("alice", "slack")
        await client.db.set_integration("alice", "slack", meta={**row.meta, "teamName": hostile})
        await page.click("#reload")
        await expect(slack.locator('[data-field="account"]')).to_contain_text(hostile)
        assert await page.locator("#pwned").count() == 0
        await quiet(page)

        # The action console: post a message.
        await expect(page.locator("#console-provider")).to_have_value("slack")
        await page.select_option("#console-action", "post_message")
        await expect(page.locator("#console-endpoint .route")).to_have_text("POST /api/integrations/slack/message")
        await page.fill("#console-field-channel", "general")
        await page.fill("#console-field-text", "hello from the dashboard")
        await page.click("#console-send")
        await expect(page.locator("#console-status")).to_contain_text("200")
        answer = json.loads(await page.locator("#console-output").text_content())
        assert re.fullmatch(r"\d+\.\d+", answer["ts"]), answer
        assert fake_slack.messages[-1]["text"] == "hello from the dashboard"
        await expect(slack.locator('[data-field="stats"]')).to_contain_text("100% success")
        await expect(slack.locator(".chart-box svg rect.bar-ok")).to_have_count(1)

        # View logs: the row is there, and the filters work.
        await slack.get_by_role("button", name="View logs").click()
        dialog = page.locator("#logs-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#logs-title")).to_have_text("Slack activity")
        row = page.locator('#logs-body tr[data-action="post_message"]')
        await expect(row).to_have_count(1)
        await expect(row).to_have_attribute("data-status", "SUCCESS")
        await expect(row.locator(".pill")).to_have_text("SUCCESS")
        assert "hello from the dashboard" in (await row.text_content())
        await expect(page.locator("#logs-summary")).to_contain_text("Success rate")
        await page.select_option("#logs-status", "FAILED")
        await expect(page.locator("#logs-body tr")).to_have_count(0)
        await expect(page.locator("#logs-empty")).to_be_visible()
        await page.select_option("#logs-status", "SUCCESS")
        await page.select_option("#logs-action", "post_message")
        await expect(page.locator("#logs-body tr")).to_have_count(1)
        await expect(page.locator("#logs-body tr").first).to_have_attribute("data-action", "post_message")
        await page.select_option("#logs-action", "")
        await page.select_option("#logs-status", "")
        await expect(page.locator('#logs-body tr[data-action="status_change"]')).to_have_count(1)
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        assert await page.evaluate("document.activeElement.dataset.key") == "slack:logs"

        # Disconnect, after confirming.
        await slack.get_by_role("button", name="Disconnect").click()
        await expect(page.locator("#confirm-dialog")).to_be_visible()
        await page.click("#confirm-ok")
        await expect(slack).to_have_attribute("data-status", "INACTIVE")
        await expect(slack.locator(".badge")).to_have_text("Inactive")
        await expect(slack.locator('[data-field="reason"]')).to_have_text("Disconnected by the user.")
        await expect(slack.get_by_role("button", name="Connect again")).to_be_visible()
        assert await dot_colour(page, "slack") == YELLOW
        await quiet(page)
        resp = await client.get("/api/integrations/slack", headers=auth("alice"))
        assert (await resp.json())["data"]["status"] == "INACTIVE"

        # Sign out; a token the hub refuses brings the API's message back to the form.
        await page.click("#sign-out")
        await expect(page.locator("#login")).to_be_visible()
        assert await page.evaluate("sessionStorage.getItem('hub.dashboard.token')") is None
        watch.expect_http_error(401, "/api/")
        await page.fill("#login-token", "not-a-jwt")
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#login-error")).to_be_visible()
        refused = await client.get("/api/providers", headers={"Authorization": "Bearer not-a-jwt"})
        await expect(page.locator("#login-error")).to_have_text((await refused.json())["error"]["message"])
        await page.fill("#login-token", token)
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#dashboard")).to_be_visible()
        await expect(card(page, "slack").locator(".badge")).to_have_text("Inactive")
        await quiet(page)
        watch.assert_clean()


async def test_every_provider_phone_keyboard_and_screenshots(make_config, fake_slack, fake_trello, fake_google, aiohttp_client, tmp_path):
    client, base = await served(
        make_config, aiohttp_client, trello=trello_section(fake_trello), google_calendar=google_section(fake_google)
    )
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        token = jwt()
        await open_dashboard(page, base, token)
        for p in ("google_calendar", "slack", "trello"):
            await expect(card(page, p).locator(".badge")).to_have_text("Not connected")

        # Keyboard only: Tab reaches Slack's Connect button, Enter follows it.
        target = '[data-action="connect"][data-provider="slack"]'
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"document.activeElement.matches('.card {target}')"):
                break
        else:
            raise AssertionError("Tab never reached Slack's Connect button")
        outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", "the focused button shows no focus ring"
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{fake_slack.base_url}/**")
        await page.click("#allow")
        await back_on_dashboard(page, base)
        await expect(card(page, "slack").locator(".badge")).to_have_text("Active")

        # Trello: its consent page hands the token to the hub's callback page in the URL
        # fragment; that page posts it and sends the browser back here.
        await card(page, "trello").get_by_role("button", name="Connect").click()
        await page.wait_for_url(f"{fake_trello.base_url}/**")
        await page.click("#allow")
        await back_on_dashboard(page, base)
        await expect(page.locator("#notices")).to_contain_text("Trello is connected.")
        await expect(card(page, "trello").locator(".badge")).to_have_text("Active")
        await expect(card(page, "trello").locator('[data-field="account"]')).to_contain_text("@ada")

        # Google, from the "Connect new integration" panel (which Escape closes).
        toggle = page.locator("#connect-new-toggle")
        await toggle.click()
        panel = page.locator("#connect-new-panel")
        await expect(panel).to_be_visible()
        await expect(panel.locator(".connect-item")).to_have_count(1)  # only Google is left
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        assert await page.evaluate("document.activeElement.id") == "connect-new-toggle"
        await toggle.click()
        await panel.get_by_role("button", name="Connect").click()
        await page.wait_for_url(f"{fake_google.base_url}/**")
        await page.click("#allow")
        await back_on_dashboard(page, base)
        google = card(page, "google_calendar")
        await expect(google.locator(".badge")).to_have_text("Active")
        await expect(google.locator('[data-field="account"]')).to_contain_text("ada@example.com")
        await expect(panel).to_contain_text("Every available provider is connected.")

        # A failing action from the console shows the API's message and field.
        await page.select_option("#console-provider", "slack")
        await page.select_option("#console-action", "get_user")
        await page.fill("#console-field-user_id", "lowercase")
        watch.expect_http_error(400, "/api/integrations/slack/users/")
        await page.click("#console-send")
        await expect(page.locator("#console-result")).to_have_attribute("data-outcome", "error")
        await expect(page.locator("#console-status")).to_contain_text("400")
        await expect(page.locator("#console-field-user_id-error")).to_contain_text("does not match")
        await expect(page.locator("#console-problems")).to_contain_text("user_id")
        await expect(page.locator("#console-field-user_id")).to_have_attribute("aria-invalid", "true")
        watch.expect_http_error(404, "/api/integrations/slack/users/")
        await page.fill("#console-field-user_id", "U0000000099")
        await page.click("#console-send")
        await expect(page.locator("#console-status")).to_contain_text("404")
        await expect(page.locator("#console-output")).to_contain_text("user_not_found")
        await quiet(page)

        # Traffic for the chart, the stats and paging: a few days of calls, some failing.
        await make_traffic(client)
        await page.reload()
        await expect(page.locator("#dashboard")).to_have_attribute("data-ready", "true")
        await quiet(page)
        slack = card(page, "slack")
        await expect(slack.locator('[data-field="stats"]')).to_contain_text(re.compile(r"\d+ requests, 9\d% success"))
        assert await slack.locator(".chart-box svg .bar-fail").count() >= 2
        await slack.get_by_role("button", name="30 days").click()
        await expect(slack.locator(".chart-sum")).to_contain_text("last 30 days")
        await expect(slack.locator(".chart-box svg .day")).to_have_count(30)
        await slack.get_by_role("button", name="7 days").click()
        await expect(slack.locator(".chart-box svg .day")).to_have_count(7)
        await quiet(page)

        # Paging through the activity with the keyset cursor, and back.
        await slack.get_by_role("button", name="View logs").click()
        rows = page.locator("#logs-body tr")
        await expect(rows).to_have_count(20)
        first_id = await rows.first.get_attribute("data-id")
        await expect(page.locator("#logs-prev")).to_be_disabled()
        await page.click("#logs-next")
        await expect(page.locator("#logs-page")).to_have_text("Page 2")
        await expect(rows.first).not_to_have_attribute("data-id", first_id)
        assert int(await rows.first.get_attribute("data-id")) < int(first_id)
        await page.click("#logs-prev")
        await expect(page.locator("#logs-page")).to_have_text("Page 1")
        await expect(rows.first).to_have_attribute("data-id", first_id)
        await page.select_option("#logs-status", "FAILED")
        await expect(rows).to_have_count(2)  # the console's unknown user and make_traffic's
        assert {await r.get_attribute("data-status") for r in await rows.all()} == {"FAILED"}
        await page.keyboard.press("Escape")
        await expect(page.locator("#logs-dialog")).to_be_hidden()

        shots = screenshot_dir(tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        await page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        await quiet(page)
        await page.screenshot(path=str(shots / "dashboard-desktop.png"))
        watch.assert_clean()

        # Phone width: cards stack, nothing overflows, the activity table scrolls inside its box.
        phone = await browser.new_page(viewport={"width": 375, "height": 812}, device_scale_factor=1, is_mobile=True, has_touch=True)
        phone_watch = Watch(phone)
        await open_dashboard(phone, base, token)
        await expect(card(phone, "google_calendar").locator(".badge")).to_have_text("Active")
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 375
        boxes = [await card(phone, p).bounding_box() for p in ("google_calendar", "slack", "trello")]
        assert all(b is not None for b in boxes)
        assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"] and boxes[1]["y"] + boxes[1]["height"] <= boxes[2]["y"], "cards do not stack"
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= 375 for b in boxes)
        await quiet(phone)
        await phone.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
        await card(phone, "slack").get_by_role("button", name="View logs").click()
        await expect(phone.locator("#logs-body tr").first).to_be_visible()
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 375
        assert await phone.evaluate("(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth > w.clientWidth; })()")
        await phone.keyboard.press("Escape")
        await quiet(phone)
        phone_watch.assert_clean()


async def test_a_link_for_another_user_does_not_replace_the_signed_in_one_unasked(make_config, fake_slack, aiohttp_client):
    from helpers import connect_slack

    client, base = await served(make_config, aiohttp_client)
    await connect_slack(client, auth("bob"))  # Bob has Slack connected; Alice has nothing
    alice, bob = jwt("alice"), jwt("bob")
    question = "#confirm-dialog"

    async def still_alice(page: Page) -> None:
        await expect(page.locator("#who")).to_have_text("alice")
        await expect(card(page, "slack")).to_have_attribute("data-status", "NONE")
        assert await page.evaluate("sessionStorage.getItem('hub.dashboard.token')") == alice

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        await open_dashboard(page, base, alice)
        await expect(page.locator("#who")).to_have_text("alice")

        # A link to Bob's token in the signed-in tab (only the fragment changes): a question.
        await page.goto(f"{base}/#token={bob}")
        await expect(page.locator(question)).to_be_visible()
        await expect(page.locator("#confirm-title")).to_have_text("Switch user?")
        await expect(page.locator("#confirm-text")).to_contain_text("“bob”")
        assert "token" not in page.url
        await still_alice(page)
        await page.get_by_role("button", name="Stay as alice").click()
        await expect(page.locator(question)).to_be_hidden()
        await expect(page.locator("#notices")).to_contain_text("Still signed in as alice")
        await quiet(page)
        await still_alice(page)

        # The same link loaded afresh in that tab: Alice's dashboard first, then the question.
        await page.goto(f"{base}/?again=1#token={bob}")
        await expect(page.locator(question)).to_be_visible()
        await still_alice(page)
        await page.get_by_role("button", name="Switch to bob").click()
        await expect(page.locator("#who")).to_have_text("bob")
        await expect(card(page, "slack")).to_have_attribute("data-status", "ACTIVE")
        assert await page.evaluate("sessionStorage.getItem('hub.dashboard.token')") == bob
        await quiet(page)

        # A fresher token for the same user replaces the old one without a question.
        fresher = auth("bob", ttl_seconds=1800)["Authorization"].split()[1]
        assert fresher != bob
        await page.goto(f"{base}/#token={fresher}")
        await expect(page.locator("#who")).to_have_text("bob")
        await quiet(page)
        await expect(page.locator(question)).to_be_hidden()
        assert await page.evaluate("sessionStorage.getItem('hub.dashboard.token')") == fresher
        watch.assert_clean()


async def make_traffic(client: Any) -> None:
    """Calls through the public API, then spread over the past week (the chart shows days)."""
    h = auth("alice")
    for i in range(22):
        resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": f"update {i}"}, headers=h)
        assert resp.status == 200, await resp.text()
    assert (await client.get("/api/integrations/slack/channels", headers=h)).status == 200
    assert (await client.get("/api/integrations/slack/users/U0000000098", headers=h)).status == 404
    assert (await client.get("/api/integrations/trello/boards", headers=h)).status == 200
    assert (await client.get(f"/api/integrations/trello/boards/{'0' * 24}", headers=h)).status == 404
    assert (await client.get("/api/integrations/google_calendar/calendars", headers=h)).status == 200
    assert (await client.post("/api/integrations/google_calendar/sync", json={}, headers=h)).status == 200
    ids = [r.id for r in await client.db.activity(user="alice", provider="slack", kind="call")]
    slack_id = (await client.db.integration("alice", "slack")).id
    # Rows moved back in time need the hourly rollup recounted in the same transaction.
    async with client.hub.sessions.begin() as s:
        # Noon of each day, so the spread does not depend on the time of day the test runs at
        # (an hour before "now" is yesterday just after midnight, and day 7 leaves the chart).
        noon = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
        # Oldest first: spread over the six days before today, today keeps the newest.
        spread = ids[: len(ids) - 6]
        for n, row_id in enumerate(spread):
            await s.execute(update(IntegrationLog).where(IntegrationLog.id == row_id).values(created_at=noon - timedelta(days=6 - (n * 6) // len(spread))))
        # The charts and stats read the rollup, not the rows.
        await rebuild_rollups(s, slack_id)

"""The fake-provider base of hub.testing on its own: control routes, answer styles, the hooks a
provider's fake overrides, and the state the sandbox keeps. Imports only hub.testing."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from hub.testing import FakeProvider, Grant, press_consent

REDIRECT = "https://app.example.com/cb"


class FakeNotes(FakeProvider):
    def add_routes(self, app: Any) -> None:
        app.router.add_get(f"{self.api_path}/notes", self.notes)

    async def notes(self, request: Any) -> Any:
        return self.json({"owner": self.require_token(request).account["sub"]})


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake() -> Any:
    started = FakeNotes()
    await started.start()
    yield started
    await started.stop()


async def get_code(fake: FakeProvider, scope: str = "notes:read notes:write") -> str:
    query = f"client_id={fake.client_id}&redirect_uri={REDIRECT}&state=s1&scope={scope}"
    location = await press_consent(f"{fake.base_url}{fake.paths['authorize']}?{query}")
    return location.split("code=")[1].split("&")[0]


async def exchange(http: Any, fake: FakeProvider, code: str, headers: dict[str, str] | None = None) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": fake.client_id, "client_secret": fake.client_secret}
    return await http.post(f"{fake.base_url}{fake.paths['token']}", data=form, headers=headers or {})


async def bearer_get(http: Any, fake: FakeProvider, token: str) -> Any:
    return await http.get(f"{fake.base_url}/api/notes", headers={"Authorization": f"Bearer {token}"})


async def test_control_routes_steer_the_running_fake(http: Any, fake: FakeNotes) -> None:
    token = (await (await exchange(http, fake, await get_code(fake))).json())["access_token"]
    resp = await http.post(f"{fake.base_url}/_fake/fail_next", json={"status": 503, "body": "down", "path": "/api/", "count": 2})
    assert resp.status == 200, await resp.text()
    for _ in range(2):
        resp = await bearer_get(http, fake, token)
        assert (resp.status, await resp.text()) == (503, "down")
    assert (await bearer_get(http, fake, token)).status == 200

    await http.post(f"{fake.base_url}/_fake/rate_limit_next", json={"retry_after": 42})
    resp = await bearer_get(http, fake, token)
    assert (resp.status, resp.headers["Retry-After"]) == (429, "42")

    await http.post(f"{fake.base_url}/_fake/expire_tokens")
    assert (await bearer_get(http, fake, token)).status == 401

    listing = await (await http.get(f"{fake.base_url}/_fake/calls?path=/api/")).json()
    assert [c["path"] for c in listing["calls"]] == ["/api/notes"] * 5
    assert "headers" not in listing["calls"][0]  # they carry the tokens
    assert not fake.calls_to("/_fake")  # control requests are not recorded
    await http.delete(f"{fake.base_url}/_fake/calls")
    assert fake.calls == []


@pytest.mark.parametrize(
    ("body", "named"),
    [({"status": 503, "colour": "red"}, "colour"), ({"status": "503"}, "status"), ({}, "status"),
     ({"status": 503, "count": 0}, "count"), ({"status": 5000}, "status"), ([1], "object")],
)
async def test_a_bad_control_body_is_refused_and_names_the_field(http: Any, fake: FakeNotes, body: Any, named: str) -> None:
    resp = await http.post(f"{fake.base_url}/_fake/fail_next", json=body)
    assert resp.status == 400
    assert named in (await resp.json())["message"]
    assert not fake._faults  # nothing was queued


async def test_accept_driven_answers_and_the_scope_separator(http: Any) -> None:
    fake = FakeNotes(answers="accept", scope_separator=",")
    await fake.start()
    try:
        resp = await exchange(http, fake, await get_code(fake, "repo,read:user"))
        assert resp.content_type == "application/x-www-form-urlencoded"
        assert "scope=repo%2Cread%3Auser" in await resp.text()
        resp = await exchange(http, fake, await get_code(fake, "repo,read:user"), {"Accept": "application/json"})
        assert resp.content_type == "application/json"
        assert (await resp.json())["scope"] == "repo,read:user"
        page = await (await http.get(f"{fake.base_url}/oauth/authorize?client_id={fake.client_id}&redirect_uri={REDIRECT}&scope=repo,gist")).text()
        assert "<code>repo</code>" in page and "<code>gist</code>" in page
    finally:
        await fake.stop()


class FakeMoved(FakeNotes):
    """A provider with its own token path, token shapes, answer envelope and error style."""

    paths = {**FakeProvider.paths, "token": "/api/oauth.access", "revoke": None}

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        return f"moved-{kind}-{len(self.tokens)}"

    def token_answer(self, access: Any, refresh: Any, scope: str) -> dict[str, Any]:
        return {"ok": True, **super().token_answer(access, refresh, scope)}

    def token_error(self, code: str, status: int = 400) -> Any:
        return self.json({"ok": False, "error": code})


async def test_hooks_reshape_the_oauth_endpoints(http: Any) -> None:
    fake = FakeMoved()
    await fake.start()
    try:
        assert fake.hub_settings()["urls"]["token"].endswith("/api/oauth.access")
        assert "revoke" not in fake.hub_settings()["urls"]
        assert (await http.post(f"{fake.base_url}/oauth/revoke", data={})).status == 404
        code = await get_code(fake)
        body = await (await exchange(http, fake, code)).json()
        assert body["ok"] is True and body["access_token"] == "moved-access-0"
        resp = await exchange(http, fake, code)  # spent
        assert (resp.status, await resp.json()) == (200, {"ok": False, "error": "invalid_grant"})
    finally:
        await fake.stop()


class FakePaged(FakeNotes):
    """A provider whose consent page and refusals look like its own."""

    def consent_answer(self, params: dict[str, str], action: str) -> Any:
        page = super().consent_answer(params, action)
        page.text = page.text.replace("<main>", '<main><p id="brand">Notes</p>')
        return page

    def refusal_answer(self, problem: str) -> Any:
        return web.Response(status=401, text=problem)


async def test_hooks_reshape_the_consent_page_and_its_refusals(http: Any) -> None:
    fake = FakePaged()
    await fake.start()
    try:
        page = await (await http.get(f"{fake.base_url}/oauth/authorize?client_id={fake.client_id}&redirect_uri={REDIRECT}")).text()
        assert '<p id="brand">Notes</p>' in page
        assert (await get_code(fake)).startswith("fake-code-")  # Allow still works through the page
        for resp in (await http.get(f"{fake.base_url}/oauth/authorize?client_id=nobody&redirect_uri={REDIRECT}"),
                     await http.post(f"{fake.base_url}/oauth/authorize", data={"client_id": "nobody", "decision": "allow"})):
            assert (resp.status, resp.content_type, await resp.text()) == (401, "text/plain", "invalid_client")
    finally:
        await fake.stop()


async def test_the_state_survives_a_restart_and_revocation_still_ends_the_grant(http: Any, fake: FakeNotes) -> None:
    body = await (await exchange(http, fake, await get_code(fake))).json()
    saved = json.loads(json.dumps(fake.export_state()))  # what the sandbox writes to disk

    reborn = FakeNotes()
    reborn.import_state(saved)
    await reborn.start()
    try:
        assert (await bearer_get(http, reborn, body["access_token"])).status == 200
        assert set(reborn.issued) == set(fake.issued)
        form = {"token": body["refresh_token"], "client_id": reborn.client_id, "client_secret": reborn.client_secret}
        assert (await http.post(f"{reborn.base_url}/oauth/revoke", data=form)).status == 200
        assert (await bearer_get(http, reborn, body["access_token"])).status == 401
    finally:
        await reborn.stop()


async def test_fail_next_with_text_and_slow_answers(http: Any) -> None:
    fake = FakeNotes(delay=0.01)
    await fake.start()
    try:
        fake.fail_next(500, "Internal error", path="/api/notes")
        resp = await http.get(f"{fake.base_url}/api/notes")
        assert (resp.status, resp.content_type, await resp.text()) == (500, "text/plain", "Internal error")
        assert fake.calls[0].at > 0
    finally:
        await fake.stop()


async def test_the_pages_a_browser_loads_need_nothing_else(http: Any, fake: FakeNotes) -> None:
    # Not even /favicon.ico: a browser test counts the 404 it would get as a console error.
    consent = f"{fake.base_url}/oauth/authorize?client_id={fake.client_id}&redirect_uri={REDIRECT}&scope=notes:read"
    refused = f"{fake.base_url}/oauth/authorize?client_id=someone-else&redirect_uri={REDIRECT}"
    for url, status in ((consent, 200), (refused, 400)):
        resp = await http.get(url)
        page = await resp.text()
        assert resp.status == status
        assert '<link rel="icon" href="data:,">' in page
        assert "<script" not in page and not re.search(r'(href|src)="(?!data:)', page)


class FakeShapedCodes(FakeNotes):
    def approve(self, params: dict[str, str]) -> str:
        code = f"4/fake-code-{len(self.codes)}"
        self.codes[code] = Grant(params["redirect_uri"], params.get("scope", ""), None, self.clock(), extra={"seen": True})
        return f"{params['redirect_uri']}?code={code}"


async def test_an_approve_of_its_own_stores_a_grant_the_token_endpoint_exchanges(http: Any) -> None:
    fake = FakeShapedCodes()
    await fake.start()
    try:
        code = await get_code(fake)
        assert code == "4/fake-code-0" and fake.codes[code].extra == {"seen": True}
        resp = await exchange(http, fake, code)
        assert resp.status == 200 and fake.codes[code].used
    finally:
        await fake.stop()


async def test_the_pages_load_nothing_from_elsewhere(http: Any, fake: FakeNotes) -> None:
    authorize = f"{fake.base_url}{fake.paths['authorize']}"
    for query in (f"client_id={fake.client_id}&redirect_uri={REDIRECT}&scope=a", "client_id=nobody"):
        async with http.get(f"{authorize}?{query}") as resp:
            page = await resp.text()
        # A browser would fetch /favicon.ico for a page without an icon: a 404 in its console.
        assert '<link rel="icon" href="data:,">' in page and "<script" not in page
        assert not re.search(r'(href|src)="(?!data:)', page)


async def test_hold_next_keeps_a_request_in_flight_until_released(http: Any, fake: FakeNotes) -> None:
    import asyncio

    token = (await (await exchange(http, fake, await get_code(fake))).json())["access_token"]
    hold = fake.hold_next("/api/notes")
    call = asyncio.ensure_future(bearer_get(http, fake, token))
    await hold.arrived.wait()
    assert not call.done() and fake.calls[-1].path == "/api/notes"  # recorded, not answered
    hold.release()
    assert (await call).status == 200
    assert (await bearer_get(http, fake, token)).status == 200  # one request only was held

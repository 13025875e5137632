"""Issue 16: CORS by configuration (``server.cors``): preflights answered without a JWT,
the headers a page needs on every answer, and a real browser reading the API from
another origin."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from browser import chromium
from conftest import serve_hub
from hub.infra.config import ConfigError, config_from_dict
from support import JWT_SECRET, auth

APP = "https://app.example.com"
STATUS = "/api/integrations/slack/status"
MESSAGE = "/api/integrations/slack/message"


def preflight(origin: str = APP, method: str = "POST", headers: str = "authorization, content-type, idempotency-key") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def cors_app(make_config, aiohttp_client, **cors: Any) -> Any:
    return await serve_hub(make_config(server={"cors": {"allowed_origins": [APP], **cors}}), aiohttp_client)


def vary(resp) -> set[str]:
    return {v.strip().lower() for value in resp.headers.getall("Vary", []) for v in value.split(",")}


async def test_without_configuration_there_is_no_cors(hub_app):
    resp = await hub_app.options(MESSAGE, headers=preflight())
    assert resp.status == 401  # an OPTIONS like any request: no JWT, no answer
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
    plain = await hub_app.get("/api/integrations", headers={**auth("alice"), "Origin": APP})
    assert "Access-Control-Allow-Origin" not in plain.headers


@pytest.mark.parametrize("path", [MESSAGE, STATUS, "/api/integrations", "/api/integrations/slack/no/such/action"])
async def test_a_preflight_is_answered_without_a_jwt(make_config, aiohttp_client, path):
    client = await cors_app(make_config, aiohttp_client, max_age=120)
    resp = await client.options(path, headers=preflight(method="PATCH"))
    assert resp.status == 204, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert "PATCH" in resp.headers["Access-Control-Allow-Methods"].split(", ")
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization, content-type, idempotency-key"
    assert resp.headers["Access-Control-Max-Age"] == "120"
    assert "Access-Control-Allow-Credentials" not in resp.headers
    assert "origin" in vary(resp)
    assert resp.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        (preflight(origin="https://evil.example"), "Origin"),
        (preflight(origin="https://app.example.com.evil.example"), "Origin"),
        (preflight(method="TRACE"), "Access-Control-Request-Method"),
        (preflight(headers="authorization, x-secret-sauce"), "Access-Control-Request-Headers"),
    ],
)
async def test_a_preflight_outside_the_configuration_is_refused(make_config, aiohttp_client, headers, field):
    client = await cors_app(make_config, aiohttp_client)
    resp = await client.options(MESSAGE, headers=headers)
    body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == "cors_refused"
    assert body["error"]["details"]["field"] == field and body["error"]["message"].startswith(field)
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_answers_to_an_allowed_origin_expose_the_api_headers(make_config, aiohttp_client):
    client = await cors_app(make_config, aiohttp_client)
    for resp in (
        await client.get("/api/integrations", headers={**auth("alice"), "Origin": APP}),
        await client.get("/api/integrations", headers={"Origin": APP}),  # a 401 must be readable too
    ):
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= exposed
        assert "origin" in vary(resp)
    other = await client.get("/api/integrations", headers={**auth("alice"), "Origin": "https://evil.example"})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    assert "origin" in vary(other)  # a cache must not hand this answer to the allowed origin either


async def test_a_wildcard_answers_star_and_never_credentials(make_config, aiohttp_client):
    client = await serve_hub(make_config(server={"cors": {"allowed_origins": ["*"]}}), aiohttp_client)
    resp = await client.options(MESSAGE, headers=preflight(origin="https://anyone.example"))
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in resp.headers
    plain = await client.get("/healthz", headers={"Origin": "https://anyone.example"})
    assert plain.headers["Access-Control-Allow-Origin"] == "*"


async def test_credentials_when_asked_for_listed_origins(make_config, aiohttp_client):
    client = await cors_app(make_config, aiohttp_client, allow_credentials=True)
    resp = await client.options(MESSAGE, headers=preflight())
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    plain = await client.get("/api/integrations", headers={**auth("alice"), "Origin": APP})
    assert plain.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize(
    ("cors", "problem"),
    [
        ({"allowed_origins": ["*"], "allow_credentials": True}, "allow_credentials: true cannot go with"),
        ({"allowed_origins": ["*", APP]}, "list it alone"),
        ({"allowed_origins": ["https://app.example.com/path"]}, "must be an origin"),
        ({"allowed_origins": ["app.example.com"]}, "must be an origin"),
        ({"allowed_origins": [APP], "allowed_headers": ["X Bad"]}, "must be a header name"),
        ({"allowed_origins": [APP], "max_age": -1}, "server.cors.max_age"),
        ({"allowed_origin": [APP]}, "server.cors.allowed_origin: unknown key"),
    ],
)
def test_a_bad_cors_configuration_is_refused_clearly(cors, problem):
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"server": {"cors": cors}}, env={})
    assert problem in str(caught.value) and "server.cors" in str(caught.value)


def test_no_origin_is_allowed_by_default():
    assert config_from_dict({}, env={}).server.cors.allowed_origins == []


# --- a real browser on another origin -------------------------------------------------

FETCH = """async ([url, token, key]) => {
    try {
        const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
        if (key) headers["Idempotency-Key"] = key;
        const r = await fetch(url, {method: "PATCH", headers, body: JSON.stringify({status: "INACTIVE"})});
        return {status: r.status, requestId: r.headers.get("X-Request-Id"), body: await r.json()};
    } catch (e) {
        return {blocked: String(e)};
    }
}"""


async def page_server() -> TestServer:
    async def home(_request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>host app</title>", content_type="text/html")

    page = web.Application()
    page.router.add_get("/", home)
    server = TestServer(page, host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_page_on_an_allowed_origin_reads_the_api_in_a_real_browser(make_config, aiohttp_client):
    from hub.infra.auth import issue_token

    allowed, other = await page_server(), await page_server()
    try:
        origin = str(allowed.make_url("")).rstrip("/")
        client = await serve_hub(make_config(server={"cors": {"allowed_origins": [origin]}}), aiohttp_client)
        url = str(client.make_url(STATUS))
        token = issue_token(JWT_SECRET, "alice")
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(origin + "/")
            answer = await page.evaluate(FETCH, [url, token, "browser-key-1"])
            # The preflight passed, the request ran, and the page can read the error and its id.
            assert answer["status"] == 404 and answer["body"]["error"]["code"] == "integration_not_found", answer
            assert answer["requestId"]
            await page.goto(str(other.make_url("/")))
            refused = await page.evaluate(FETCH, [url, token, None])
            assert "blocked" in refused, refused  # the browser itself stops a page from elsewhere
    finally:
        await allowed.close()
        await other.close()

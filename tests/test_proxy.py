"""Issue 14 item 4: the provider proxy, through the real HTTP server and the fake Google (the
proxy's config is on Google Calendar here: its API answers 401 for a dead token, so
refresh-and-retry shows on the wire)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from hub_google_calendar.fake import FakeGoogle

from conftest import serve_hub
from hub.core import proxyrules
from hub.errors import BadRequest
from hub.infra.config import ConfigError, config_from_dict
from hub.web.proxy import openapi_paths
from helpers import connect_slack
from support import auth, google_section, slack_section
from test_google import connect_google

P = "/api/integrations/google_calendar/proxy"
PROXY = {
    "enabled": True,
    "methods": ["GET", "HEAD", "POST", "PATCH"],
    "path_prefixes": ["users/me", "calendars"],
    "forward_headers": ["X-Goog-Request-Reason"],
}
SECRET_WORD = "kept-out-of-the-log-7431"


def google_proxy_section(fake: FakeGoogle, **proxy: Any) -> dict[str, Any]:
    return {**google_section(fake), "proxy": {**PROXY, **proxy}}


@pytest.fixture
async def proxied(make_config, fake_google, aiohttp_client):
    """A hub with Google Calendar's proxy on, and alice connected."""
    client = await serve_hub(make_config(providers={"google_calendar": google_proxy_section(fake_google)}), aiohttp_client)
    await connect_google(client)
    return client


async def send(client, method, path, user="alice", headers=None, **kw):
    resp = await client.request(method, f"{P}/{path}", headers={**auth(user), **(headers or {})}, **kw)
    return resp, await resp.read()


async def raw_request(client, method: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Send ``target`` byte for byte (no client normalises it on the way) and read the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {client.server.host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in {**auth(), **(headers or {})}.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body.decode("latin-1")}


def calendar_calls(fake: FakeGoogle) -> list[Any]:
    return [c for c in fake.calls if c.path.startswith("/calendar/v3")]


async def test_get_and_post_with_refresh_on_an_expired_token(proxied, fake_google):
    await proxied.db.expire_token(provider="google_calendar", ago=timedelta(seconds=1))
    fake_google.expire_tokens()
    before, sent_before = fake_google.refresh_count, len(calendar_calls(fake_google))
    resp, body = await send(proxied, "GET", "users/me/calendarList?maxResults=10")
    assert resp.status == 200, body
    assert len(calendar_calls(fake_google)) - sent_before == 1  # refreshed first: the dead token never went out
    listing = json.loads(body)
    assert listing["kind"] == "calendar#calendarList"  # Google's own body, not the hub's envelope
    assert resp.headers["Content-Type"].startswith("application/json")
    assert fake_google.refresh_count - before == 1
    assert calendar_calls(fake_google)[-1].query == {"maxResults": "10"}

    await proxied.db.expire_token(provider="google_calendar", ago=timedelta(seconds=1))
    fake_google.expire_tokens()
    event = {
        "summary": SECRET_WORD,
        "start": {"dateTime": "2026-06-01T10:00:00Z"},
        "end": {"dateTime": "2026-06-01T11:00:00Z"},
    }
    resp, body = await send(proxied, "POST", "calendars/primary/events", json=event)
    assert resp.status == 200, body
    created = json.loads(body)
    assert created["summary"] == SECRET_WORD and fake_google.refresh_count - before == 2
    assert fake_google.calls_to("/calendar/v3/calendars/primary/events", "POST")[-1].json == event

    rows = await proxied.db.activity(action="proxy", provider="google_calendar")
    assert [(r.request_data["method"], r.request_data["path"], r.status) for r in rows] == [
        ("GET", "users/me/calendarList", "SUCCESS"),
        ("POST", "calendars/primary/events", "SUCCESS"),
    ]
    assert rows[0].request_data["queryNames"] == ["maxResults"]
    assert rows[1].response_data["status"] == 200
    for row in rows:  # bodies are never kept: neither the event sent nor Google's answer
        assert SECRET_WORD not in json.dumps(row.request_data) + json.dumps(row.response_data)
        assert "ya29" not in json.dumps(row.request_data) + json.dumps(row.response_data)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("http://evil.example/x", "absolute URL"),
        ("https:%2F%2Fevil.example/x", "percent-encoded"),
        ("/evil.example/calendars", "scheme-relative"),
        ("calendars/../../oauth2/v2/auth", "'..' segment"),
        ("calendars/./primary", "'.' segment"),
        ("calendars/%2e%2e/%2e%2e/token", "percent-encoded"),
        ("calendars/%2E%2E/x", "percent-encoded"),
        ("calendars%2fprimary", "percent-encoded"),
        ("calendars/%5c..%5cx", "percent-encoded"),
        ("calendars/%252e%252e/x", "doubly"),
        ("calendars/%252fx", "doubly"),
        ("calendars/%25252fx", "doubly"),
        ("calendars\\..\\x", "backslash"),
        ("calendars/%00x", "control character"),
        ("calendars/%0d%0aHost:%20evil.example", "control character"),
        ("calendars//primary", "empty segment"),
        ("", "empty"),
    ],
)
async def test_each_path_trick_is_refused(proxied, fake_google, target, problem):
    before = len(calendar_calls(fake_google))
    status, body = await raw_request(proxied, "GET", f"{P}/{target}")
    assert status == 400, body
    assert body["error"]["code"] == "proxy_bad_path" and problem in body["error"]["message"]
    assert body["error"]["details"]["field"] == "path"
    assert len(calendar_calls(fake_google)) == before  # nothing reached the provider


async def test_an_absolute_form_request_target_is_refused(proxied, fake_google):
    before = len(fake_google.calls)
    status, body = await raw_request(proxied, "GET", f"http://evil.example{P}/users/me/calendarList")
    assert status == 400 and body["error"]["code"] == "proxy_bad_path", body
    assert len(fake_google.calls) == before


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("https://api.example.com/v1", "//evil.example/x"),
        ("https://api.example.com/v1", "../x"),
        ("https://api.example.com/v1", "a/../../x"),
        ("https://api.example.com/v1", "%2e%2e/x"),
        ("https://api.example.com/v1", "a%255c..%255c..%255cx"),
        ("https://api.example.com/v1/", "..\\x"),
    ],
)
def test_the_built_url_stays_under_the_base(base, path):
    """The last check, on the URL as built, holds even without the path rules before it."""
    with pytest.raises(BadRequest):
        proxyrules.target(base, path, "")
    url = proxyrules.target(base, "x/y", "a=1")
    assert (url.host, url.raw_path, url.raw_query_string) == ("api.example.com", "/v1/x/y", "a=1")


def test_response_headers_keep_only_the_safe_ones():
    sent = {
        "Content-Type": "application/json",
        "ETag": '"e1"',
        "Link": "<https://api.example.com/v1/x?page=2>; rel=next",
        "X-RateLimit-Remaining": "41",
        "RateLimit-Reset": "30",
        "Set-Cookie": "sid=1",
        "Server": "upstream/1.0",
        "Content-Encoding": "gzip",
        "Transfer-Encoding": "chunked",
        "WWW-Authenticate": "Bearer",
    }
    kept = dict(proxyrules.response_headers(sent))
    assert set(kept) == {"Content-Type", "ETag", "Link", "X-RateLimit-Remaining", "RateLimit-Reset"}


async def test_a_disabled_providers_proxy_answers_404(hub_app, fake_slack):
    resp = await hub_app.get("/api/integrations/slack/proxy/conversations.list", headers=auth())
    body = await resp.json()
    assert resp.status == 404 and body["error"]["code"] == "proxy_not_enabled", body
    assert "providers.slack.proxy.enabled" in body["error"]["message"]
    assert not fake_slack.calls_to("/api/conversations.list")


async def test_no_caller_header_reaches_the_provider_unless_allowed(proxied, fake_google):
    sent = {
        "Accept": "application/json",
        "X-Goog-Request-Reason": "audit-42",
        "Cookie": "session=abc",
        "X-Api-Key": "caller-key",
        "X-Auth-Token": "caller-token",
        "Proxy-Authorization": "Basic eDp5",
        "X-Custom": "should-stay",
        "Connection": "X-Goog-Request-Reason",
        "Keep-Alive": "timeout=5",
        "Forwarded": "for=1.2.3.4",
    }
    resp, body = await send(proxied, "GET", "users/me/calendarList", headers=sent)
    assert resp.status == 200, body
    got = {k.lower(): v for k, v in calendar_calls(fake_google)[-1].headers.items()}
    assert got["accept"] == "application/json"
    assert got["authorization"].startswith("Bearer ya29.fake-")  # Google's token, never the caller's JWT
    for name in ("cookie", "x-api-key", "x-auth-token", "proxy-authorization", "x-custom", "keep-alive", "forwarded"):
        assert name not in got, name
    assert "x-goog-request-reason" not in got  # listed, but Connection named it: hop-by-hop

    resp, body = await send(proxied, "GET", "users/me/calendarList", headers={"X-Goog-Request-Reason": "audit-43"})
    assert resp.status == 200
    got = {k.lower(): v for k, v in calendar_calls(fake_google)[-1].headers.items()}
    assert got["x-goog-request-reason"] == "audit-43"


async def test_head(proxied, fake_google):
    resp, body = await send(proxied, "HEAD", "users/me/calendarList")
    assert resp.status == 200 and body == b""
    assert resp.headers["Content-Type"].startswith("application/json")
    assert calendar_calls(fake_google)[-1].method == "HEAD"


async def test_the_response_size_cap_holds(make_config, fake_google, aiohttp_client):
    config = make_config(providers={"google_calendar": google_proxy_section(fake_google)}, upstream={"max_response_bytes": 1024})
    client = await serve_hub(config, aiohttp_client)
    await connect_google(client)
    for i in range(10):
        fake_google.add_event(summary=f"Meeting number {i} " + "x" * 100)
    resp, body = await send(client, "GET", "calendars/primary/events")
    assert resp.status == 502, body
    assert json.loads(body)["error"]["code"] == "provider_bad_response"
    rows = await client.db.activity(action="proxy", provider="google_calendar")
    assert rows[-1].status == "FAILED" and "1024-byte limit" in rows[-1].error_message


async def test_401_refreshes_once_and_sends_again(proxied, fake_google):
    fake_google.expire_tokens()  # Google says the token is dead; the hub's expiry says it is fine
    before = fake_google.refresh_count
    resp, body = await send(proxied, "GET", "users/me/calendarList")
    assert resp.status == 200, body
    assert fake_google.refresh_count - before == 1
    assert [c.path for c in calendar_calls(fake_google)][-2:] == ["/calendar/v3/users/me/calendarList"] * 2


async def test_a_persistent_401_means_error_and_reconnect(proxied, fake_google):
    fake_google.fail_next(401, path="/calendar/v3", count=2)
    resp, body = await send(proxied, "GET", "users/me/calendarList")
    answer = json.loads(body)
    assert resp.status == 409 and answer["error"]["code"] == "reconnect_required", answer
    assert "connect again" in answer["error"]["message"]
    row = await proxied.db.integration(provider="google_calendar")
    assert row.status == "ERROR"


async def test_a_5xx_to_a_get_is_retried(proxied, fake_google):
    fake_google.fail_next(503, path="/calendar/v3")
    resp, body = await send(proxied, "GET", "users/me/calendarList")
    assert resp.status == 200, body


async def test_a_provider_error_comes_back_verbatim(proxied, fake_google):
    resp, body = await send(proxied, "GET", "calendars/no-such-calendar/events")
    assert resp.status == 404
    assert json.loads(body)["error"]["errors"][0]["reason"] == "notFound"  # Google's shape, not the hub's
    rows = await proxied.db.activity(action="proxy", provider="google_calendar")
    assert rows[-1].status == "FAILED" and "HTTP 404" in rows[-1].error_message


async def test_a_method_outside_the_list_is_405(proxied, fake_google):
    resp, body = await send(proxied, "DELETE", "calendars/primary/events/x")
    assert resp.status == 405, body
    assert resp.headers["Allow"] == "GET, HEAD, POST, PATCH"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["freeBusy", "calendarsX/primary", "users/meX"])
async def test_a_path_outside_the_prefixes_is_403(proxied, fake_google, path):
    before = len(calendar_calls(fake_google))
    resp, body = await send(proxied, "POST" if path == "freeBusy" else "GET", path, json={} if path == "freeBusy" else None)
    assert resp.status == 403, body
    assert json.loads(body)["error"]["code"] == "proxy_path_not_allowed"
    assert len(calendar_calls(fake_google)) == before


async def test_idempotency_key_replays_a_proxied_post(proxied, fake_google):
    event = {"summary": "Once", "start": {"dateTime": "2026-06-01T10:00:00Z"}, "end": {"dateTime": "2026-06-01T11:00:00Z"}}
    headers = {"Idempotency-Key": "proxy-post-1"}
    first, body1 = await send(proxied, "POST", "calendars/primary/events", headers=headers, json=event)
    second, body2 = await send(proxied, "POST", "calendars/primary/events", headers=headers, json=event)
    assert first.status == second.status == 200
    assert body1 == body2 and second.headers.get("Idempotent-Replayed") == "true"
    assert len(fake_google.calls_to("/calendar/v3/calendars/primary/events", "POST")) == 1


async def test_openapi_paths_per_enabled_provider(proxied):
    paths = openapi_paths(proxied.hub)
    assert list(paths) == ["/api/integrations/google_calendar/proxy/{path}"]
    item = paths["/api/integrations/google_calendar/proxy/{path}"]
    assert [op["operationId"] for op in item.values()] == [f"google_calendar_proxy_{m}" for m in ("get", "head", "post", "patch")]
    assert "requestBody" in item["post"] and "requestBody" not in item["get"]


async def test_the_served_document_has_each_enabled_proxy_and_its_refusal_codes(proxied):
    doc = await (await proxied.get("/api/openapi.json")).json()
    item = doc["paths"]["/api/integrations/google_calendar/proxy/{path}"]
    assert item["get"]["operationId"] == "google_calendar_proxy_get"
    assert not any("/slack/proxy/" in path for path in doc["paths"])  # enabled for Google only
    codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert {"proxy_bad_path", "proxy_path_not_allowed", "proxy_not_enabled"} <= set(codes)
    answer = item["get"]["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    assert answer.rsplit("/", 1)[1] in doc["components"]["schemas"]


@pytest.mark.parametrize(
    ("proxy", "where"),
    [
        ({"methods": ["GET", "TRACE"]}, "providers.google_calendar.proxy.methods: entry 1 ('TRACE') must be one of"),
        ({"methods": []}, "providers.google_calendar.proxy.methods: must list at least one method"),
        ({"path_prefixes": ["calendars/../oauth"]}, "providers.google_calendar.proxy.path_prefixes: entry 0"),
        ({"path_prefixes": ["calendars%2fx"]}, "providers.google_calendar.proxy.path_prefixes: entry 0"),
        ({"forward_headers": ["Authorization"]}, "providers.google_calendar.proxy.forward_headers: entry 0 ('Authorization') cannot be forwarded"),
        ({"forward_headers": ["X-Api-Key"]}, "cannot be forwarded: it may carry credentials"),
        ({"forward_headers": ["Connection"]}, "hop-by-hop"),
        ({"forward_headers": ["bad header"]}, "must be a header name"),
        ({"enabled": "maybe"}, "providers.google_calendar.proxy.enabled:"),
        ({"prefixes": ["x"]}, "providers.google_calendar.proxy.prefixes: unknown key"),
    ],
)
def test_config_errors_name_the_yaml_path(proxy, where):
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"providers": {"google_calendar": {"proxy": proxy}}}, env={})
    assert any(where in p for p in caught.value.problems), caught.value.problems


def test_the_proxy_is_off_by_default():
    config = config_from_dict({"providers": {"google_calendar": {}}}, env={})
    section = config.providers["google_calendar"].proxy
    assert section.enabled is False and section.path_prefixes == [] and "DELETE" in section.methods


async def test_the_request_budget_applies_and_its_headers_are_the_hubs(make_config, fake_google, aiohttp_client):
    section = {**google_proxy_section(fake_google), "rate_limits": [{"requests": 3, "seconds": 3600}]}
    client = await serve_hub(make_config(providers={"google_calendar": section}, upstream={"max_queue_wait": 0}), aiohttp_client)
    await connect_google(client)
    provider_says = {"RateLimit-Limit": "999", "X-RateLimit-Remaining": "5"}
    fake_google.fail_next(200, lambda: web.json_response({"items": []}, headers=provider_says), path="/calendar/v3")
    answers, headers = [], []
    for _ in range(5):  # the connect's own calls spent part of the budget already
        resp, body = await send(client, "GET", "users/me/calendarList")
        answers.append((resp.status, resp.headers.get("RateLimit-Limit"), body))
        headers.append(resp.headers)
        if resp.status != 200:
            break
    assert answers[0][:2] == (200, "3")  # the hub's budget, not the provider's 999
    assert headers[0]["X-RateLimit-Remaining"] == "5"  # the provider's own, under its own name
    status, limit, body = answers[-1]
    assert status == 429 and limit == "3" and json.loads(body)["error"]["code"] == "throttled"


async def test_a_plugin_recognised_credential_refusal_counts_as_a_401(make_config, fake_slack, aiohttp_client):
    """Slack answers 200 with ``invalid_auth``/``token_revoked``; its plugin's response check
    says what that means, so the proxy treats it as refused credentials."""
    section = {**slack_section(fake_slack), "proxy": {"enabled": True, "path_prefixes": ["conversations.list", "auth.test"]}}
    client = await serve_hub(make_config(providers={"slack": section}), aiohttp_client)
    await connect_slack(client, auth("alice"))
    resp = await client.get("/api/integrations/slack/proxy/conversations.list?limit=1", headers=auth())
    listing = await resp.json()
    assert resp.status == 200 and listing["ok"] is True and "channels" in listing  # Slack's body, verbatim
    fake_slack.revoke_all()
    resp = await client.get("/api/integrations/slack/proxy/auth.test", headers=auth())
    body = await resp.json()
    assert resp.status == 409 and body["error"]["code"] == "reconnect_required", body
    assert (await client.db.integration(provider="slack")).status == "ERROR"


async def test_non_ascii_in_the_path_goes_out_percent_encoded(proxied, fake_google):
    status, body = await raw_request(proxied, "GET", f"{P}/calendars/caf%C3%A9/events")
    assert status == 404, body  # Google's own "not found" for that calendar id
    assert calendar_calls(fake_google)[-1].path == "/calendar/v3/calendars/café/events"

"""Where the hub and its OpenAPI document used to disagree (issue: an API contract a host can
build on): each mismatch a host developer found has a test here that would catch it again."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import connect_slack
from support import auth

from hub.validation import FORMATS

SLACK = "/api/integrations/slack"
G = "/api/integrations/google_calendar"


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return body["error"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("logs", "action=", "action"),
        ("logs", "since=", "since"),
        ("logs", "status=", "status"),
        ("logs", "cursor=", "cursor"),
        ("logs", "limit=", "limit"),
        ("stats", "days=", "days"),
        ("stats/daily", "days=", "days"),
        ("connect", "return_url=", "return_url"),
    ],
)
async def test_an_empty_query_parameter_is_refused_the_same_way_everywhere(slack_connected: Any, path: str, query: str, field: str) -> None:
    error = await error_of(await slack_connected.get(f"{SLACK}/{path}?{query}", headers=auth("alice")), 400)
    assert (error["code"], error["details"]["field"]) == ("validation_error", field)
    assert "empty" in error["message"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [("logs", "limit=5&limit=500", "limit"), ("logs", "status=FAILED&status=SUCCESS", "status"), ("stats", "days=1&days=2", "days"),
     ("connect", "return_url=https://app.example.com/&return_url=https://evil.example/", "return_url")],
)
async def test_a_repeated_query_parameter_is_refused_not_half_read(slack_connected: Any, path: str, query: str, field: str) -> None:
    error = await error_of(await slack_connected.get(f"{SLACK}/{path}?{query}", headers=auth("alice")), 400)
    assert (error["code"], error["details"]["field"]) == ("validation_error", field)
    assert "2 times" in error["message"]


async def test_core_routes_and_actions_report_bad_fields_with_one_code_and_one_shape(slack_connected: Any) -> None:
    core = await error_of(await slack_connected.get(f"{SLACK}/logs?limit=lots", headers=auth("alice")), 400)
    action = await error_of(await slack_connected.post(f"{SLACK}/message", json={"channel": 7}, headers=auth("alice")), 400)
    for error in (core, action):
        assert error["code"] == "validation_error"
        details = error["details"]
        assert isinstance(details, dict) and details["field"] == details["problems"][0]["field"]
        assert all(set(p) == {"field", "problem"} for p in details["problems"])


async def test_a_null_reason_is_what_the_document_says(slack_connected: Any) -> None:
    resp = await slack_connected.patch(f"{SLACK}/status", json={"status": "INACTIVE", "reason": None}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    doc = await (await slack_connected.get("/api/openapi.json")).json()
    body = doc["paths"]["/api/integrations/{provider}/status"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert "null" in body["properties"]["reason"]["type"]


async def test_the_tokens_route_is_documented_as_the_hub_serves_it(hub_app: Any) -> None:
    import re

    doc = await (await hub_app.get("/api/openapi.json")).json()
    op = doc["paths"]["/api/integrations/{provider}/tokens"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"token", "state"}  # the token flow posts {token, state}
    assert {} in op["security"]  # ... without a JWT
    pattern = re.compile(schema["properties"]["token"]["pattern"])
    for token in (" padded", "tab\there", "naïve", "new\nline"):
        assert not pattern.search(token)
        resp = await hub_app.post(f"{SLACK}/tokens", json={"token": token}, headers=auth("alice"))
        assert (await error_of(resp, 400))["details"]["field"] == "token"
    assert pattern.search("xoxb-a-plausible-1234")


async def test_after_a_disconnect_the_409_names_a_move_that_works(slack_connected: Any) -> None:
    resp = await slack_connected.delete(f"{SLACK}/disconnect", headers=auth("alice"))
    assert resp.status == 200
    error = await error_of(await slack_connected.get(f"{SLACK}/channels", headers=auth("alice")), 409)
    assert "connect again" in error["message"] and "PATCH" not in error["message"]
    # ... and the move it names does work: connecting again makes the call succeed.
    await connect_slack(slack_connected, auth("alice"))
    assert (await slack_connected.get(f"{SLACK}/channels", headers=auth("alice"))).status == 200


def test_formats_are_checked_by_the_hubs_own_rules() -> None:
    # Not by whatever optional package is installed: the same on every installation.
    for fmt in ("date-time", "date", "time", "email"):
        assert FORMATS.checkers[fmt][0].__module__ == "hub.formats", fmt
    good = {"date-time": ["2026-03-30T09:00:00+02:00", "2026-03-30t09:00:00.5Z"], "date": ["2024-02-29"],
            "time": ["23:59:59Z"], "email": ["ada@example.com"]}
    bad = {"date-time": ["tomorrow", "2026-03-30T09:00:00", "2026-02-30T09:00:00Z", "2026-03-30T24:00:00Z", "2026-03-30"],
           "date": ["2023-02-29", "2026-3-1", "yesterday"], "time": ["9:00", "12:00:00", "25:00:00Z"],
           "email": ["ada", "ada@", "@example.com", "ada@example", "a da@example.com"]}
    for fmt, values in good.items():
        assert all(FORMATS.conforms(v, fmt) for v in values), fmt
    for fmt, values in bad.items():
        assert not any(FORMATS.conforms(v, fmt) for v in values), (fmt, [v for v in values if FORMATS.conforms(v, fmt)])


async def test_a_date_google_would_refuse_is_refused_here(google_app: Any, fake_google: Any) -> None:
    from test_google import connect_google

    await connect_google(google_app)
    before = len(fake_google.calls)
    event = {"summary": "Lunch", "start": {"dateTime": "tomorrow"}, "end": {"dateTime": "2026-03-30T13:00:00Z"}}
    error = await error_of(await google_app.post(f"{G}/events", json=event, headers=auth("alice")), 400)
    assert error["details"]["field"] == "start.dateTime"
    assert len(fake_google.calls) == before  # nothing reached Google


async def test_a_failed_any_of_says_which_fields_would_make_it_valid(slack_connected: Any, fake_slack: Any) -> None:
    error = await error_of(await slack_connected.post(f"{SLACK}/message", json={"channel": "general"}, headers=auth("alice")), 400)
    assert "text" in error["message"] and "blocks" in error["message"]
    assert "any of the given schemas" not in error["message"]


async def test_a_401_carries_a_bearer_challenge(hub_app: Any) -> None:
    resp = await hub_app.get("/api/integrations")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="integration-hub"'  # no credentials: no error code
    resp = await hub_app.get("/api/integrations", headers={"Authorization": "Bearer not-a-jwt"})
    challenge = resp.headers["WWW-Authenticate"]
    assert resp.status == 401 and challenge.startswith('Bearer realm="integration-hub", error="invalid_token", error_description="')
    assert challenge.count('"') == 6  # the description cannot break out of its quotes
    expired = auth("alice", ttl_seconds=-60)
    resp = await hub_app.get("/api/integrations", headers=expired)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"] and "expired" in resp.headers["WWW-Authenticate"]


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_a_jwt_from_the_future_is_not_valid_yet(hub_app: Any, claim: str) -> None:
    import time

    import jwt

    from support import JWT_SECRET

    now = int(time.time())
    token = jwt.encode({"sub": "alice", "exp": now + 3600, claim: now + 600}, JWT_SECRET, algorithm="HS256")
    resp = await hub_app.get("/api/integrations", headers={"Authorization": f"Bearer {token}"})
    error = await error_of(resp, 401)
    assert error["code"] == "unauthorized" and "not valid yet" in error["message"], error
    assert "not valid yet" in resp.headers["WWW-Authenticate"]


async def test_an_error_answer_keeps_to_the_one_details_shape(slack_connected: Any, monkeypatch: pytest.MonkeyPatch, fake_slack: Any) -> None:
    import hub_slack

    from hub import ProviderError

    def odd(body: Any, response: Any) -> ProviderError:
        return ProviderError("Slack said no", provider_code="nope", status=409, details={"channelState": "archived", "field": "channel"})

    monkeypatch.setattr(hub_slack, "slack_error", odd)
    fake_slack.slack_error_next("chat.postMessage", "nope")
    resp = await slack_connected.post(f"{SLACK}/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))
    error = await error_of(resp, 409)
    doc = await (await slack_connected.get("/api/openapi.json")).json()
    assert set(error["details"]) <= set(doc["components"]["schemas"]["ErrorDetails"]["properties"])
    assert error["details"]["info"] == {"channelState": "archived"} and error["details"]["providerError"] == "nope"


@pytest.mark.parametrize("url", ["http://[::1", "http://[", "https://[fe80::1/x"])
async def test_a_broken_ipv6_return_url_is_a_400_not_a_500(hub_app: Any, url: str) -> None:
    from urllib.parse import quote

    error = await error_of(await hub_app.get(f"{SLACK}/connect?return_url={quote(url, safe='')}", headers=auth("alice")), 400)
    assert (error["code"], error["details"]["field"]) == ("validation_error", "return_url")


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ({"date": "2026-03-30"}, {"dateTime": "2026-03-30T13:00:00Z"}, "end"),
        ({"dateTime": "2026-03-30T12:00:00Z", "timeZone": "Mars/Olympus"}, {"dateTime": "2026-03-30T13:00:00Z"}, "start.timeZone"),
        ({"dateTime": "2026-03-30T12:00:00Z"}, {"dateTime": "2026-03-30T13:00:00Z", "timeZone": "+02:00"}, "end.timeZone"),
    ],
)
async def test_event_times_google_would_refuse_are_refused_here(google_app: Any, fake_google: Any, start: Any, end: Any, field: str) -> None:
    from test_google import connect_google

    await connect_google(google_app)
    before = len(fake_google.calls)
    event = {"summary": "Lunch", "start": start, "end": end}
    error = await error_of(await google_app.post(f"{G}/events", json=event, headers=auth("alice")), 400)
    assert (error["code"], error["details"]["field"]) == ("validation_error", field)
    assert len(fake_google.calls) == before  # nothing reached Google
    ok = {"summary": "Lunch", "start": {"dateTime": "2026-03-30T12:00:00+02:00", "timeZone": "Europe/Berlin"}, "end": {"dateTime": "2026-03-30T13:00:00Z"}}
    assert (await google_app.post(f"{G}/events", json=ok, headers=auth("alice"))).status == 200

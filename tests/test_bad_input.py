"""Bad input through the real HTTP server: every mistake a caller can make gets the
documented status, an error code and a message that names the problem, and leaves the
stored data (integrations, OAuth states, activity rows) and the provider untouched."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import timedelta
from typing import Any

import jwt
import pytest
from helpers import callback_path, connect_slack, consent
from support import JWT_SECRET, Rows, auth

from hub.infra.auth import issue_token
from hub.store.models import Integration, IntegrationLog, utcnow

SLACK = "/api/integrations/slack"
JSON_ACCEPT = {"Accept": "application/json"}


# --- what is stored --------------------------------------------------------------------


async def snapshot(db: Rows) -> dict[str, Any]:
    """Every column a request could plausibly touch, plus the number of activity rows."""
    await db.settle()
    integrations = [
        (
            r.id, r.user_id, r.provider, r.status, r.status_reason, r.access_token, r.refresh_token,
            r.token_expiry, r.scopes, r.meta, r.created_at, r.updated_at, r.last_sync_at, r.version,
        )
        for r in await db.integrations()
    ]
    states = [
        (r.id, r.state_hash, r.user_id, r.provider, r.code_verifier, r.return_url, r.expires_at, r.consumed_at)
        for r in await db.states()
    ]
    return {"integrations": integrations, "oauth_states": states, "log_rows": await db.count(IntegrationLog)}


async def start_connect(client: Any, headers: dict[str, str], decision: str = "allow") -> str:
    """connect + the provider's consent page; returns the callback path the browser would load."""
    resp = await client.get(f"{SLACK}/connect", headers=headers)
    assert resp.status == 200, await resp.text()
    return callback_path(await consent((await resp.json())["data"]["authUrl"], decision))


def error_fields(details: Any) -> list[str]:
    """The field names an error's details point at: ``field`` and every problem's field."""
    if not isinstance(details, dict):
        return []
    named = [details["field"]] if "field" in details else []
    return named + [p["field"] for p in details.get("problems", []) if p["field"] not in named]


async def read_error(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["success"] is False, body
    return body["error"]


@pytest.fixture
async def alice(hub_app: Any, fake_slack: Any) -> dict[str, str]:
    """Alice has a connected Slack, one posted message, and one unfinished connect."""
    h = auth("alice")
    await connect_slack(hub_app, h)
    resp = await hub_app.post(f"{SLACK}/message", json={"channel": "general", "text": "before"}, headers=h)
    assert resp.status == 200, await resp.text()
    resp = await hub_app.get(f"{SLACK}/connect", headers=h)
    assert resp.status == 200
    return h


# --- the cases ---------------------------------------------------------------------------

NOW = int(time.time())
FORGED = issue_token("not-the-hub-secret-" + "y" * 40, "alice")
EXPIRED = issue_token(JWT_SECRET, "alice", ttl_seconds=-3600)
NO_SUB = jwt.encode({"exp": NOW + 3600, "iat": NOW}, JWT_SECRET, algorithm="HS256")
ALG_NONE = jwt.encode({"sub": "alice", "exp": NOW + 3600}, None, algorithm="none")
BIG_TEXT = "x" * (1024 * 1024 + 1)


@dataclass
class Case:
    method: str
    path: str
    status: int
    code: str | None
    says: tuple[str, ...]  # fragments the message must contain (case-insensitive)
    field: str | None = None  # a field the error details must name
    auth: dict[str, str] | None = None  # None: alice's valid JWT; otherwise exactly these auth headers
    headers: dict[str, str] | None = None  # extra headers (Content-Type)
    json: Any = None
    data: str | bytes | None = None
    params: dict[str, str] = dc_field(default_factory=dict)
    allow: str | None = None  # expected Allow header for 405


CASES: dict[str, Case] = {
    # --- caller authentication, aimed at routes that would change something
    "no-authorization-header": Case("DELETE", SLACK, 401, "unauthorized", ("Authorization",), auth={}),
    "basic-scheme": Case("POST", f"{SLACK}/message", 401, "unauthorized", ("Bearer",),
                         auth={"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}, json={"channel": "general", "text": "x"}),
    "bearer-without-token": Case("DELETE", f"{SLACK}/disconnect", 401, "unauthorized", ("Bearer",),
                                 auth={"Authorization": "Bearer "}),
    "expired-jwt": Case("DELETE", f"{SLACK}/disconnect", 401, "token_expired", ("expired",),
                        auth={"Authorization": f"Bearer {EXPIRED}"}),
    "forged-jwt": Case("DELETE", SLACK, 401, "unauthorized", ("signature",),
                       auth={"Authorization": f"Bearer {FORGED}"}),
    "jwt-without-sub": Case("PATCH", f"{SLACK}/status", 401, "unauthorized", ("sub",),
                            auth={"Authorization": f"Bearer {NO_SUB}"}, json={"status": "INACTIVE"}),
    "jwt-alg-none": Case("POST", f"{SLACK}/message", 401, "unauthorized", ("algorithm",),
                         auth={"Authorization": f"Bearer {ALG_NONE}"}, json={"channel": "general", "text": "x"}),
    "jwt-garbage": Case("GET", "/api/integrations", 401, "unauthorized", ("malformed",),
                        auth={"Authorization": "Bearer not.a.jwt"}),
    # --- routing
    "unknown-provider": Case("GET", "/api/integrations/github/connect", 404, "unknown_provider", ("github", "slack")),
    "unknown-provider-action": Case("POST", "/api/integrations/github/issues", 404, "unknown_provider", ("github",),
                                    json={"title": "x"}),
    "unknown-action": Case("GET", f"{SLACK}/emoji", 404, "unknown_action", ("emoji", "message", "channels")),
    "action-wrong-method": Case("PUT", f"{SLACK}/message", 405, "method_not_allowed", ("PUT", "POST"), allow="POST",
                                json={"channel": "general", "text": "x"}),
    "action-wrong-method-delete": Case("DELETE", f"{SLACK}/channels", 405, "method_not_allowed", ("DELETE", "GET"), allow="GET"),
    "core-post-connect": Case("POST", f"{SLACK}/connect", 405, "method_not_allowed", ("POST", "GET"), allow="GET"),
    "core-get-refresh": Case("GET", f"{SLACK}/refresh", 405, "method_not_allowed", ("GET", "POST"), allow="POST"),
    "core-put-integration": Case("PUT", SLACK, 405, "method_not_allowed", ("PUT",), allow="DELETE, GET"),
    "core-route-sub-path": Case("GET", f"{SLACK}/connect/again", 400, "bad_request", ("connect", "sub-path")),
    # --- bodies
    "malformed-json": Case("POST", f"{SLACK}/message", 400, "malformed_json", ("JSON",), field="(body)",
                           headers={"Content-Type": "application/json"}, data='{"channel": "general", "text": '),
    "json-array-body": Case("POST", f"{SLACK}/message", 400, "bad_request", ("JSON object",), field="(body)",
                            json=["general", "hi"]),
    "json-string-body-on-status": Case("PATCH", f"{SLACK}/status", 400, "bad_request", ("JSON object",), field="(body)",
                                       json="INACTIVE"),
    "not-utf8-body": Case("POST", f"{SLACK}/message", 400, "malformed_json", ("JSON",),
                          headers={"Content-Type": "application/json"}, data=b"\xff\xfe\x00"),
    "duplicate-json-key": Case("POST", f"{SLACK}/message", 400, "malformed_json", ("twice",), field="(body)",
                               headers={"Content-Type": "application/json"},
                               data='{"channel": "general", "text": "x", "channel": "random"}'),
    "json-nan": Case("POST", f"{SLACK}/message", 400, "malformed_json", ("NaN",), field="(body)",
                     headers={"Content-Type": "application/json"}, data='{"channel": "general", "text": NaN}'),
    "wrong-content-type": Case("POST", f"{SLACK}/message", 415, "unsupported_media_type", ("Content-Type",),
                               field="Content-Type", headers={"Content-Type": "text/html"},
                               data='{"channel": "general", "text": "x"}'),
    "body-over-1mib": Case("POST", f"{SLACK}/message", 413, "payload_too_large", ("larger", "KiB"),
                           json={"channel": "general", "text": BIG_TEXT}),
    "body-over-1mib-tokens": Case("POST", f"{SLACK}/tokens", 413, "payload_too_large", ("larger",),
                                  json={"token": BIG_TEXT}),
    # --- schemas
    "missing-channel": Case("POST", f"{SLACK}/message", 400, "validation_error", ("channel", "required"), field="channel",
                            json={"text": "hi"}),
    "unknown-field": Case("POST", f"{SLACK}/message", 400, "validation_error", ("colour",), field="colour",
                          json={"channel": "general", "text": "hi", "colour": "red"}),
    "wrong-type-text": Case("POST", f"{SLACK}/message", 400, "validation_error", ("text",), field="text",
                            json={"channel": "general", "text": 42}),
    "limit-not-integer": Case("GET", f"{SLACK}/channels", 400, "validation_error", ("limit",), field="limit",
                              params={"limit": "abc"}),
    "limit-too-large": Case("GET", f"{SLACK}/channels", 400, "validation_error", ("limit",), field="limit",
                            params={"limit": "1001"}),
    "bad-user-id": Case("GET", f"{SLACK}/users/not-a-user", 400, "validation_error", ("user_id",), field="user_id"),
    "unknown-query-param-on-action": Case("GET", f"{SLACK}/channels", 400, "validation_error", ("verbose",),
                                          field="verbose", params={"verbose": "1"}),
    "post-input-in-query": Case("POST", f"{SLACK}/message", 400, "bad_request", ("JSON body",),
                                params={"channel": "general"}, json={"channel": "general", "text": "x"}),
    "path-and-input-disagree": Case("GET", f"{SLACK}/users/U0000000001", 400, "validation_error", ("user_id", "path"),
                                    field="user_id", params={"user_id": "U0000000002"}),
    # --- core routes' own inputs
    "status-bad-value": Case("PATCH", f"{SLACK}/status", 400, "validation_error", ("ACTIVE", "INACTIVE"), field="status",
                             json={"status": "PAUSED"}),
    "status-lowercase": Case("PATCH", f"{SLACK}/status", 400, "validation_error", ("ACTIVE",), field="status",
                             json={"status": "inactive"}),
    "status-missing": Case("PATCH", f"{SLACK}/status", 400, "validation_error", ("status",), field="status", json={}),
    "status-extra-field": Case("PATCH", f"{SLACK}/status", 400, "validation_error", ("until", "status"), field="until",
                               json={"status": "INACTIVE", "until": "tomorrow"}),
    "status-reason-too-long": Case("PATCH", f"{SLACK}/status", 400, "validation_error", ("reason",), field="reason",
                                   json={"status": "INACTIVE", "reason": "r" * 201}),
    "tokens-empty": Case("POST", f"{SLACK}/tokens", 400, "validation_error", ("token",), field="token", json={"token": ""}),
    "tokens-unknown-field": Case("POST", f"{SLACK}/tokens", 400, "validation_error", ("tok",), field="tok",
                                 json={"tok": "xoxb-1"}),
    "tokens-with-spaces": Case("POST", f"{SLACK}/tokens", 400, "validation_error", ("token",), field="token",
                               json={"token": "xoxb 1 2"}),
    "logs-bad-status": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("status", "SUCCESS"), field="status",
                            params={"status": "MAYBE"}),
    "logs-limit-zero": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("limit",), field="limit", params={"limit": "0"}),
    "logs-limit-abc": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("limit", "integer"), field="limit",
                           params={"limit": "abc"}),
    "logs-limit-too-large": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("limit",), field="limit",
                                 params={"limit": "201"}),
    "logs-bad-since": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("since", "ISO 8601"), field="since",
                           params={"since": "yesterday"}),
    "logs-impossible-date": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("since",), field="since",
                                 params={"since": "2026-13-01"}),
    "logs-bad-cursor": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("cursor",), field="cursor",
                            params={"cursor": "!!not-a-cursor!!"}),
    "logs-foreign-cursor": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("cursor",), field="cursor",
                                params={"cursor": base64.urlsafe_b64encode(b"page:2").decode()}),
    "logs-unknown-param": Case("GET", f"{SLACK}/logs", 400, "validation_error", ("verbose",), field="verbose",
                               params={"verbose": "1"}),
    "stats-days-zero": Case("GET", f"{SLACK}/stats", 400, "validation_error", ("days",), field="days", params={"days": "0"}),
    "stats-days-abc": Case("GET", f"{SLACK}/stats", 400, "validation_error", ("days", "integer"), field="days",
                           params={"days": "abc"}),
    "stats-days-too-many": Case("GET", f"{SLACK}/stats", 400, "validation_error", ("days",), field="days",
                                params={"days": "366"}),
    "return-url-not-allowed": Case("GET", f"{SLACK}/connect", 400, "return_url_not_allowed",
                                   ("return_url", "allowed_redirects"), field="return_url",
                                   params={"return_url": "https://evil.example.net/landing"}),
    "return-url-lookalike-host": Case("GET", f"{SLACK}/connect", 400, "return_url_not_allowed", ("return_url",),
                                      field="return_url", params={"return_url": "https://app.example.com.evil.net/"}),
    "return-url-userinfo-trick": Case("GET", f"{SLACK}/connect", 400, "return_url_not_allowed", ("return_url",),
                                      field="return_url", params={"return_url": "https://app.example.com@evil.net/"}),
    "return-url-javascript": Case("GET", f"{SLACK}/connect", 400, "validation_error", ("return_url",), field="return_url",
                                  params={"return_url": "javascript:alert(1)"}),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_refused_and_changes_nothing(name: str, hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    case = CASES[name]
    db = hub_app.db
    before = await snapshot(db)
    upstream_calls = len(fake_slack.calls)
    headers = {**(alice if case.auth is None else case.auth), **(case.headers or {})}
    kwargs: dict[str, Any] = {"headers": headers, "params": case.params}
    if case.data is not None:
        kwargs["data"] = case.data
    elif case.json is not None:
        kwargs["json"] = case.json

    resp = await hub_app.request(case.method, case.path, **kwargs)
    error = await read_error(resp, case.status)

    if case.code is not None:
        assert error["code"] == case.code, error
    for fragment in case.says:
        assert fragment.lower() in error["message"].lower(), (fragment, error)
    if case.field is not None:
        assert case.field in error_fields(error.get("details")), error
    if case.allow is not None:
        assert resp.headers.get("Allow") == case.allow, dict(resp.headers)
    # Nothing reached Slack and nothing was stored.
    assert len(fake_slack.calls) == upstream_calls, [c.path for c in fake_slack.calls[upstream_calls:]]
    assert await snapshot(db) == before


async def test_validation_details_list_every_problem(hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    """Several problems at once: each is listed with its field and what is wrong."""
    resp = await hub_app.post(
        f"{SLACK}/message", json={"text": 7, "thread_ts": "yesterday", "colour": "red"}, headers=alice
    )
    error = await read_error(resp, 400)
    assert error["code"] == "validation_error"
    details = error["details"]["problems"]
    assert error["details"]["field"] == details[0]["field"]
    assert all(set(d) == {"field", "problem"} and d["problem"] for d in details), details
    by_field = {d["field"]: d["problem"] for d in details}
    assert by_field["channel"] == "is required"
    assert by_field["colour"] == "is not a known field"
    assert "string" in by_field["text"]
    assert "thread_ts" in by_field
    assert not fake_slack.calls_to("/api/chat.postMessage")[1:]  # only the fixture's message


# --- the callback --------------------------------------------------------------------------


async def test_replayed_state_is_refused(hub_app: Any, fake_slack: Any):
    db, h = hub_app.db, auth("alice")
    path = await start_connect(hub_app, h)
    first = await hub_app.get(path, headers=JSON_ACCEPT)
    assert first.status == 200, await first.text()
    before, exchanges = await snapshot(db), len(fake_slack.calls_to("/api/oauth.v2.access"))

    resp = await hub_app.get(path, headers=JSON_ACCEPT)
    error = await read_error(resp, 400)
    assert error["code"] == "state_replayed"
    assert "already used" in error["message"]
    assert error["details"]["field"] == "state"
    assert len(fake_slack.calls_to("/api/oauth.v2.access")) == exchanges  # the code was not tried again
    assert await snapshot(db) == before

    # The browser (no JSON Accept) gets a page with the same status, not the envelope.
    page = await hub_app.get(path)
    assert page.status == 400
    assert page.content_type == "text/html"
    text = await page.text()
    assert "already used" in text and '"success"' not in text
    assert await snapshot(db) == before


async def test_expired_state_is_refused(hub_app: Any, fake_slack: Any):
    db = hub_app.db
    path = await start_connect(hub_app, auth("alice"))
    await db.set_states(expires_at=utcnow() - timedelta(minutes=1))
    before = await snapshot(db)

    resp = await hub_app.get(path, headers=JSON_ACCEPT)
    error = await read_error(resp, 400)
    assert error["code"] == "state_expired"
    assert "expired" in error["message"] and "connect" in error["message"]
    assert not fake_slack.calls_to("/api/oauth.v2.access")
    assert await snapshot(db) == before
    assert await db.count(Integration) == 0

    page = await hub_app.get(path)
    assert page.status == 400 and page.content_type == "text/html"
    assert "expired" in await page.text()


async def test_unknown_state_is_refused(hub_app: Any, fake_slack: Any):
    db = hub_app.db
    await start_connect(hub_app, auth("alice"))  # a genuine state exists, just not this one
    before = await snapshot(db)
    for query in ("state=forged-by-someone&code=123.456.abc", "code=123.456.abc"):
        resp = await hub_app.get(f"{SLACK}/callback?{query}", headers=JSON_ACCEPT)
        error = await read_error(resp, 400)
        assert error["code"] == "invalid_state", query
        assert "state" in error["message"], query
    assert not fake_slack.calls_to("/api/oauth.v2.access")
    assert await snapshot(db) == before
    assert await db.count(Integration) == 0


async def test_state_issued_for_another_provider_is_refused(hub_app: Any, fake_slack: Any):
    db = hub_app.db
    path = await start_connect(hub_app, auth("alice"))
    await db.set_states(provider="other")
    before = await snapshot(db)

    resp = await hub_app.get(path, headers=JSON_ACCEPT)
    error = await read_error(resp, 400)
    assert error["code"] == "invalid_state"
    assert "issued for other" in error["message"]
    assert not fake_slack.calls_to("/api/oauth.v2.access")
    assert await snapshot(db) == before
    assert await db.count(Integration) == 0


async def test_denied_consent_connects_nothing(hub_app: Any, fake_slack: Any):
    db = hub_app.db
    path = await start_connect(hub_app, auth("alice"), decision="deny")
    assert "error=access_denied" in path
    logs_before = (await snapshot(db))["log_rows"]

    resp = await hub_app.get(path, headers=JSON_ACCEPT)
    error = await read_error(resp, 400)
    assert error["code"] == "access_denied"
    assert "declined" in error["message"]
    assert not fake_slack.calls_to("/api/oauth.v2.access")
    after = await snapshot(db)
    assert after["integrations"] == [] and after["log_rows"] == logs_before
    assert all(state[-1] is not None for state in after["oauth_states"])  # the state is spent

    # The same refusal as a browser sees it: an HTML page with the same status.
    path = await start_connect(hub_app, auth("alice"), decision="deny")
    page = await hub_app.get(path)
    assert page.status == 400 and page.content_type == "text/html"
    assert "declined" in await page.text()
    assert await db.count(Integration) == 0
    resp = await hub_app.get(SLACK, headers=auth("alice"))
    assert (await read_error(resp, 404))["code"] == "integration_not_found"


# --- lifecycle ------------------------------------------------------------------------------


async def test_action_on_inactive_integration_is_a_conflict(hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    db = hub_app.db
    resp = await hub_app.patch(f"{SLACK}/status", json={"status": "INACTIVE"}, headers=alice)
    assert resp.status == 200, await resp.text()
    before, upstream_calls = await snapshot(db), len(fake_slack.calls)

    for method, path, kwargs in (
        ("POST", f"{SLACK}/message", {"json": {"channel": "general", "text": "x"}}),
        ("GET", f"{SLACK}/channels", {}),
        ("GET", f"{SLACK}/users/U0000000001", {}),
        ("POST", f"{SLACK}/refresh", {}),
    ):
        resp = await hub_app.request(method, path, headers=alice, **kwargs)
        error = await read_error(resp, 409)
        assert error["code"] == "invalid_state", (path, error)
        assert "INACTIVE" in error["message"], (path, error)
        assert "PATCH" in error["message"] and "connect" in error["message"], (path, error)  # what to do about it
        assert error["details"]["status"] == "INACTIVE"

    assert len(fake_slack.calls) == upstream_calls
    assert await snapshot(db) == before


# --- bugs found while writing the above --------------------------------------------------


async def test_since_out_of_range_is_bad_input(hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    before = await snapshot(hub_app.db)
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        resp = await hub_app.get(f"{SLACK}/logs", params={"since": since}, headers=alice)
        error = await read_error(resp, 400)
        assert error["details"]["field"] == "since"
    assert await snapshot(hub_app.db) == before


async def test_cursor_with_huge_id_is_bad_input(hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    for raw in (b"id:99999999999999999999999", b"id:-99999999999999999999999"):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        resp = await hub_app.get(f"{SLACK}/logs", params={"cursor": cursor}, headers=alice)
        error = await read_error(resp, 400)
        assert error["details"]["field"] == "cursor"


async def test_deeply_nested_json_is_bad_input(hub_app: Any, fake_slack: Any, alice: dict[str, str]):
    before, upstream_calls = await snapshot(hub_app.db), len(fake_slack.calls)
    body = "[" * 100_000 + "]" * 100_000  # 200 KB: well under the size limit
    resp = await hub_app.post(f"{SLACK}/message", data=body, headers={**alice, "Content-Type": "application/json"})
    error = await read_error(resp, 400)
    assert error["details"]["field"] == "(body)"
    assert len(fake_slack.calls) == upstream_calls
    assert await snapshot(hub_app.db) == before

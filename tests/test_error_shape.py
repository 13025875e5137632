"""Every error, whatever raised it (the hub, aiohttp's router, the provider), reaches the
client in one shape: ``{"success": false, "error": {"code", "message"[, "details"]}}``,
as JSON, with a request id, and without a stack trace or a secret in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import pytest
from helpers import connect_slack
from support import JWT_SECRET, auth

from hub.infra.auth import issue_token

SLACK = "/api/integrations/slack"
CLIENT_SECRET = "slack-secret-value-123"
MESSAGE = {"channel": "general", "text": "hello"}

Prepare = Callable[[Any, Any, dict[str, str]], Awaitable[None]]


async def nothing(client: Any, fake: Any, headers: dict[str, str]) -> None:
    return None


async def deactivate(client: Any, fake: Any, headers: dict[str, str]) -> None:
    resp = await client.patch(f"{SLACK}/status", json={"status": "INACTIVE"}, headers=headers)
    assert resp.status == 200, await resp.text()


def fault(switch: str, *args: Any, **kwargs: Any) -> Prepare:
    async def prepare(client: Any, fake: Any, headers: dict[str, str]) -> None:
        getattr(fake, switch)(*args, **kwargs)

    return prepare


async def revoke_everything(client: Any, fake: Any, headers: dict[str, str]) -> None:
    fake.revoke_all()


@dataclass
class Case:
    status: int
    code: str
    method: str
    path: str
    kwargs: dict[str, Any] = dc_field(default_factory=dict)
    user: str | None = "alice"  # None: no Authorization header
    prepare: Prepare = nothing
    header: tuple[str, str] | None = None  # a response header that must be present (name, value or "")


CASES: dict[str, Case] = {
    "401-no-jwt": Case(401, "unauthorized", "GET", "/api/integrations", user=None),
    "401-no-jwt-on-action": Case(401, "unauthorized", "POST", f"{SLACK}/message", {"json": MESSAGE}, user=None),
    "401-forged-jwt": Case(401, "unauthorized", "DELETE", SLACK,
                           {"headers": {"Authorization": "Bearer " + issue_token("wrong-" + "z" * 40, "alice")}}, user=None),
    "401-expired-jwt": Case(401, "token_expired", "GET", f"{SLACK}/logs",
                            {"headers": {"Authorization": "Bearer " + issue_token(JWT_SECRET, "alice", ttl_seconds=-600)}},
                            user=None),
    "404-no-such-route": Case(404, "not_found", "GET", "/api/nothing-here"),
    "404-unknown-provider": Case(404, "unknown_provider", "GET", "/api/integrations/dropbox"),
    "404-unknown-action": Case(404, "unknown_action", "POST", f"{SLACK}/reactions", {"json": {}}),
    "404-no-integration": Case(404, "integration_not_found", "GET", f"{SLACK}/stats", user="bob"),
    "404-from-slack": Case(404, "provider_not_found", "POST", f"{SLACK}/message", {"json": MESSAGE},
                           prepare=fault("slack_error_next", "chat.postMessage", "channel_not_found")),
    "405-action": Case(405, "method_not_allowed", "PATCH", f"{SLACK}/channels", header=("Allow", "GET")),
    "405-core-route": Case(405, "method_not_allowed", "POST", f"{SLACK}/connect", header=("Allow", "GET")),
    "405-router": Case(405, "method_not_allowed", "POST", "/healthz", header=("Allow", "")),
    "400-malformed-json": Case(400, "malformed_json", "POST", f"{SLACK}/message",
                               {"data": "{oops", "headers": {"Content-Type": "application/json"}}),
    "400-validation": Case(400, "validation_error", "POST", f"{SLACK}/message", {"json": {"text": "no channel"}}),
    "400-query": Case(400, "validation_error", "GET", f"{SLACK}/logs", {"params": {"limit": "lots"}}),
    "400-callback-state": Case(400, "invalid_state", "GET", f"{SLACK}/callback",
                               {"params": {"state": "made-up", "code": "1.2.3"}, "headers": {"Accept": "application/json"}},
                               user=None),
    "400-from-slack": Case(400, "provider_rejected_input", "POST", f"{SLACK}/message", {"json": MESSAGE},
                           prepare=fault("slack_error_next", "chat.postMessage", "msg_too_long")),
    "409-inactive": Case(409, "invalid_state", "POST", f"{SLACK}/message", {"json": MESSAGE}, prepare=deactivate),
    "409-revoked-upstream": Case(409, "reconnect_required", "POST", f"{SLACK}/message", {"json": MESSAGE},
                                 prepare=revoke_everything),
    "409-no-refresh-token": Case(409, "no_refresh_token", "POST", f"{SLACK}/refresh"),
    "413-body": Case(413, "payload_too_large", "POST", f"{SLACK}/message",
                     {"json": {"channel": "general", "text": "y" * (1024 * 1024 + 100)}}),
    "429-rate-limited": Case(429, "rate_limited", "POST", f"{SLACK}/message", {"json": MESSAGE},
                             prepare=fault("rate_limit_next", retry_after=7, path="/api/chat.postMessage"), header=("Retry-After", "7")),
    "502-slack-error": Case(502, "provider_error", "POST", f"{SLACK}/message", {"json": MESSAGE},
                            prepare=fault("slack_error_next", "chat.postMessage", "internal_error")),
    "502-slack-http-500": Case(502, "provider_unavailable", "POST", f"{SLACK}/message", {"json": MESSAGE},
                               prepare=fault("fail_next", 500, path="/api/chat.postMessage")),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_every_error_has_the_one_shape(name: str, hub_app: Any, fake_slack: Any):
    case = CASES[name]
    alice = auth("alice")
    await connect_slack(hub_app, alice)
    await case.prepare(hub_app, fake_slack, alice)
    kwargs = dict(case.kwargs)
    caller = auth(case.user) if case.user else {}
    kwargs["headers"] = {**caller, **kwargs.get("headers", {})}

    resp = await hub_app.request(case.method, case.path, **kwargs)
    text = await resp.text()

    assert resp.status == case.status, text
    assert resp.content_type == "application/json", (resp.content_type, text)
    assert resp.headers.get("X-Request-Id"), dict(resp.headers)
    body = await resp.json()
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"] == case.code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    if case.header is not None:
        name_, value = case.header
        assert name_ in resp.headers, dict(resp.headers)
        if value:
            assert resp.headers[name_] == value, dict(resp.headers)

    secrets = [*fake_slack.issued, CLIENT_SECRET, JWT_SECRET]
    secrets += [v.removeprefix("Bearer ") for v in (caller.get("Authorization"), kwargs["headers"].get("Authorization")) if v]
    assert fake_slack.issued  # the connect flow issued a code and a token to look for
    for secret in secrets:
        assert secret not in text, f"a secret leaked into the {case.status} body"
    for trace in ("Traceback", 'File "', ".py\", line"):
        assert trace not in text, text


async def test_provider_errors_carry_the_providers_code(hub_app: Any, fake_slack: Any):
    h = auth("alice")
    await connect_slack(hub_app, h)
    fake_slack.slack_error_next("chat.postMessage", "internal_error")
    resp = await hub_app.post(f"{SLACK}/message", json=MESSAGE, headers=h)
    error = (await resp.json())["error"]
    assert resp.status == 502
    assert error["details"]["providerError"] == "internal_error"
    assert "internal_error" in error["message"]


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(hub_app: Any, fake_slack: Any):
    resp = await hub_app.get("/api/integrations", headers={"X-Request-Id": "req-2026-abc"})
    assert resp.status == 401
    assert resp.headers["X-Request-Id"] == "req-2026-abc"
    for bad in ("has spaces in it", "x" * 65, "<script>"):
        resp = await hub_app.get("/api/integrations", headers={"X-Request-Id": bad})
        rid = resp.headers["X-Request-Id"]
        assert rid and rid != bad and rid.isalnum(), rid
    # Successes carry one too, and two requests never share one.
    a = await hub_app.get("/healthz")
    b = await hub_app.get("/healthz")
    assert a.headers["X-Request-Id"] != b.headers["X-Request-Id"]


async def test_html_callback_error_page_hides_secrets(hub_app: Any, fake_slack: Any):
    """The browser-facing callback answers errors as a page, with the same hygiene."""
    await connect_slack(hub_app, auth("alice"))
    resp = await hub_app.get(f"{SLACK}/callback", params={"state": "made-up", "code": "1.2.3"})
    text = await resp.text()
    assert resp.status == 400 and resp.content_type == "text/html"
    assert resp.headers.get("X-Request-Id")
    for secret in (*fake_slack.issued, CLIENT_SECRET, JWT_SECRET, "Traceback"):
        assert secret not in text

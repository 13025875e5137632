"""Issue 13, item 6: redaction by declaration.

The core masks what the OAuth machinery knows is secret and what a provider declares; a
provider's ordinary fields named ``state``, ``code`` or ``key`` stay readable in its
activity rows. Slack's and Google's token shapes, now declared by their plugins, are still
masked in rows and in the server log.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from helpers import callback_path, connect_slack, consent, query_of
from support import Rows, auth, build_hub, make_registry

from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl
from hub.activity.recorder import OAUTH_ROWS, Recorder
from hub.infra.serverlog import make_handler
from hub.redact import MASK, Redaction, redact
from hub.web import create_app

ISSUE = {"state": "open", "code": "E12", "key": "PROJ-1", "title": "Fix it"}


class FakeTracker:
    """A provider whose token endpoint grants anything and whose API answers ``answer``."""

    def __init__(self) -> None:
        self.answer: Any = ISSUE
        self.app = web.Application()
        self.app.router.add_post("/oauth/token", self.token)
        self.app.router.add_post("/api/issues", self.issue)

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "tracker-access-token-1", "token_type": "Bearer"})

    async def issue(self, request: web.Request) -> web.Response:
        return web.json_response(self.answer)


async def create_issue(ctx: CallContext) -> Any:
    return (await ctx.http.post("issues", json=ctx.input)).json()


class Tracker:
    def __init__(self, base: str, **info: Any) -> None:
        self.base, self.info = base, info

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        endpoints = Endpoints(api=f"{self.base}/api", authorize=f"{self.base}/oauth/authorize", token=f"{self.base}/oauth/token")
        return ProviderInfo(name="tracker", title="Tracker", endpoints=endpoints, **self.info)

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("create_issue", "POST", "issues", create_issue)]


@pytest.fixture
async def tracker(make_config: Any, aiohttp_client: Any, aiohttp_server: Any) -> Any:
    fake = FakeTracker()
    server = await aiohttp_server(fake.app)
    base = str(server.make_url("")).rstrip("/")

    async def start(**info: Any) -> Any:
        registry = make_registry(tracker=Tracker(base, **info))
        assert registry.failures == []
        section = {"client_id": "tracker-client", "client_secret": "tracker-secret-value"}
        running = build_hub(make_config(providers={"tracker": section}), registry)
        client = await aiohttp_client(create_app(running))
        running.config.server.public_url = str(client.make_url("")).rstrip("/")
        client.hub, client.db, client.fake = running, Rows(running), fake
        resp = await client.get("/api/integrations/tracker/connect", headers=auth())
        state = query_of((await resp.json())["data"]["authUrl"])["state"]
        resp = await client.get("/api/integrations/tracker/callback", params={"code": "c0de-from-the-browser", "state": state},
                                headers={"Accept": "application/json"})
        assert resp.status == 200, await resp.text()
        return client

    return start


async def run_issue(client: Any, payload: dict[str, Any]) -> tuple[Any, Any]:
    resp = await client.post("/api/integrations/tracker/issues", json=payload, headers=auth())
    assert resp.status == 200, await resp.text()
    (row,) = await client.db.activity(action="create_issue")
    return row.request_data, row.response_data


async def test_ordinary_fields_named_state_code_or_key_stay_in_an_action_row(tracker) -> None:
    client = await tracker()
    request, response = await run_issue(client, {"state": "open", "code": "E12", "key": "PROJ-1"})
    assert response == ISSUE
    assert request == {"state": "open", "code": "E12", "key": "PROJ-1"}


async def test_credential_names_and_urls_are_still_masked_in_an_action_row(tracker) -> None:
    client = await tracker()
    client.fake.answer = {
        "access_token": "handed-back-by-the-api",
        "client_secret": "handed-back-too",
        "next": "https://tracker.test/cb?code=a-callback-code&state=a-callback-state",
    }
    _, response = await run_issue(client, {"title": "x"})
    assert response == {"access_token": MASK, "client_secret": MASK, "next": f"https://tracker.test/cb?code={MASK}&state={MASK}"}


async def test_a_declared_secret_key_and_token_shape_are_masked(tracker) -> None:
    client = await tracker(secret_keys=("session",), safe_keys=("pageToken",), token_shapes=(r"trk_[a-z0-9]{12,}",))
    client.fake.answer = {"session": "s3ssion-value", "note": "pass trk_abcdef1234567 on", "pageToken": "p-2", "nextToken": "t-2"}
    request, response = await run_issue(client, {"Session": "in-the-input", "state": "open"})
    assert response == {"session": MASK, "note": f"pass {MASK} on", "pageToken": "p-2", "nextToken": MASK}
    assert request == {"Session": MASK, "state": "open"}
    # declared shapes reach the server log too
    out = io.StringIO()
    handler, _ = make_handler(out)
    logger = logging.getLogger("hub.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("the plugin saw trk_abcdef1234567")
    finally:
        logger.removeHandler(handler)
    assert "trk_abcdef1234567" not in out.getvalue() and MASK in out.getvalue()


def test_a_bad_declared_shape_refuses_the_declaration() -> None:
    with pytest.raises(ValueError, match="token_shapes"):
        ProviderInfo(name="x", title="X", endpoints=Endpoints(api="https://x.test"), token_shapes=("trk_(",))


def test_oauth_rows_mask_the_oauth_names_and_provider_rows_do_not() -> None:
    recorder = Recorder(None, max_payload_bytes=1000, secrets=list, redaction=lambda provider: Redaction.declared(safe_keys=("code",)))  # type: ignore[arg-type]
    data = {"code": "c-123", "state": "s-123", "key": "k-123"}
    for action in OAUTH_ROWS:
        # the OAuth machinery's names win over a provider's safe keys in its own rows
        assert redact(data, policy=recorder.policy("tracker", action)) == {"code": MASK, "state": MASK, "key": MASK}
    assert redact(data, policy=recorder.policy("tracker", "create_issue")) == data
    assert redact(data) == {"code": MASK, "state": MASK, "key": MASK}  # naming no policy: the strict one


async def test_slack_tokens_are_still_masked_in_rows_and_logs(slack_connected) -> None:
    client = slack_connected
    shaped = ["xoxb-1234567890-lookslikeatoken", "xoxe-1-abcdefghijklmnop"]
    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": " and ".join(shaped)}, headers=auth())
    assert resp.status == 200, await resp.text()
    (row,) = await client.db.activity(action="post_message")
    stored = json.dumps([row.request_data, row.response_data])
    assert MASK in json.dumps(row.response_data) and all(s not in stored for s in shaped)
    assert_masked_in_log(shaped)


async def test_google_tokens_are_still_masked_in_rows_and_logs(google_app) -> None:
    client = google_app
    resp = await client.get("/api/integrations/google_calendar/connect", headers=auth())
    location = await consent((await resp.json())["data"]["authUrl"])
    assert (await client.get(callback_path(location), headers={"Accept": "application/json"})).status == 200
    shaped = ["ya29.a0AfH6SMBlookslikeatoken", "1//0gLooksLikeARefreshToken"]
    event = {"summary": " ".join(shaped), "start": {"dateTime": "2027-01-04T10:00:00Z"}, "end": {"dateTime": "2027-01-04T11:00:00Z"}}
    resp = await client.post("/api/integrations/google_calendar/events", json=event, headers=auth())
    assert resp.status == 200, await resp.text()
    (row,) = await client.db.activity(action="create_event")
    stored = json.dumps([row.request_data, row.response_data])
    assert MASK in stored and all(s not in stored for s in shaped)
    assert_masked_in_log(shaped)


async def test_slack_connects_with_the_core_token_request(hub_app, fake_slack) -> None:
    """Slack's token call now goes through hub.token_request: its 200 ok:false errors keep
    their meaning (a spent code is a refused grant naming Slack's code)."""
    body = await connect_slack(hub_app, auth())
    assert body["data"]["status"] == "ACTIVE"
    resp = await hub_app.get("/api/integrations/slack/connect", headers=auth("bob"))
    location = await consent((await resp.json())["data"]["authUrl"])
    fake_slack.slack_error_next("oauth.v2.access", "invalid_code")
    resp = await hub_app.get(callback_path(location), headers={"Accept": "application/json"})
    answer = await resp.json()
    assert resp.status == 502 and answer["error"]["code"] == "reconnect_required", answer
    assert answer["error"]["details"]["providerError"] == "invalid_code"
    assert "Slack refused the grant: invalid_code" in answer["error"]["message"]


def assert_masked_in_log(shaped: list[str]) -> None:
    out = io.StringIO()
    handler, _ = make_handler(out)
    logger = logging.getLogger("hub.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("seen: %s", " ".join(shaped))
    finally:
        logger.removeHandler(handler)
    assert MASK in out.getvalue() and all(s not in out.getvalue() for s in shaped)


# --- the core shapes are looked for only where they can be ---------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnop",
        "BEARER   ABCDEFGHIJKLMNOP=",
        "a JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.signature inside",
        'OAuth oauth_token="abc", oauth_verifier="x"',
        "bEaReR 0123456789abcdef and eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.",
    ],
)
def test_core_shapes_are_masked_whatever_their_case(text: str) -> None:
    # _mask_string runs the core expression only on a string holding one of its marks
    # (compared lower-cased); a case the check missed would let the credential through.
    from hub.redact import redact_text

    masked = redact_text(text)
    assert MASK in masked
    for secret in ("abcdefghijklmnop", "ABCDEFGHIJKLMNOP", "signature", "abc", "0123456789abcdef", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in masked.replace(MASK, "")


def test_every_kind_of_value_is_walked_as_before() -> None:
    """The walk tells JSON's own types apart by exact type first; other mappings, tuples,
    subclasses of str and depth past the bound must still be handled as they always were."""
    from collections import OrderedDict
    from types import MappingProxyType

    from hub.redact import MAX_DEPTH, TOO_DEEP

    class Text(str):
        pass

    secret = "s3cr3t-value-123"
    value = {
        "plain": [1, 2.5, True, None, f"x {secret} y"],
        "proxy": MappingProxyType({"access_token": "abc", "n": 1}),
        "ordered": OrderedDict(password="pw", keep=(secret, 7)),
        "text": Text(f"in a str subclass: {secret}"),
        "other": {1, 2},
    }
    got = redact(value, [secret])
    assert got == {
        "plain": [1, 2.5, True, None, f"x {MASK} y"],
        "proxy": {"access_token": MASK, "n": 1},
        "ordered": {"password": MASK, "keep": [MASK, 7]},
        "text": f"in a str subclass: {MASK}",
        "other": {1, 2},
    }
    deep: Any = "bottom"
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    walked = redact(deep)
    for _ in range(MAX_DEPTH):
        walked = walked["d"]
    assert walked == TOO_DEEP

"""Issue 13, item 5: the core's OAuth helpers fit real providers' token endpoints.

A small provider, ``acme``, declares how its token endpoint speaks (``ProviderInfo``
fields) and leaves every token hook to the core; its upstream is a little aiohttp server
on loopback that answers in the style the test picks: JSON or form-encoded (GitHub without
``Accept: application/json``), client credentials in the form or by HTTP Basic, errors as
a 4xx or inside an HTTP 200. The standard error mapping (``hub.raise_for_status`` with its
options, ``hub.provider_error``) and the declared rate-limit headers are checked directly.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp import web
from helpers import query_of
from support import Rows, auth, build_hub, make_registry

import hub
from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl
from hub.upstream import UpstreamResponse
from hub.web import create_app


class FakeAcme:
    """Acme's token endpoint and one API call, in the style a test sets."""

    def __init__(self) -> None:
        self.form_answers = False  # answer form-encoded unless asked for JSON
        self.error: str | None = None  # the next token answer is this error...
        self.error_status = 200  # ... carried in an answer of this status
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/oauth/token", self.token)
        self.app.router.add_get("/api/me", self.me)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"form": form, "headers": dict(request.headers)})
        if self.error:
            answer: dict[str, str] = {"error": self.error, "error_description": "refused by the test"}
            self.error = None
            return web.json_response(answer, status=self.error_status)
        answer = {"access_token": f"acme-at-{len(self.requests)}", "refresh_token": "acme-rt", "scope": "repo,gist", "token_type": "bearer"}
        if self.form_answers and request.headers.get("Accept") != "application/json":
            return web.Response(text=urlencode(answer), content_type="application/x-www-form-urlencoded")
        return web.json_response({**answer, "expires_in": 3600, "session_key": "kept-out-of-raw", "team": "t1"})

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response({"id": 7})


async def whoami(ctx: CallContext) -> Any:
    return (await ctx.http.get("me")).json()


class Acme:
    def __init__(self, base: str, **info: Any) -> None:
        self.base = base
        self.info = info

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        endpoints = Endpoints(api=f"{self.base}/api", authorize=f"{self.base}/oauth/authorize", token=f"{self.base}/oauth/token")
        return ProviderInfo(name="acme", title="Acme", endpoints=endpoints, default_scopes=("repo", "gist"), **self.info)

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("whoami", "GET", "me", whoami)]


@pytest.fixture
async def fake_acme(aiohttp_server: Any) -> FakeAcme:
    fake = FakeAcme()
    fake.server = await aiohttp_server(fake.app)
    fake.base = str(fake.server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def start(make_config: Any, aiohttp_client: Any, fake_acme: FakeAcme) -> Any:
    async def start(**info: Any) -> Any:
        registry = make_registry(acme=Acme(fake_acme.base, **info))
        assert registry.failures == []
        section = {"client_id": "acme-client", "client_secret": "acme-secret-value"}
        running = build_hub(make_config(providers={"acme": section}), registry)
        client = await aiohttp_client(create_app(running))
        running.config.server.public_url = str(client.make_url("")).rstrip("/")
        client.hub, client.db = running, Rows(running)
        return client

    return start


async def connect(client: Any, code: str = "the-code") -> tuple[str, int, dict[str, Any]]:
    resp = await client.get("/api/integrations/acme/connect", headers=auth())
    auth_url = (await resp.json())["data"]["authUrl"]
    resp = await client.get(
        "/api/integrations/acme/callback", params={"code": code, "state": query_of(auth_url)["state"]}, headers={"Accept": "application/json"}
    )
    return auth_url, resp.status, await resp.json()


async def test_a_form_encoded_token_answer_is_read(start, fake_acme) -> None:
    fake_acme.form_answers = True
    client = await start(scope_separator=",")
    auth_url, status, body = await connect(client)
    assert status == 200, body
    assert query_of(auth_url)["scope"] == "repo,gist"
    token = await client.db.token("alice", "acme")
    assert (token.access_token, token.refresh_token, token.scopes) == ("acme-at-1", "acme-rt", ("repo", "gist"))
    assert "Accept" not in fake_acme.requests[0]["headers"] or fake_acme.requests[0]["headers"]["Accept"] != "application/json"


async def test_the_declared_accept_header_is_sent(start, fake_acme) -> None:
    fake_acme.form_answers = True
    client = await start(token_accept="application/json", secret_keys=("session_key",))
    _, status, body = await connect(client)
    assert status == 200, body
    assert fake_acme.requests[0]["headers"]["Accept"] == "application/json"
    token = await client.db.token("alice", "acme")
    assert token.expires_at is not None  # only the JSON answer carries expires_in
    # a declared secret key never reaches the raw answer kept in clear
    assert token.raw.get("team") == "t1" and "session_key" not in token.raw
    assert "kept-out-of-raw" not in str((await client.db.integration("alice", "acme")).meta)


async def test_client_credentials_go_where_declared(start, fake_acme) -> None:
    client = await start(client_auth="form")
    _, status, body = await connect(client)
    assert status == 200, body
    sent = fake_acme.requests[0]
    assert sent["form"]["client_id"] == "acme-client" and sent["form"]["client_secret"] == "acme-secret-value"
    assert "Authorization" not in sent["headers"]
    # the refresh through the core's default goes the same way
    resp = await client.post("/api/integrations/acme/refresh", headers=auth())
    assert resp.status == 200, await resp.text()
    assert fake_acme.requests[1]["form"]["grant_type"] == "refresh_token"
    assert fake_acme.requests[1]["form"]["client_secret"] == "acme-secret-value"
    # the default stays HTTP Basic
    other = await start()
    await connect(other)
    assert fake_acme.requests[-1]["headers"]["Authorization"].startswith("Basic ")
    assert "client_secret" not in fake_acme.requests[-1]["form"]


async def test_an_error_in_a_200_answer_is_a_refused_code_with_its_provider_code(start, fake_acme) -> None:
    client = await start(token_errors_in_body=True)
    fake_acme.error = "bad_verification_code"
    _, status, body = await connect(client)
    assert status == 502, body
    assert body["error"]["code"] == "reconnect_required"
    assert body["error"]["details"]["providerError"] == "bad_verification_code"
    assert await client.db.integration("alice", "acme") is None


async def test_an_error_in_a_200_answer_to_a_refresh_moves_to_error(start, fake_acme) -> None:
    client = await start(token_errors_in_body=True)
    _, status, _ = await connect(client)
    assert status == 200
    fake_acme.error = "invalid_grant"
    resp = await client.post("/api/integrations/acme/refresh", headers=auth())
    body = await resp.json()
    assert resp.status == 409 and body["error"]["code"] == "reconnect_required", body
    assert body["error"]["details"]["providerError"] == "invalid_grant"
    assert (await client.db.integration("alice", "acme")).status == "ERROR"


async def test_a_refused_code_at_a_first_connect_names_the_provider_error(start, fake_acme) -> None:
    client = await start()
    fake_acme.error, fake_acme.error_status = "invalid_grant", 400
    _, status, body = await connect(client)
    assert status == 502 and body["error"]["code"] == "reconnect_required", body
    assert body["error"]["details"]["providerError"] == "invalid_grant"


async def test_declared_authorize_params_join_the_default_url(start) -> None:
    client = await start(authorize_params={"access_type": "offline", "state": "not-this-one"})
    resp = await client.get("/api/integrations/acme/connect", headers=auth())
    query = query_of((await resp.json())["data"]["authUrl"])
    assert query["access_type"] == "offline"
    assert query["state"] != "not-this-one"  # never replaces what the flow depends on
    assert query["code_challenge_method"] == "S256"


async def test_google_declares_its_authorize_extras(google_app) -> None:
    resp = await google_app.get("/api/integrations/google_calendar/connect", headers=auth())
    url = (await resp.json())["data"]["authUrl"]
    query = query_of(url)
    assert urlsplit(url).path.endswith("/o/oauth2/v2/auth")
    assert (query["access_type"], query["prompt"], query["include_granted_scopes"]) == ("offline", "consent", "true")
    assert query["code_challenge_method"] == "S256" and query["response_type"] == "code"
    assert " " in query["scope"]
    from hub_google_calendar import INFO

    assert "hub_authorization_url" not in vars(__import__("hub_google_calendar"))
    assert INFO.authorize_params["access_type"] == "offline"


def test_parse_token_response_scope_separator_and_declared_secret_keys() -> None:
    info = ProviderInfo(name="acme", title="Acme", endpoints=Endpoints(api="https://acme.test"), secret_keys=("session_key",))
    provider = hub.Provider("acme", info, info.endpoints, (), {}, None)  # type: ignore[arg-type]
    body = {"access_token": "a", "scope": "read:org, repo", "session_key": "s", "Session_Key": "t", "team": "x"}
    assert hub.parse_token_response(provider, body).scopes == ("read:org", "repo")
    assert hub.parse_token_response(provider, body, scope_separator=",").scopes == ("read:org", "repo")
    assert hub.parse_token_response(provider, {"access_token": "a", "scope": "a b"}, scope_separator=",").scopes == ("a b",)
    assert hub.parse_token_response(provider, body).raw == {"scope": "read:org, repo", "team": "x"}


# --- the standard error mapping ---------------------------------------------------------


def answer(status: int, body: bytes = b"", **headers: str) -> UpstreamResponse:
    from multidict import CIMultiDict, CIMultiDictProxy

    return UpstreamResponse("Acme", "GET", "https://acme.test/x", status, CIMultiDictProxy(CIMultiDict(headers)), body)


@pytest.mark.parametrize(
    ("kind", "cls", "status", "code"),
    [
        ("auth", hub.ProviderAuthError, 502, "provider_auth_failed"),
        ("expired", hub.TokenExpired, 502, "token_expired"),
        ("grant", hub.GrantRejected, 502, "reconnect_required"),
        ("rate_limited", hub.RateLimited, 429, "rate_limited"),
        ("not_found", hub.ProviderError, 404, "provider_not_found"),
        ("bad_input", hub.ProviderError, 400, "provider_rejected_input"),
        ("forbidden", hub.ProviderError, 403, "provider_forbidden"),
        ("conflict", hub.ProviderError, 409, "provider_conflict"),
        ("transient", hub.TransientProviderError, 502, "provider_unavailable"),
        ("error", hub.ProviderError, 502, "provider_error"),
    ],
)
def test_provider_error_builds_the_typed_error(kind, cls, status, code) -> None:
    err = hub.provider_error(kind, "Acme said no", provider_code="E1", retry_after=3)
    assert type(err) is cls and (err.status, err.code, err.provider_code, err.message) == (status, code, "E1", "Acme said no")
    if kind == "rate_limited":
        assert err.retry_after == 3


def test_raise_for_status_takes_the_providers_code_message_and_kinds() -> None:
    with pytest.raises(hub.ProviderError) as caught:
        hub.raise_for_status(answer(404, b'{"error": "gone"}'))
    assert (caught.value.status, caught.value.provider_code) == (404, "gone")
    with pytest.raises(hub.ProviderError) as caught:
        hub.raise_for_status(answer(403, b"{}"), provider_code="forbidden", message="Acme: no", kinds={403: "forbidden"})
    assert (caught.value.status, caught.value.code, caught.value.message) == (403, "provider_forbidden", "Acme: no")
    with pytest.raises(hub.ProviderError) as caught:
        hub.raise_for_status(answer(403, b"{}"))  # without kinds: today's mapping
    assert (caught.value.status, caught.value.code) == (502, "provider_error")


def test_declared_rate_limit_headers_turn_a_spent_budget_into_rate_limited() -> None:
    info = ProviderInfo(
        name="acme", title="Acme", endpoints=Endpoints(api="https://acme.test"),
        rate_limit_remaining_header="X-RateLimit-Remaining", rate_limit_reset_header="X-RateLimit-Reset",
    )
    reset = str(int(time.time()) + 30)
    with pytest.raises(hub.RateLimited) as caught:
        hub.raise_for_status(answer(403, b'{"message": "API rate limit exceeded"}', **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}), info=info)
    assert 20 <= caught.value.retry_after <= 31
    with pytest.raises(hub.ProviderError) as caught:  # budget left: an ordinary refusal
        hub.raise_for_status(answer(403, b"{}", **{"x-ratelimit-remaining": "12"}), info=info)
    assert not isinstance(caught.value, hub.RateLimited)

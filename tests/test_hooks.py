"""One test per provider hook, each through the running hub.

Every ``test_hook_<name>`` registers small provider plugins inline next to the real Slack
plugin and drives the hub over HTTP: the inline providers' upstreams are mocked with
aioresponses, Slack is served by its fake on loopback. Each test checks that

* the plugin's implementation runs, and only for its own provider: Slack keeps doing what
  Slack does, and ``plain``, a provider that declares endpoints and an action and nothing
  else, keeps the core's behaviour;
* ``plain`` shows what the core default (``hub.oauth``) does when a plugin leaves the hook
  out;
* a plain function and an ``async def`` both work (the ``mode`` parameter).

``docs/plugins.md`` documents these hooks; ``tests/test_docs.py`` checks that every hook has
a test here, and the last test runs the documentation's worked example.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import importlib.util
import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aioresponses import aioresponses
from helpers import connect_slack, query_of
from support import Rows, auth, build_hub, make_registry

import hub
from hub import (
    AccountInfo,
    Action,
    CallContext,
    ConfigField,
    Endpoints,
    GrantRejected,
    ProviderAuthError,
    ProviderError,
    ProviderInfo,
    RateLimited,
    TokenSet,
    TransientProviderError,
    hookimpl,
)
from hub.infra.config import ConfigError
from hub.registry import Registry
from hub.web import HUB_KEY, create_app

LOOPBACK = "http://127.0.0.1"  # the hub under test and the fake Slack: real HTTP, not mocked
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "example_provider.py"


# --- test plugins ----------------------------------------------------------------------


def endpoints(name: str, **changes: str | None) -> Endpoints:
    base = Endpoints(
        api=f"https://api.{name}.test/v1",
        authorize=f"https://{name}.test/oauth/authorize",
        token=f"https://{name}.test/oauth/token",
        revoke=f"https://{name}.test/oauth/revoke",
        userinfo=f"https://{name}.test/oauth/userinfo",
    )
    return Endpoints(**{**base.__dict__, **changes})


def describe(name: str, **changes: Any) -> ProviderInfo:
    fields: dict[str, Any] = {"name": name, "title": name.title(), "endpoints": endpoints(name), "default_scopes": ("read",)}
    return ProviderInfo(**{**fields, **changes})


async def whoami(ctx: CallContext) -> Any:
    return (await ctx.http.get("me")).json()


class Plain:
    """A provider that only says who it is and what it offers: every other hook is the
    core's. Subclasses override one hook and record each call in ``calls``."""

    def __init__(self, name: str, **changes: Any) -> None:
        self.name = name
        self.changes = changes
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return describe(self.name, **self.changes)

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("whoami", "GET", "me", whoami, summary="The connected account")]


def implement(mode: str) -> Callable[[Callable[..., Any]], Any]:
    """``@hookimpl`` in the test's flavour: ``sync`` keeps the function as written; ``async``
    makes it an ``async def`` with the same signature that yields to the loop first."""

    def mark(fn: Callable[..., Any]) -> Any:
        if mode == "sync":
            return hookimpl(fn)

        @functools.wraps(fn)
        async def as_coroutine(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # the behaviour under test: a hook that really yields to the loop
            return fn(*args, **kwargs)

        return hookimpl(as_coroutine)

    return mark


def assert_flavour(method: Any, mode: str) -> None:
    assert inspect.iscoroutinefunction(method) is (mode == "async")


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# --- upstream mocks ----------------------------------------------------------------------


class _MockedResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.x builds responses without the ``stream_writer`` argument that
    # aiohttp 3.14 requires (pnuckowski/aioresponses#289); a mocked response has already
    # been sent, so all aiohttp reads from it is the output size.
    def __init__(self, method: str, url: Any, **kw: Any) -> None:
        kw.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kw)


class MockedUpstream(aioresponses):
    def add(self, url: Any, method: str = "GET", **kw: Any) -> None:  # type: ignore[override]
        kw["response_class"] = kw.get("response_class") or _MockedResponse
        super().add(url, method, **kw)

    def sent(self, method: str, url: str) -> list[dict[str, Any]]:
        """The keyword arguments of every request made to ``url`` (query ignored), in order."""
        return [
            call.kwargs
            for (m, u), calls in self.requests.items()
            if m == method and str(u.with_query(None)) == url
            for call in calls
        ]


@pytest.fixture
def upstream() -> Any:
    with MockedUpstream(passthrough=[LOOPBACK]) as mock:
        yield mock


def url(provider: str, which: str) -> str:
    return getattr(endpoints(provider), which)


def grant(upstream: MockedUpstream, provider: str, **body: Any) -> None:
    """The token endpoint's next answer (a success unless ``status`` says otherwise)."""
    status = body.pop("status", 200)
    upstream.post(url(provider, "token"), status=status, payload=body)


def identity(upstream: MockedUpstream, provider: str, sub: str = "u-1", **extra: Any) -> None:
    upstream.get(url(provider, "userinfo"), payload={"sub": sub, **extra}, repeat=True)


def basic(provider: str) -> str:
    pair = f"{provider}-client:{provider}-secret-value".encode()
    return "Basic " + base64.b64encode(pair).decode()


# --- the hub under test ------------------------------------------------------------------


def credentials(name: str) -> dict[str, str]:
    return {"client_id": f"{name}-client", "client_secret": f"{name}-secret-value"}


@pytest.fixture
def start(make_config: Any, aiohttp_client: Any) -> Any:
    """Start a hub with Slack plus ``plugins`` (``plain`` is always among them), each
    enabled with client credentials unless ``sections`` says otherwise."""

    async def start(plugins: dict[str, object], sections: dict[str, Any] | None = None) -> Any:
        plugins = {"plain": Plain("plain"), **plugins}
        registry = make_registry(**plugins)
        assert registry.failures == []
        providers = {name: credentials(name) for name in plugins}
        providers.update(sections or {})
        running = build_hub(make_config(providers=providers), registry)
        client = await aiohttp_client(create_app(running))
        running.config.server.public_url = str(client.make_url("")).rstrip("/")
        client.hub = running
        client.db = Rows(running)
        return client

    return start


async def connect(client: Any, provider: str, user: str = "alice", code: str = "the-code") -> tuple[str, int, dict[str, Any]]:
    """GET connect, then the browser's return to the callback carrying ``code``."""
    resp = await client.get(f"/api/integrations/{provider}/connect", headers=auth(user))
    assert resp.status == 200, await resp.text()
    auth_url = (await resp.json())["data"]["authUrl"]
    resp = await client.get(
        f"/api/integrations/{provider}/callback",
        params={"code": code, "state": query_of(auth_url)["state"]},
        headers={"Accept": "application/json"},
    )
    return auth_url, resp.status, await resp.json()


async def paste(client: Any, provider: str, token: str, user: str = "alice") -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/integrations/{provider}/tokens", json={"token": token}, headers=auth(user))
    return resp.status, await resp.json()


async def request(client: Any, method: str, path: str, user: str = "alice", **kw: Any) -> tuple[int, dict[str, Any], Any]:
    resp = await client.request(method, f"/api/integrations/{path}", headers=auth(user), **kw)
    return resp.status, await resp.json(), resp.headers


async def view(client: Any, provider: str, user: str = "alice") -> dict[str, Any] | None:
    status, body, _ = await request(client, "GET", provider, user)
    return body["data"] if status == 200 else None


async def log_rows(client: Any, provider: str, action: str) -> list[dict[str, Any]]:
    _, body, _ = await request(client, "GET", f"{provider}/logs", params={"action": action})
    return body["data"]["items"]


async def catalogue(client: Any) -> dict[str, dict[str, Any]]:
    resp = await client.get("/api/providers", headers=auth())
    return {p["name"]: p for p in (await resp.json())["data"]["providers"]}


def providers_seen(plugin: Plain) -> set[str]:
    return {call[0] for call in plugin.calls}


# --- the hooks ---------------------------------------------------------------------------


async def test_hook_hub_provider(start, make_config) -> None:
    class Described(Plain):
        @hookimpl
        def hub_provider(self) -> ProviderInfo:
            self.calls.append(("demo",))
            return describe(
                "demo",
                title="Demo Cloud",
                auth="oauth2",
                default_scopes=("read", "write"),
                config_fields=(*hub.CLIENT_CREDENTIALS, ConfigField("region", "data region", required=False, default="eu")),
            )

    plugin = Described("demo")
    client = await start({"demo": plugin}, {"demo": {**credentials("demo"), "region": "us"}})
    assert plugin.calls == [("demo",)]  # read once, when the plugin is loaded

    listed = await catalogue(client)
    assert listed["demo"]["title"] == "Demo Cloud"
    assert listed["demo"]["scopes"] == ["read", "write"]
    assert listed["demo"]["configured"] is True
    assert listed["plain"]["title"] == "Plain"
    assert listed["slack"]["title"] == "Slack" and listed["slack"]["scopes"][0] == "channels:read"

    # The declared config fields are what the plugin's hooks find in provider.settings.
    assert client.hub.providers["demo"].provider.settings == {**credentials("demo"), "region": "us"}
    # A key it does not declare is a config error that names the YAML path.
    config = make_config(providers={"demo": {**credentials("demo"), "colour": "red"}})
    with pytest.raises(ConfigError, match=r"providers\.demo\.colour: unknown key"):
        build_hub(config, make_registry(demo=Described("demo")))

    # There is no default to fall back on: without hub_provider a plugin is broken.
    registry = Registry()
    assert registry.add("nameless", object()) is None
    assert "does not implement hub_provider" in registry.failures[0].error

    # It is read at load time, outside any event loop's request: async is refused.
    class Late:
        @hookimpl
        async def hub_provider(self) -> ProviderInfo:
            return describe("late")

    registry = Registry()
    assert registry.add("late", Late()) is None
    assert "not async" in registry.failures[0].error and "late" not in registry.providers


async def test_hook_hub_actions(start, upstream) -> None:
    async def get_item(ctx: CallContext) -> Any:
        answer = (await ctx.http.get(f"items/{ctx.input['item_id']}", params={"fields": ctx.input.get("fields")})).json()
        return {"input": ctx.input, "upstream": answer}

    async def create_item(ctx: CallContext) -> Any:
        answer = (await ctx.http.post("items", json={"name": ctx.input["name"]})).json()
        ctx.update_state(lastItem=answer["id"])
        return answer

    class WithActions(Plain):
        @hookimpl
        def hub_actions(self) -> list[Action]:
            self.calls.append(("demo",))
            return [
                Action("get_item", "GET", "items/{item_id}", get_item,
                       {"type": "object", "properties": {"item_id": {"type": "string"}, "fields": {"type": "string"}}}),
                Action("create_item", "POST", "items", create_item,
                       {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}},
                        "required": ["name"], "additionalProperties": False}),
            ]

    class NoActions:
        @hookimpl
        def hub_provider(self) -> ProviderInfo:
            return describe("bare")

    plugin = WithActions("demo")
    client = await start({"demo": plugin, "bare": NoActions()})
    assert plugin.calls == [("demo",)]

    listed = await catalogue(client)
    assert [(a["name"], a["method"], a["path"]) for a in listed["demo"]["actions"]] == [
        ("get_item", "GET", "/api/integrations/demo/items/{item_id}"),
        ("create_item", "POST", "/api/integrations/demo/items"),
    ]
    assert listed["demo"]["actions"][1]["inputSchema"]["required"] == ["name"]
    assert [a["name"] for a in listed["plain"]["actions"]] == ["whoami"]
    assert [a["name"] for a in listed["slack"]["actions"]] == ["post_message", "list_channels", "get_user"]
    assert listed["bare"]["actions"] == []  # leaving hub_actions out offers nothing

    identity(upstream, "demo")
    assert (await paste(client, "demo", "demo-token"))[0] == 201
    upstream.get(f"{url('demo', 'api')}/items/42?fields=name", payload={"id": "42", "name": "Widget"})
    status, body, _ = await request(client, "GET", "demo/items/42", params={"fields": "name"})
    assert status == 200, body
    assert body["data"] == {"input": {"item_id": "42", "fields": "name"}, "upstream": {"id": "42", "name": "Widget"}}

    upstream.post(f"{url('demo', 'api')}/items", payload={"id": "43"})
    status, body, _ = await request(client, "POST", "demo/items", json={"name": "Gadget"})
    assert (status, body["data"]) == (200, {"id": "43"})
    assert "lastItem" not in (await view(client, "demo"))["account"]  # state is not account data
    stored = (await client.db.integration(provider="demo")).meta  # ctx.update_state was saved on the row
    assert stored["state"] == {"lastItem": "43"}

    status, body, _ = await request(client, "POST", "demo/items", json={"colour": "red"})
    assert status == 400 and body["error"]["code"] == "validation_error"
    assert {d["field"] for d in body["error"]["details"]["problems"]} == {"name", "colour"}
    assert (await request(client, "PUT", "demo/items", json={}))[0] == 405
    assert (await request(client, "GET", "demo/nothing-here"))[1]["error"]["code"] == "unknown_action"
    assert (await request(client, "GET", "bare/me"))[1]["error"]["code"] == "unknown_action"

    class LateActions(Plain):
        @hookimpl
        async def hub_actions(self) -> list[Action]:
            return []

    registry = Registry()
    assert registry.add("late", LateActions("late")) is None
    assert "not async" in registry.failures[0].error


@MODES
async def test_hook_hub_authorization_url(mode, start, fake_slack) -> None:
    class OwnConsentPage(Plain):
        @implement(mode)
        def hub_authorization_url(self, provider, request):
            self.calls.append((provider.name, request))
            query = {
                "app": provider.client_id,
                "state": request.state,
                "back": request.redirect_uri,
                "want": "+".join(request.scopes),
                "pkce": f"{request.code_challenge_method}:{request.code_challenge}",
            }
            return f"https://login.demo.test/consent?{urlencode(query)}"

    plugin = OwnConsentPage("demo")
    assert_flavour(plugin.hub_authorization_url, mode)
    client = await start({"demo": plugin}, {"demo": {**credentials("demo"), "scopes": ["read", "admin"]}})
    base = client.hub.config.public_url

    _, body, _ = await request(client, "GET", "demo/connect")
    auth_url = body["data"]["authUrl"]
    assert auth_url.startswith("https://login.demo.test/consent?")
    (name, req), = plugin.calls
    assert name == "demo"
    assert query_of(auth_url) == {
        "app": "demo-client",
        "state": req.state,
        "back": f"{base}/api/integrations/demo/callback",
        "want": "read+admin",
        "pkce": f"S256:{req.code_challenge}",
    }
    assert len(req.state) >= 32 and req.code_challenge

    # Left out: the core builds a standard authorization-code URL with PKCE.
    _, body, _ = await request(client, "GET", "plain/connect")
    default = body["data"]["authUrl"]
    assert default.startswith("https://plain.test/oauth/authorize?")
    params = query_of(default)
    assert {k: params[k] for k in ("response_type", "client_id", "redirect_uri", "scope", "code_challenge_method")} == {
        "response_type": "code",
        "client_id": "plain-client",
        "redirect_uri": f"{base}/api/integrations/plain/callback",
        "scope": "read",
        "code_challenge_method": "S256",
    }
    assert params["state"] and params["state"] != req.state and params["code_challenge"]

    # Slack's URL is still Slack's: comma-separated scopes, no PKCE.
    _, body, _ = await request(client, "GET", "slack/connect")
    slack = body["data"]["authUrl"]
    assert slack.startswith(f"{fake_slack.base_url}/oauth/v2/authorize?")
    assert query_of(slack)["scope"] == "channels:read,groups:read,chat:write,users:read"
    assert "code_challenge" not in query_of(slack)
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 1


@MODES
async def test_hook_hub_exchange_code(mode, start, upstream, fake_slack) -> None:
    class OwnExchange(Plain):
        @implement(mode)
        def hub_exchange_code(self, provider, code, redirect_uri, code_verifier):
            self.calls.append((provider.name, code, redirect_uri, code_verifier))
            if code == "spent":
                raise GrantRejected("Demo says the code was already used", provider_code="invalid_grant")
            return TokenSet(access_token=f"demo-{code}", refresh_token="demo-refresh", scopes=("read",), raw={"workspace": "acme"})

    plugin = OwnExchange("demo")
    assert_flavour(plugin.hub_exchange_code, mode)
    client = await start({"demo": plugin})
    base = client.hub.config.public_url
    identity(upstream, "demo", sub="d-1")
    identity(upstream, "plain", sub="p-1")

    auth_url, status, body = await connect(client, "demo", code="c-1")
    assert status == 200, body
    (name, code, redirect_uri, verifier), = plugin.calls
    assert (name, code, redirect_uri) == ("demo", "c-1", f"{base}/api/integrations/demo/callback")
    # The verifier handed to the hook is the one behind the challenge in the URL.
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query_of(auth_url)["code_challenge"] == challenge
    # The token it returned is the one the core stored and used.
    assert upstream.sent("GET", url("demo", "userinfo"))[0]["headers"]["Authorization"] == "Bearer demo-c-1"
    integration = await view(client, "demo")
    assert integration["status"] == "ACTIVE" and integration["hasRefreshToken"] is True
    assert integration["account"]["accountId"] == "d-1"

    # A typed error from the hook fails the callback and stores nothing.
    _, status, body = await connect(client, "demo", user="bob", code="spent")
    assert body["success"] is False and body["error"]["code"] == "reconnect_required"
    assert "already used" in body["error"]["message"]
    assert await view(client, "demo", user="bob") is None

    # Left out: an RFC 6749 token request with the PKCE verifier and HTTP Basic client auth.
    grant(upstream, "plain", access_token="plain-at", refresh_token="plain-rt", expires_in=3600, scope="read write")
    auth_url, status, body = await connect(client, "plain", code="c-2")
    assert status == 200, body
    (sent,) = upstream.sent("POST", url("plain", "token"))
    assert sent["headers"]["Authorization"] == basic("plain")
    assert set(sent["data"]) == {"grant_type", "code", "redirect_uri", "code_verifier"}
    assert (sent["data"]["grant_type"], sent["data"]["code"]) == ("authorization_code", "c-2")
    assert sent["data"]["redirect_uri"] == f"{base}/api/integrations/plain/callback"
    integration = await view(client, "plain")
    assert integration["scopes"] == ["read", "write"] and integration["tokenExpiresAt"] and integration["hasRefreshToken"]

    # Slack exchanges its own way (oauth.v2.access), untouched by the demo plugin.
    assert (await connect_slack(client, auth("carol")))["success"] is True
    assert fake_slack.calls_to("/api/oauth.v2.access")
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 2


@MODES
async def test_hook_hub_import_token(mode, start, upstream, fake_slack) -> None:
    class OwnImport(Plain):
        @implement(mode)
        def hub_import_token(self, provider, token):
            self.calls.append((provider.name, token))
            if not token.startswith("demo_"):
                raise hub.BadRequest("token: Demo tokens start with demo_", details={"field": "token"})
            access, _, refresh = token.partition(".")
            return TokenSet(access_token=access, refresh_token=refresh or None)

    plugin = OwnImport("demo")
    assert_flavour(plugin.hub_import_token, mode)
    client = await start({"demo": plugin})
    identity(upstream, "demo")

    status, body = await paste(client, "demo", "demo_at.demo_rt")
    assert status == 201, body
    assert plugin.calls == [("demo", "demo_at.demo_rt")]
    assert body["data"]["status"] == "ACTIVE" and body["data"]["hasRefreshToken"] is True
    # The core verified the imported token with the identity hook before storing it.
    assert upstream.sent("GET", url("demo", "userinfo"))[0]["headers"]["Authorization"] == "Bearer demo_at"

    status, body = await paste(client, "demo", "xoxb-wrong-service", user="bob")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert "start with demo_" in body["error"]["message"]
    assert await view(client, "demo", user="bob") is None

    # Left out: the pasted string is the access token, and nothing else.
    upstream.get(url("plain", "userinfo"), payload={"sub": "p-1"})
    upstream.get(url("plain", "userinfo"), status=401, payload={"error": "invalid_token"})
    status, body = await paste(client, "plain", "plain-pasted")
    assert status == 201 and body["data"]["hasRefreshToken"] is False
    assert upstream.sent("GET", url("plain", "userinfo"))[0]["headers"]["Authorization"] == "Bearer plain-pasted"
    status, body = await paste(client, "plain", "plain-revoked", user="bob")  # identity refuses it
    assert (status, body["error"]["code"]) == (400, "token_rejected")
    assert await view(client, "plain", user="bob") is None

    # Slack verifies a pasted token with its own identity call (auth.test).
    status, body = await paste(client, "slack", "xoxb-never-issued")
    assert (status, body["error"]["code"]) == (400, "token_rejected")
    assert fake_slack.calls_to("/api/auth.test")[-1].headers["Authorization"] == "Bearer xoxb-never-issued"
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 2


@MODES
async def test_hook_hub_refresh_token(mode, start, upstream, fake_slack) -> None:
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)

    class OwnRefresh(Plain):
        outcomes = (
            TokenSet(access_token="at-2", expires_at=in_an_hour),  # no refresh token: the old one is kept
            TransientProviderError("Demo is down for maintenance"),
            RateLimited("Demo is rate limiting", retry_after=30),
            GrantRejected("Demo revoked the grant", provider_code="invalid_grant"),
        )

        @implement(mode)
        def hub_refresh_token(self, provider, token):
            self.calls.append((provider.name, token.refresh_token))
            outcome = self.outcomes[len(self.calls) - 1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    plugin = OwnRefresh("demo")
    assert_flavour(plugin.hub_refresh_token, mode)
    client = await start({"demo": plugin})
    identity(upstream, "demo")
    identity(upstream, "plain")
    upstream.get(f"{url('demo', 'api')}/me", payload={"id": "me"}, repeat=True)

    # Connected with a 30-second token, then 25 seconds pass: it now expires inside the
    # refresh margin (a quarter of its life), so the next action refreshes first,
    # transparently, and runs with the new token.
    grant(upstream, "demo", access_token="at-1", refresh_token="rt-1", expires_in=30)
    assert (await connect(client, "demo"))[1] == 200
    row = await client.db.integration(provider="demo")
    await client.db.set_integration(provider="demo", updated_at=row.updated_at - timedelta(seconds=25),
                                    token_expiry=row.token_expiry - timedelta(seconds=25))
    status, body, _ = await request(client, "GET", "demo/me")
    assert status == 200, body
    assert plugin.calls == [("demo", "rt-1")]
    assert upstream.sent("GET", f"{url('demo', 'api')}/me")[-1]["headers"]["Authorization"] == "Bearer at-2"
    assert (await view(client, "demo"))["hasRefreshToken"] is True

    # Transient failures leave the state alone; the client may retry.
    status, body, _ = await request(client, "POST", "demo/refresh")
    assert (status, body["error"]["code"]) == (502, "provider_unavailable")
    assert (await view(client, "demo"))["status"] == "ACTIVE"
    status, body, headers = await request(client, "POST", "demo/refresh")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (429, "rate_limited", "30")
    assert (await view(client, "demo"))["status"] == "ACTIVE"
    # A refusal for good means reconnecting.
    status, body, _ = await request(client, "POST", "demo/refresh")
    assert (status, body["error"]["code"]) == (409, "reconnect_required")
    assert (await view(client, "demo"))["status"] == "ERROR"
    assert plugin.calls == [("demo", "rt-1")] * 4

    # Left out: the RFC 6749 refresh grant against the token endpoint.
    grant(upstream, "plain", access_token="plain-at-1", refresh_token="plain-rt-1", expires_in=3600)
    assert (await connect(client, "plain"))[1] == 200
    grant(upstream, "plain", access_token="plain-at-2", expires_in=3600)
    status, body, _ = await request(client, "POST", "plain/refresh")
    assert status == 200 and body["data"]["hasRefreshToken"] is True
    sent = upstream.sent("POST", url("plain", "token"))[-1]
    assert sent["data"] == {"grant_type": "refresh_token", "refresh_token": "plain-rt-1"}
    assert sent["headers"]["Authorization"] == basic("plain")
    grant(upstream, "plain", status=503, error="temporarily_unavailable")
    assert (await request(client, "POST", "plain/refresh"))[0] == 502
    assert (await view(client, "plain"))["status"] == "ACTIVE"
    grant(upstream, "plain", status=400, error="invalid_grant")
    assert (await request(client, "POST", "plain/refresh"))[0] == 409
    assert (await view(client, "plain"))["status"] == "ERROR"

    # Slack refreshes through its own oauth.v2.access call.
    fake_slack.rotation = True
    await connect_slack(client, auth("alice"))
    status, body, _ = await request(client, "POST", "slack/refresh")
    assert status == 200, body
    assert fake_slack.calls_to("/api/oauth.v2.access")[-1].form["grant_type"] == "refresh_token"
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 4


@MODES
async def test_hook_hub_revoke_token(mode, start, upstream, fake_slack) -> None:
    class OwnRevoke(Plain):
        @implement(mode)
        def hub_revoke_token(self, provider, token):
            self.calls.append((provider.name, token.access_token))
            if token.access_token == "demo-tok-2":
                raise ProviderError("Demo could not revoke right now")

    plugin = OwnRevoke("demo")
    assert_flavour(plugin.hub_revoke_token, mode)
    client = await start({"demo": plugin})
    identity(upstream, "demo")
    identity(upstream, "plain")
    upstream.post(url("plain", "revoke"), status=200, repeat=True)

    await paste(client, "demo", "demo-tok-1")
    status, body, _ = await request(client, "DELETE", "demo/disconnect")
    assert (status, body["data"]["status"]) == (200, "INACTIVE")
    assert plugin.calls == [("demo", "demo-tok-1")]
    assert [r["status"] for r in await log_rows(client, "demo", "revoke_token")] == ["SUCCESS"]

    # Revocation is best effort: a failure is logged and the user is disconnected anyway.
    await paste(client, "demo", "demo-tok-2")
    status, body, _ = await request(client, "DELETE", "demo/disconnect")
    assert (status, body["data"]["status"]) == (200, "INACTIVE")
    latest = (await log_rows(client, "demo", "revoke_token"))[0]
    assert latest["status"] == "FAILED" and "could not revoke" in latest["errorMessage"]

    # Left out: RFC 7009 against the revoke endpoint, with the refresh token when there
    # is one (it ends the whole grant), else the access token.
    grant(upstream, "plain", access_token="plain-at", refresh_token="plain-rt")
    await connect(client, "plain")
    assert (await request(client, "DELETE", "plain/disconnect"))[0] == 200
    await paste(client, "plain", "plain-pasted")
    status, body, _ = await request(client, "DELETE", "plain")
    assert (status, body["data"]["status"]) == (200, "DELETED")
    first, second = upstream.sent("POST", url("plain", "revoke"))
    assert first["data"] == {"token": "plain-rt", "token_type_hint": "refresh_token"}
    assert second["data"] == {"token": "plain-pasted", "token_type_hint": "access_token"}
    assert first["headers"]["Authorization"] == basic("plain")

    # Slack revokes with its own auth.revoke.
    await connect_slack(client, auth("alice"))
    assert (await request(client, "DELETE", "slack/disconnect"))[0] == 200
    assert len(fake_slack.calls_to("/api/auth.revoke")) == 1
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 2


@MODES
async def test_hook_hub_account_identity(mode, start, upstream, fake_slack) -> None:
    class OwnIdentity(Plain):
        @implement(mode)
        def hub_account_identity(self, provider, token):
            self.calls.append((provider.name, token.access_token))
            if token.access_token == "demo-revoked":
                raise ProviderAuthError("Demo no longer knows this token", provider_code="token_revoked")
            return AccountInfo(
                id=f"acct-{len(self.calls)}", name="Dee", email="dee@demo.test", team_name="Demo Team", extra={"plan": "pro"}
            )

    plugin = OwnIdentity("demo")
    assert_flavour(plugin.hub_account_identity, mode)
    client = await start({"demo": plugin, "quiet": Plain("quiet", endpoints=endpoints("quiet", userinfo=None))})

    status, body = await paste(client, "demo", "demo-tok")
    assert status == 201, body
    assert body["data"]["account"] == {
        "accountId": "acct-1", "accountName": "Dee", "email": "dee@demo.test", "teamName": "Demo Team", "plan": "pro",
    }
    # The live status check asks again and stores the answer.
    status, body, _ = await request(client, "GET", "demo/status")
    assert status == 200 and body["data"]["checked"] is True
    assert body["data"]["account"]["accountId"] == "acct-2"
    assert plugin.calls == [("demo", "demo-tok"), ("demo", "demo-tok")]
    # ProviderAuthError while verifying a new token: nothing is stored.
    status, body = await paste(client, "demo", "demo-revoked", user="bob")
    assert (status, body["error"]["code"]) == (400, "token_rejected")
    assert await view(client, "demo", user="bob") is None

    # Left out: the userinfo endpoint's "sub", "name" and "email", with a Bearer token.
    upstream.get(url("plain", "userinfo"), payload={"sub": 7, "name": "Pat", "email": "pat@plain.test"})
    upstream.get(url("plain", "userinfo"), payload={"name": "no sub here"})
    status, body = await paste(client, "plain", "plain-tok")
    assert body["data"]["account"] == {"accountId": "7", "accountName": "Pat", "email": "pat@plain.test"}
    assert upstream.sent("GET", url("plain", "userinfo"))[0]["headers"]["Authorization"] == "Bearer plain-tok"
    status, body = await paste(client, "plain", "plain-tok-2", user="bob")  # an answer without "sub"
    assert (status, body["error"]["code"]) == (502, "provider_bad_response")
    assert await view(client, "plain", user="bob") is None
    # ... and a provider without a userinfo endpoint is taken at its word, asking no one.
    status, body = await paste(client, "quiet", "quiet-tok")
    assert status == 201 and not body["data"]["account"].get("accountId")
    assert not any(u.host == "quiet.test" for _, u in upstream.requests)

    # Slack's identity comes from its auth.test.
    await connect_slack(client, auth("alice"))
    assert (await view(client, "slack"))["account"]["teamName"] == "Fake Workspace"
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 3


@MODES
async def test_hook_hub_auth_headers(mode, start, upstream, fake_slack) -> None:
    class OwnHeaders(Plain):
        @implement(mode)
        def hub_auth_headers(self, provider, token):
            self.calls.append((provider.name, token.access_token))
            return {"Authorization": f"Token token={token.access_token}", "X-Demo-Client": provider.client_id}

    plugin = OwnHeaders("demo")
    assert_flavour(plugin.hub_auth_headers, mode)
    client = await start({"demo": plugin})
    identity(upstream, "demo")
    identity(upstream, "plain")
    for name in ("demo", "plain"):
        upstream.get(f"{url(name, 'api')}/me", payload={"id": name}, repeat=True)

    await paste(client, "demo", "demo-tok")
    assert (await request(client, "GET", "demo/me"))[0] == 200
    headers = upstream.sent("GET", f"{url('demo', 'api')}/me")[0]["headers"]
    assert headers["Authorization"] == "Token token=demo-tok" and headers["X-Demo-Client"] == "demo-client"
    assert plugin.calls == [("demo", "demo-tok")]

    # Left out: an RFC 6750 Bearer header.
    await paste(client, "plain", "plain-tok")
    assert (await request(client, "GET", "plain/me"))[0] == 200
    assert upstream.sent("GET", f"{url('plain', 'api')}/me")[0]["headers"] == {"Authorization": "Bearer plain-tok"}

    # Slack's calls still carry Slack's Bearer token (the fake refuses anything else).
    await connect_slack(client, auth("alice"))
    status, body, _ = await request(client, "GET", "slack/channels")
    assert status == 200, body
    assert fake_slack.calls_to("/api/conversations.list")[-1].headers["Authorization"].startswith("Bearer xox")
    assert "X-Demo-Client" not in fake_slack.calls_to("/api/conversations.list")[-1].headers
    assert providers_seen(plugin) == {"demo"} and len(plugin.calls) == 1


@MODES
async def test_hook_hub_check_response(mode, start, upstream, fake_slack) -> None:
    class OwnCheck(Plain):
        """Demo answers HTTP 200 with {"ok": false, "error": ...} on failure, like Slack."""

        @implement(mode)
        def hub_check_response(self, provider, response):
            self.calls.append((provider.name, urlsplit(response.url).path))
            hub.raise_for_status(response)  # keep the standard mapping for HTTP failures
            body = response.json()
            if not isinstance(body, dict) or body.get("ok", True):
                return
            code = body.get("error")
            if code == "bad_token":
                raise ProviderAuthError("Demo rejected the token", provider_code=code)
            if code == "not_found":
                raise ProviderError("Demo has no such thing", provider_code=code, status=404, code="provider_not_found")
            raise ProviderError(f"Demo failed: {code}", provider_code=code)

    plugin = OwnCheck("demo")
    assert_flavour(plugin.hub_check_response, mode)
    client = await start({"demo": plugin})
    identity(upstream, "demo")
    identity(upstream, "plain")
    me = f"{url('demo', 'api')}/me"

    grant(upstream, "demo", access_token="at-1", refresh_token="rt-1", expires_in=3600)
    assert (await connect(client, "demo"))[1] == 200
    assert plugin.calls == [("demo", "/oauth/userinfo")]  # every answer passes the check

    upstream.get(me, payload={"ok": False, "error": "not_found"})
    status, body, _ = await request(client, "GET", "demo/me")
    assert (status, body["error"]["code"], body["error"]["details"]["providerError"]) == (404, "provider_not_found", "not_found")
    assert (await view(client, "demo"))["status"] == "ACTIVE"

    # ProviderAuthError: the core refreshes once and tries again ...
    upstream.get(me, payload={"ok": False, "error": "bad_token"})
    grant(upstream, "demo", access_token="at-2", expires_in=3600)
    upstream.get(me, payload={"ok": True, "id": "me"})
    status, body, _ = await request(client, "GET", "demo/me")
    assert (status, body["data"]) == (200, {"ok": True, "id": "me"})
    assert upstream.sent("GET", me)[-1]["headers"]["Authorization"] == "Bearer at-2"
    # ... and when the fresh token is refused too, the integration is ERROR.
    upstream.get(me, payload={"ok": False, "error": "bad_token"})
    grant(upstream, "demo", access_token="at-3", expires_in=3600)
    upstream.get(me, payload={"ok": False, "error": "bad_token"})
    status, body, _ = await request(client, "GET", "demo/me")
    assert (status, body["error"]["code"]) == (409, "reconnect_required")
    assert (await view(client, "demo"))["status"] == "ERROR"

    # Left out: HTTP status decides (hub.raise_for_status).
    plain_me = f"{url('plain', 'api')}/me"
    await paste(client, "plain", "plain-tok")
    upstream.get(plain_me, payload={"ok": False, "error": "not_found"})  # 200: a success by default
    upstream.get(plain_me, status=404, payload={"error": "not_found", "error_description": "no such user"})
    upstream.get(plain_me, status=429, headers={"Retry-After": "30"}, payload={"error": "slow_down"})
    upstream.get(plain_me, status=401, payload={"error": "invalid_token"})
    assert (await request(client, "GET", "plain/me"))[0] == 200
    status, body, _ = await request(client, "GET", "plain/me")
    assert (status, body["error"]["code"]) == (404, "provider_not_found")
    status, body, headers = await request(client, "GET", "plain/me")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (429, "rate_limited", "30")
    status, body, _ = await request(client, "GET", "plain/me")  # no refresh token: straight to ERROR
    assert (status, body["error"]["code"]) == (409, "reconnect_required")
    assert (await view(client, "plain"))["status"] == "ERROR"

    # Slack's answers go through Slack's check ({"ok": false} errors).
    await connect_slack(client, auth("alice"))
    fake_slack.slack_error_next("conversations.list", "invalid_cursor")
    status, body, _ = await request(client, "GET", "slack/channels")
    assert (status, body["error"]["code"]) == (400, "provider_rejected_input")
    assert providers_seen(plugin) == {"demo"}


# --- the documentation's worked example -------------------------------------------------


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_docs_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_docs_example_provider_connects_and_runs_its_action(make_config, aiohttp_client, upstream) -> None:
    example = load_example()
    registry = make_registry(example=example)
    assert registry.failures == [] and "example" in registry.providers
    running = build_hub(make_config(providers={"example": {"client_id": "ex-id", "client_secret": "ex-secret"}}), registry)
    client = await aiohttp_client(create_app(running))
    running.config.server.public_url = base = str(client.make_url("")).rstrip("/")

    upstream.post("https://example.com/oauth/token", payload={
        "access_token": "ex-at", "refresh_token": "ex-rt", "expires_in": 3600, "token_type": "Bearer",
    })
    upstream.get("https://example.com/oauth/userinfo", payload={"sub": "42", "name": "Ada", "email": "ada@example.com"})
    upstream.get("https://api.example.com/v1/projects/p1/tasks?status=done&limit=2",
                 payload={"items": [{"id": "t1"}, {"id": "t2"}], "next": "c2"})

    auth_url, status, body = await connect(client, "example", code="ex-code")
    assert auth_url.startswith("https://example.com/oauth/authorize?")
    assert query_of(auth_url)["scope"] == "profile tasks:read"
    assert status == 200, body
    assert body["data"]["status"] == "ACTIVE" and body["data"]["account"]["accountName"] == "Ada"
    (token_call,) = upstream.sent("POST", "https://example.com/oauth/token")
    assert token_call["data"]["redirect_uri"] == f"{base}/api/integrations/example/callback"

    status, body, _ = await request(client, "GET", "example/projects/p1/tasks", params={"status": "done", "limit": "2"})
    assert status == 200, body
    assert body["data"] == {"tasks": [{"id": "t1"}, {"id": "t2"}], "nextCursor": "c2"}
    (api_call,) = upstream.sent("GET", "https://api.example.com/v1/projects/p1/tasks")
    assert api_call["headers"] == {"Authorization": "Bearer ex-at"}
    stored = (await Rows(client.app[HUB_KEY]).integration(provider="example")).meta
    assert stored["state"]["lastProject"] == "p1"

    status, body, _ = await request(client, "GET", "example/projects/p1/tasks", params={"limit": "0"})
    assert status == 400 and body["error"]["details"]["field"] == "limit"
    openapi = await (await client.get("/api/openapi.json")).json()
    operation = openapi["paths"]["/api/integrations/example/projects/{project_id}/tasks"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"project_id", "status", "limit"}

"""Building a running hub around one provider plugin and its fake, and walking its
consent page like a browser. The fixtures in :mod:`hub.testing.pytest_plugin` use these."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from hub.core.hub import Hub
from hub.infra.auth import issue_token
from hub.infra.config import config_from_dict
from hub.infra.crypto import generate_key
from hub.infra.secrets import Secrets
from hub.registry import Registry
from hub.web import HUB_KEY, create_app

from .fake import FakeProvider

# The hub under test signs and checks its JWTs with this; nothing outside a test may trust it.
JWT_SECRET = "hub-testing-jwt-secret-" + "x" * 32
ALLOWED_REDIRECT = "https://app.example.com/"


def jwt_for(user: str = "alice", **claims: Any) -> str:
    """A JWT the hub under test accepts for ``user`` (``ttl_seconds``, ``issuer``, ``audience`` pass through)."""
    return issue_token(JWT_SECRET, user, **claims)


def auth_headers(user: str = "alice") -> dict[str, str]:
    """The ``Authorization`` header of a request made as ``user``."""
    return {"Authorization": f"Bearer {jwt_for(user)}"}


def provider_name(plugin: object) -> str:
    return str(plugin.hub_provider().name)  # type: ignore[attr-defined]


async def start_hub(
    plugin: object,
    fake: FakeProvider,
    database_url: str,
    *,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    **sections: Any,
) -> TestClient:
    """A started hub serving ``plugin`` against ``fake``, as an aiohttp test client with
    ``client.hub`` (the :class:`Hub`), ``client.fake`` and ``client.provider`` (the name).
    ``settings`` join the provider's section; ``sections`` join the hub's top-level config."""
    if not fake.base_url:
        await fake.start()
    name = name or provider_name(plugin)
    registry = Registry(strict=True)
    registry.add(name, plugin)
    registry.check_pending()
    keys = generate_key("k1")
    raw: dict[str, Any] = {
        "server": {"public_url": "http://127.0.0.1:9", "allowed_redirects": [ALLOWED_REDIRECT]},
        "database": {"url": database_url},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": keys},
        "activity": {"flush_interval_ms": 20},
        # No background refresh unless a test asks for it: its own refreshes stay countable.
        "refresh": {"interval_seconds": 0},
        "upstream": {"max_retry_wait": 2, "total_timeout": 5},
        "providers": {name: {**fake.hub_settings(), **(settings or {})}},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    hub = Hub(config_from_dict(raw, env={}), registry, Secrets(JWT_SECRET, keys))
    server = TestServer(create_app(hub))
    # As `hub serve` does: no aiohttp access log, which would print callback codes.
    await server.start_server(access_log=None)
    client = TestClient(server)
    await client.start_server()
    hub.config.server.public_url = str(client.make_url("")).rstrip("/")
    client.hub, client.fake, client.provider = hub, fake, name  # type: ignore[attr-defined]
    return client


async def connect(client: TestClient, provider: str | None = None, user: str = "alice", *, decision: str = "allow") -> Any:
    """Connect ``user`` as a browser would: ask the hub for the authorization URL, load the
    fake's consent page, press Allow (or Deny with ``decision="deny"``) and come back to the
    hub (:func:`finish_connect`). Returns the hub's last response, its body already read."""
    provider = provider or client.provider  # type: ignore[attr-defined]
    location = await press_consent(await begin_connect(client, provider, user), decision)
    return await finish_connect(client, location, provider)


async def begin_connect(client: TestClient, provider: str | None = None, user: str = "alice") -> str:
    """``GET /api/integrations/<provider>/connect`` as ``user``; returns the authorization URL."""
    provider = provider or client.provider  # type: ignore[attr-defined]
    resp = await client.get(f"/api/integrations/{provider}/connect", headers=auth_headers(user))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["data"]["authUrl"])


async def finish_connect(client: TestClient, location: str, provider: str | None = None) -> Any:
    """Come back to the hub from the consent page's redirect ``location``, as the browser does.

    An ``auth="oauth2"`` provider sends a code (or an error) to the callback: its JSON
    answer is returned. An ``auth="token"`` provider (Trello) puts the token in the URL
    fragment, which no server sees: the callback answers a page whose script posts the
    token with the state to ``POST /api/integrations/<provider>/tokens``; this does what the
    script does and returns that answer (201 when connected). Without a token in the
    fragment (consent denied) the script posts nothing: the page's own answer is returned."""
    provider = provider or client.provider  # type: ignore[attr-defined]
    parts = urlsplit(location)
    resp = await client.get(f"{parts.path}?{parts.query}", headers={"Accept": "application/json"})
    await resp.read()
    if not _token_flow(client, provider):
        return resp
    token = dict(parse_qsl(parts.fragment)).get("token")
    if resp.status != 200 or not token:
        return resp
    state = dict(parse_qsl(parts.query)).get("state", "")
    resp = await client.post(f"/api/integrations/{provider}/tokens", json={"token": token, "state": state}, headers={"Accept": "application/json"})
    await resp.read()
    return resp


def hub_of(client: TestClient) -> Hub:
    """The :class:`Hub` a test client serves."""
    return client.app[HUB_KEY]  # type: ignore[index]


def _token_flow(client: TestClient, provider: str) -> bool:
    runtime = hub_of(client).providers.get(provider)
    return runtime is not None and runtime.info.auth == "token"


async def press_consent(auth_url: str, decision: str = "allow") -> str:
    """Submit a fake's consent page with ``decision``; returns where it redirects the browser."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(auth_url) as page:
            text = await page.text()
            assert page.status == 200, text
        fields = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', text)}
        action = re.search(r'<form[^>]*action="([^"]+)"', text)
        assert action, "the consent page has no form"
        fields["decision"] = decision
        parts = urlsplit(auth_url)
        target = f"{parts.scheme}://{parts.netloc}{html.unescape(action.group(1))}"
        async with browser.post(target, data=fields, allow_redirects=False) as resp:
            assert resp.status in (302, 303), await resp.text()
            return resp.headers["Location"]

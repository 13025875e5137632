"""Shared fixtures: a database per test (SQLite, or PostgreSQL when
``HUB_TEST_DATABASE_URL`` is set), the fake Slack on loopback, and a real hub server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from hub.infra.config import HubConfig, config_from_dict
from hub.infra.crypto import generate_key
from hub.web import create_app
from hub_slack.fake import FakeSlack
from hub_trello.fake import FakeTrello
from hub_google_calendar.fake import FakeGoogle
from eventsupport import Subscriber
from helpers import connect_slack
from support import JWT_SECRET, PG_URL, Rows, auth, build_hub, google_section, slack_section, trello_section

def pytest_report_header(config: pytest.Config) -> str:
    return f"hub database: {'PostgreSQL ' + PG_URL.split('@')[-1] if PG_URL else 'SQLite (per-test file)'}"


@pytest.fixture(autouse=True)
def only_listed_error_codes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Whatever a test does, every error the hub answers in it (in this process) carries a
    code of hub/web/errorcodes.py: the table is the whole list (tests/test_error_codes.py)."""
    import hub.web.responses
    import hub.web.routes
    from hub.web.errorcodes import CODES

    unlisted: list[str] = []
    real = hub.web.responses.error_body

    def checked(code: str, message: str, details: Any = None) -> dict[str, Any]:
        if code not in CODES:
            unlisted.append(code)
        return real(code, message, details)

    monkeypatch.setattr(hub.web.responses, "error_body", checked)
    monkeypatch.setattr(hub.web.routes, "error_body", checked)
    yield
    assert not unlisted, f"answered with error codes hub/web/errorcodes.py does not list: {sorted(set(unlisted))}"


@pytest.fixture(scope="session")
def _pg_url(hub_postgres_url: str | None) -> str | None:
    """The run's scratch PostgreSQL database (hub.testing's ``hub_postgres_url``), or None."""
    return hub_postgres_url


@pytest.fixture
def db_url(hub_database_url: str) -> str:
    """A database emptied for this test: hub.testing's ``hub_database_url``, the same one a
    plugin package's tests get."""
    return hub_database_url


@pytest.fixture
def encryption_keys() -> str:
    return generate_key("k1")


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(client_id="slack-client", client_secret="slack-secret-value-123")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_trello() -> AsyncIterator[FakeTrello]:
    fake = FakeTrello(api_key="trello-key-for-tests")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_google() -> AsyncIterator[FakeGoogle]:
    fake = FakeGoogle()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    """An event subscriber endpoint on loopback (tests/eventsupport.py)."""
    sub = Subscriber()
    await sub.start()
    yield sub
    await sub.stop()


@pytest.fixture
def make_config(db_url: str, encryption_keys: str, fake_slack: FakeSlack) -> Callable[..., HubConfig]:
    def make(**sections: Any) -> HubConfig:
        raw: dict[str, Any] = {
            "server": {"public_url": "http://127.0.0.1:9", "allowed_redirects": ["https://app.example.com/"]},
            "database": {"url": db_url},
            "auth": {"jwt_secret": JWT_SECRET},
            "security": {"encryption_keys": encryption_keys},
            "activity": {"flush_interval_ms": 20},
            "refresh": {"interval_seconds": 0},
            "events": {"expiring_sweep_seconds": 0},
            "upstream": {"max_retry_wait": 2, "total_timeout": 5},
            "providers": {"slack": slack_section(fake_slack)},
        }
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
        return config_from_dict(raw, env={})

    return make


async def serve_hub(config: HubConfig, aiohttp_client: Any) -> Any:
    """A started hub behind a real HTTP server on loopback: the test client, with the hub
    at ``client.hub`` and its rows at ``client.db``. Served as ``hub serve`` does: without aiohttp's own access log,
    which would print whole URLs (callback codes included)."""
    hub = build_hub(config)
    server = TestServer(create_app(hub))
    await server.start_server(access_log=None)
    client = await aiohttp_client(server)
    hub.config.server.public_url = str(client.make_url("")).rstrip("/")
    client.hub = hub
    client.db = Rows(hub)
    return client


@pytest.fixture
async def hub_app(make_config: Callable[..., HubConfig], aiohttp_client: Any) -> Any:
    """The hub with Slack enabled against the fake Slack."""
    return await serve_hub(make_config(), aiohttp_client)


@pytest.fixture
async def trello_app(make_config: Callable[..., HubConfig], fake_trello: FakeTrello, aiohttp_client: Any) -> Any:
    """Like ``hub_app``, with Trello enabled against the fake Trello."""
    return await serve_hub(make_config(providers={"trello": trello_section(fake_trello)}), aiohttp_client)


@pytest.fixture
async def google_app(make_config: Callable[..., HubConfig], fake_google: FakeGoogle, aiohttp_client: Any) -> Any:
    """Like ``hub_app``, with Google Calendar enabled against the fake Google."""
    return await serve_hub(make_config(providers={"google_calendar": google_section(fake_google)}), aiohttp_client)


@pytest.fixture
def db(hub_app: Any) -> Rows:
    """The rows of ``hub_app``'s database."""
    return hub_app.db


@pytest.fixture
async def slack_connected(hub_app: Any, fake_slack: FakeSlack) -> Any:
    """``hub_app`` once alice has connected Slack through the fake's consent page."""
    await connect_slack(hub_app, auth("alice"))
    return hub_app


@pytest.fixture
async def slack_rotating(hub_app: Any, fake_slack: FakeSlack) -> Any:
    """Like ``slack_connected``, with the fake Slack rotating tokens: the grant carries a
    refresh token and an expiry, and every refresh spends the old refresh token."""
    fake_slack.rotation = True
    await connect_slack(hub_app, auth("alice"))
    return hub_app

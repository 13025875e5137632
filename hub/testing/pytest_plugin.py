"""The hub's pytest fixtures, loaded through the ``pytest11`` entry point wherever the hub is
installed, so a provider package's tests need no conftest. Every name starts with ``hub_``
so it never shadows a fixture of the project under test.

* ``hub_database_url``: SQLite in ``tmp_path``, or PostgreSQL when ``HUB_TEST_DATABASE_URL``
  is set (a scratch database of this run's own, emptied before each test);
* ``hub_jwt``: ``hub_jwt(user)`` makes a JWT the hub under test accepts;
* ``make_hub``: ``await make_hub(plugin, fake)`` starts a hub around the plugin and its fake.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .fake import FakeProvider
from .kit import jwt_for, start_hub

try:  # async fixtures in pytest-asyncio's strict mode as well as its auto mode
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - then the runner must handle async fixtures itself
    _async_fixture = pytest.fixture



def _tables() -> str:
    """Every table of the hub's schema, read from its models so that none is forgotten."""
    from hub.store.models import Base

    return ", ".join(table.name for table in Base.metadata.sorted_tables)


@pytest.fixture(scope="session")
def hub_postgres_url() -> Iterator[str | None]:
    """A PostgreSQL database of this run's own when ``HUB_TEST_DATABASE_URL`` is set, else None:
    created through the configured one (so concurrent runs never empty each other's tables),
    brought to the current schema once, and dropped at the end. Falls back to the configured
    database itself when the role may not create databases."""
    configured = os.environ.get("HUB_TEST_DATABASE_URL")
    if not configured:
        yield None
        return
    from sqlalchemy.engine import make_url

    base = make_url(configured)
    private = base.set(database=f"{base.database}_run{os.getpid()}")
    created = asyncio.run(admin_sql(configured, f'CREATE DATABASE "{private.database}"'))
    url = private.render_as_string(hide_password=False) if created else configured
    asyncio.run(_upgrade(url))
    yield url
    if created:
        asyncio.run(admin_sql(configured, f'DROP DATABASE IF EXISTS "{private.database}" WITH (FORCE)'))


async def _upgrade(url: str) -> None:
    from hub.store.engine import create_engine, upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def admin_sql(url: str, sql: str) -> bool:
    """Run one statement outside a transaction (CREATE / DROP DATABASE); False when the
    server refuses it, e.g. a role that may not create databases."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        return True
    except DBAPIError:
        return False
    finally:
        await engine.dispose()


@_async_fixture
async def hub_database_url(tmp_path: Path, hub_postgres_url: str | None) -> str:
    """Where the hub under test keeps its rows: empty at the start of every test."""
    if not hub_postgres_url:
        return f"sqlite+aiosqlite:///{tmp_path}/hub.db"
    from sqlalchemy import text

    from hub.store.engine import create_engine

    engine = create_engine(hub_postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {_tables()} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
    return hub_postgres_url


@pytest.fixture
def hub_jwt() -> Callable[..., str]:
    """``hub_jwt(user="alice", **claims)``: a JWT the hub under test accepts for ``user``."""
    return jwt_for


@_async_fixture
async def make_hub(hub_database_url: str) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """``await make_hub(plugin, fake, *, name=None, settings=None, **sections)``: a running hub
    around ``plugin`` (a module or object with ``@hub.hookimpl`` hooks) pointed at ``fake``
    (started if it is not), as an aiohttp test client; stopped, with the fake, after the test."""
    clients: list[TestClient] = []
    fakes: list[FakeProvider] = []

    async def make(plugin: object, fake: FakeProvider, **kw: Any) -> TestClient:
        if not fake.base_url:
            await fake.start()
            fakes.append(fake)
        client = await start_hub(plugin, fake, hub_database_url, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for fake in fakes:
        await fake.stop()

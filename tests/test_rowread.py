"""The integration read on the action path (hub/rowread.py).

It bypasses the ORM session for speed, so it must give exactly what the session read
gives, see every committed change at once (a cache it is not), and fall back to the
session read, never fail on its own, when its connection is busy or gone.
"""

from __future__ import annotations

import asyncio

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from helpers import connect_slack
from hub.store.models import Integration
from hub.web import HUB_KEY
from support import Rows, auth


def columns(row: Integration) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in Integration.__mapper__.column_attrs}


async def session_read(hub: Any, user: str, provider: str) -> Integration | None:
    return await Rows(hub).integration(user, provider)


class Counting:
    """A fallback that records whether it was needed."""

    def __init__(self, hub: Any, user: str, provider: str) -> None:
        self.hub, self.user, self.provider, self.calls = hub, user, provider, 0

    async def __call__(self) -> Integration | None:
        self.calls += 1
        return await session_read(self.hub, self.user, self.provider)


async def test_fast_read_equals_the_session_read_column_for_column(hub_app: Any) -> None:
    await connect_slack(hub_app, auth("alice"))
    hub = hub_app.server.app[HUB_KEY]
    expected = await session_read(hub, "alice", "slack")
    fallback = Counting(hub, "alice", "slack")
    got = await hub.reader.by_owner("alice", "slack", fallback)
    assert fallback.calls == 0, "the fast path was not taken"
    assert expected is not None and got is not None
    assert columns(got) == columns(expected)
    assert got.token_expiry is None or got.token_expiry.tzinfo is not None
    assert got.created_at.utcoffset().total_seconds() == 0
    assert isinstance(got.meta, dict) and got.meta.get("teamName") == "Fake Workspace"
    by_id = await hub.reader.by_id(expected.id, fallback)
    assert fallback.calls == 0 and by_id is not None and columns(by_id) == columns(expected)
    assert await hub.reader.by_owner("nobody", "slack", fallback) is None
    assert await hub.reader.by_id(10**9, fallback) is None
    assert fallback.calls == 0


async def test_a_committed_change_is_seen_by_the_very_next_read(hub_app: Any) -> None:
    """Another connection (another process, in production) disconnects the integration:
    the next action call must see it and refuse, not use the old token."""
    await connect_slack(hub_app, auth("alice"))
    hub = hub_app.server.app[HUB_KEY]
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "before"}, headers=auth("alice"))
    assert resp.status == 200
    await Rows(hub).set_integration("alice", "slack", status="INACTIVE", access_token=None, refresh_token=None, version=Integration.version + 1)
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "after"}, headers=auth("alice"))
    assert resp.status == 409
    assert (await resp.json())["error"]["details"]["status"] == "INACTIVE"


async def test_sqlite_reader_falls_back_when_its_database_is_not_there(hub_app: Any, tmp_path: Path) -> None:
    hub = hub_app.server.app[HUB_KEY]
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite reader")
    await connect_slack(hub_app, auth("alice"))
    hub.reader.reset()
    missing = tmp_path / "gone" / "hub.db"
    real = hub.reader._sqlite_path
    hub.reader._sqlite_path = str(missing)
    def fell_back() -> float:
        value = REGISTRY.get_sample_value("hub_integration_read_fallbacks_total", {"error": "OperationalError"})
        return value or 0.0

    before = fell_back()
    try:
        fallback = Counting(hub, "alice", "slack")
        row = await hub.reader.by_owner("alice", "slack", fallback)
        assert fallback.calls == 1 and row is not None and row.user_id == "alice"
        assert fell_back() == before + 1, "the fallback must show in /metrics"
        assert not missing.parent.exists(), "the reader must never create a database"
    finally:
        hub.reader._sqlite_path = real
        hub.reader.reset()
    fallback = Counting(hub, "alice", "slack")
    assert (await hub.reader.by_owner("alice", "slack", fallback)) is not None and fallback.calls == 0


async def test_sqlite_reader_does_not_wait_for_a_writer_holding_the_lock(hub_app: Any) -> None:
    """The SQLite read runs on the event loop, so it must never wait: with another
    connection in the middle of a write transaction, it answers at once (the committed
    row, not the uncommitted change), through the fast path, and sees the change once
    committed."""
    import sqlite3

    hub = hub_app.server.app[HUB_KEY]
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite reader")
    await connect_slack(hub_app, auth("alice"))
    writer = sqlite3.connect(hub.reader._sqlite_path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE integrations SET status = 'INACTIVE' WHERE user_id = 'alice'")
        fallback = Counting(hub, "alice", "slack")
        row = await hub.reader.by_owner("alice", "slack", fallback)
        assert fallback.calls == 0 and row is not None and row.status == "ACTIVE"
        writer.execute("COMMIT")
        row = await hub.reader.by_owner("alice", "slack", fallback)
        assert fallback.calls == 0 and row is not None and row.status == "INACTIVE"
    finally:
        writer.close()


async def test_postgres_reader_survives_its_connection_being_killed(hub_app: Any) -> None:
    hub = hub_app.server.app[HUB_KEY]
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL reader")
    await connect_slack(hub_app, auth("alice"))
    fallback = Counting(hub, "alice", "slack")
    assert await hub.reader.by_owner("alice", "slack", fallback) is not None and fallback.calls == 0
    # Kill the connection the reader keeps between reads, as a server restart or a proxy would.
    assert len(hub.reader._idle) == 1
    mine = hub.reader._idle[0][1].get_server_pid()
    async with hub.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": mine})
    row = await hub.reader.by_owner("alice", "slack", fallback)
    assert row is not None and row.user_id == "alice" and fallback.calls == 1
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))
    assert resp.status == 200
    calls = fallback.calls
    assert await hub.reader.by_owner("alice", "slack", fallback) is not None and fallback.calls == calls, "fast path not restored"


async def test_postgres_reader_keeps_its_connections_and_sees_every_commit(hub_app: Any) -> None:
    """Connections kept between reads are in autocommit: each read sees what was
    committed before it, and at most pool_size of them are kept."""
    hub = hub_app.server.app[HUB_KEY]
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL reader")
    await connect_slack(hub_app, auth("alice"))
    fallback = Counting(hub, "alice", "slack")
    rows = await asyncio.gather(*(hub.reader.by_owner("alice", "slack", fallback) for _ in range(40)))
    assert all(r is not None and r.status == "ACTIVE" for r in rows) and fallback.calls == 0
    assert 1 <= len(hub.reader._idle) <= hub.reader._keep
    kept = {id(c) for c, _, _ in hub.reader._idle}
    async with hub.engine.begin() as conn:
        await conn.execute(text("UPDATE integrations SET status = 'INACTIVE' WHERE user_id = 'alice'"))
    row = await hub.reader.by_owner("alice", "slack", fallback)
    assert row is not None and row.status == "INACTIVE" and fallback.calls == 0
    assert {id(c) for c, _, _ in hub.reader._idle} <= kept  # the same connections, not new ones


def test_a_fresh_process_can_serve_its_first_read_before_any_orm_query(tmp_path: Path) -> None:
    """After a restart the first call may reach the reader before anything has used the
    ORM; the instances it builds must work all the same."""
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "hub.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE integrations (id INTEGER PRIMARY KEY, user_id TEXT, provider TEXT, status TEXT, status_reason TEXT, '
            "access_token TEXT, refresh_token TEXT, token_expiry DATETIME, scopes JSON, metadata JSON, created_at DATETIME, "
            "updated_at DATETIME, last_sync_at DATETIME, version INTEGER, refresh_lease_until DATETIME, renew_by DATETIME, "
            "renew_lease_until DATETIME)"
        )
        conn.execute(
            "INSERT INTO integrations VALUES (1, 'alice', 'slack', 'ACTIVE', NULL, 'x', NULL, NULL, '[\"a\"]', '{\"teamName\": \"T\"}', "
            "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', NULL, 3, NULL, NULL, NULL)"
        )
    script = (
        "import asyncio, sys\n"
        "from hub.rowread import IntegrationReader\n"
        "async def main():\n"
        "    async def nope():\n"
        "        raise SystemExit('fell back')\n"
        "    reader = IntegrationReader(sys.argv[1])\n"
        "    row = await reader.by_owner('alice', 'slack', nope)\n"
        "    print(row.status, row.meta['teamName'], row.scopes, row.created_at.isoformat(), row.version)\n"
        "    await reader.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, f"sqlite+aiosqlite:///{db}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ACTIVE", "T", "['a']", "2026-01-01T00:00:00+00:00", "3"]

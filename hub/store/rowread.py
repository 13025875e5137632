"""The integration row of an API call, read as cheaply as the backend allows.

Every action call reads one ``integrations`` row by its unique ``(user_id, provider)``
key before it can go upstream. Through an ORM session that read was half of the hub's
CPU per call (docs/performance.md): pool pre-ping, BEGIN, the SELECT, instance loading,
ROLLBACK, and, on SQLite, a hand-off to the driver's thread and back for each of those
steps. This module does the same read with one statement and nothing around it:

* **SQLite**: a plain ``sqlite3`` connection of this process's own, in autocommit mode,
  queried on the event loop. A hand-off to aiosqlite's thread costs ~30 times the read
  itself (about 170 µs against 5 µs). It cannot stall the loop on a lock: the database
  runs in WAL mode, where readers never wait for the writer, and the connection's busy
  timeout is zero, so any ``SQLITE_BUSY`` (or other error) is not waited out but
  answered by the ordinary asynchronous read.
* **PostgreSQL**: one ``fetchrow`` on a pooled asyncpg connection of an engine in
  AUTOCOMMIT mode without pre-ping: one round trip instead of four. A connection that
  turns out dead is invalidated and the read is retried through the ordinary session,
  whose pre-ping reconnects or reports the database as unavailable. The reader keeps up
  to ``pool_size`` of its connections checked out between reads (each for at most
  :data:`RECYCLE_SECONDS`, like the engine's own recycling): a checkout through the
  engine runs in a greenlet and cost more CPU than the query itself under load.

Both read committed data only and cache nothing, so a revoked, rotated or re-encrypted
token is never served once its change is committed. The rows come back as detached
:class:`Integration` instances, exactly like an ORM read after its session closed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import configure_mappers

from .. import jsontext
from ..infra import metrics
from .models import Integration

log = logging.getLogger("hub.db")

# Column name in the table -> attribute of the model ("metadata" is ``meta`` in Python).
_COLUMNS = [(c.name, Integration.__mapper__.get_property_by_column(c).key) for c in Integration.__table__.columns]
_JSON = {"scopes", "meta"}
_TIMES = {"token_expiry", "created_at", "updated_at", "last_sync_at", "refresh_lease_until", "renew_by", "renew_lease_until"}
# How long the reader keeps one PostgreSQL connection: the engine's pool_recycle.
RECYCLE_SECONDS = 1800
_SELECT = "SELECT " + ", ".join(f'"{name}"' for name, _ in _COLUMNS) + " FROM integrations WHERE "

Fallback = Callable[[], Awaitable[Integration | None]]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _json(value: Any) -> Any:
    return jsontext.loads(value) if isinstance(value, (str, bytes)) else value


_NEW = Integration.__mapper__.class_manager.new_instance


def _build(values: Any) -> Integration:
    # Instances made this way skip the constructor, which is where the ORM configures
    # its mappers on first use; the reader's __init__ does that instead.
    # The way the ORM itself populates a loaded instance: a new instance whose attribute
    # dictionary is filled directly, with no change events (the keyword constructor
    # fires one per column, which cost 13 µs against 1 µs).
    fields = {}
    for (_, key), value in zip(_COLUMNS, values):
        if key in _TIMES:
            value = _utc(value)
        elif key in _JSON:
            value = _json(value)
        fields[key] = value
    row = _NEW()
    row.__dict__.update(fields)
    return row


class IntegrationReader:
    """``by_owner`` and ``by_id`` for one hub; ``fallback`` is the ordinary session read."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        # A fresh process may serve its first call before any ORM query has run.
        configure_mappers()
        parsed = make_url(url)
        self._sqlite_path: str | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._engine: AsyncEngine | None = None
        # PostgreSQL connections kept between reads: (connection, asyncpg's, opened at).
        self._idle: list[tuple[AsyncConnection, Any, float]] = []
        self._keep = pool_size
        self._closing: set[asyncio.Task[None]] = set()
        self._warned = False
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:") and not parsed.query:
                self._sqlite_path = database
        elif parsed.get_driver_name() == "asyncpg":
            self._engine = create_async_engine(
                url,
                isolation_level="AUTOCOMMIT",
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=False,
                pool_reset_on_return=None,
                pool_recycle=RECYCLE_SECONDS,
                # asyncpg hands the JSON columns (scopes, metadata) to this decoder: the
                # standard library's value, through orjson where that is the same.
                json_deserializer=jsontext.loads,
            )

    async def by_owner(self, user_id: str, provider: str, fallback: Fallback) -> Integration | None:
        return await self._one("user_id", "provider", (user_id, provider), fallback)

    async def by_id(self, integration_id: int, fallback: Fallback) -> Integration | None:
        return await self._one("id", None, (integration_id,), fallback)

    async def _one(self, first: str, second: str | None, params: tuple[Any, ...], fallback: Fallback) -> Integration | None:
        if self._sqlite_path is not None:
            values = self._read_sqlite(first, second, params)
            if values is not False:
                return None if values is None else _build(values)
        elif self._engine is not None:
            values = await self._read_postgres(first, second, params)
            if values is not False:
                return None if values is None else _build(values)
        return await fallback()

    def _read_sqlite(self, first: str, second: str | None, params: tuple[Any, ...]) -> Any:
        where = f"{first} = ?" + (f" AND {second} = ?" if second else "")
        try:
            if self._sqlite is None:
                self._sqlite = self._open_sqlite()
            return self._sqlite.execute(_SELECT + where, params).fetchone()
        except sqlite3.Error as exc:
            # Busy, gone, or not a database any more: drop the connection and let the
            # asynchronous path answer (or report the database as unavailable).
            self._fell_back(exc)
            self.reset()
            return False

    def _open_sqlite(self) -> sqlite3.Connection:
        # mode=rw: never create the file (a missing database is an outage, not a new one).
        uri = f"file:{quote(self._sqlite_path)}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA query_only=1")
        return conn

    async def _read_postgres(self, first: str, second: str | None, params: tuple[Any, ...]) -> Any:
        assert self._engine is not None
        where = f"{first} = $1" + (f" AND {second} = $2" if second else "")
        conn: AsyncConnection | None = None
        try:
            if self._idle:
                conn, driver, opened = self._idle.pop()
            else:
                conn = await self._engine.connect()
                driver, opened = (await conn.get_raw_connection()).driver_connection, time.monotonic()
            values = await driver.fetchrow(_SELECT + where, *params)
        except Exception as exc:
            if conn is not None:
                await self._discard(conn)
            self._fell_back(exc)
            return False
        except BaseException:
            # Cancelled mid-query: the connection's state is unknown, so it is not kept;
            # it is thrown away in the background, since nothing may be awaited here.
            if conn is not None:
                task = asyncio.get_running_loop().create_task(self._discard(conn))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            raise
        if len(self._idle) < self._keep and time.monotonic() - opened < RECYCLE_SECONDS:
            self._idle.append((conn, driver, opened))
        else:
            await conn.close()
        return values

    async def _discard(self, conn: AsyncConnection) -> None:
        try:
            await conn.invalidate()
            await conn.close()
        except Exception:  # noqa: BLE001 - already broken: nothing more to do with it
            pass

    def _fell_back(self, exc: BaseException) -> None:
        metrics.READ_FALLBACKS.labels(type(exc).__name__).inc()
        # Said once per process at WARNING (an outage says more elsewhere), then quietly.
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "integration read fell back to the session read (%s)", type(exc).__name__)

    def reset(self) -> None:
        """Drop the SQLite connection (it is reopened on the next read)."""
        if self._sqlite is not None:
            try:
                self._sqlite.close()
            except sqlite3.Error:
                pass
            self._sqlite = None

    async def close(self) -> None:
        self.reset()
        idle, self._idle = self._idle, []
        for conn, _, _ in idle:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - closing: a broken connection is gone anyway
                pass
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._engine is not None:
            await self._engine.dispose()

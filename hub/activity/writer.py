"""The buffered activity writer.

A request hands its row to :class:`ActivityWriter` and goes on; a background task inserts
rows in batches every ``flush_interval``, with the rollup changes in the same
transaction. The buffer is bounded: when the database falls behind,
:meth:`ActivityWriter.record` waits for room instead of dropping rows. Shutdown drains the
buffer. Reads call :meth:`ActivityWriter.flush` first, so a caller sees its own calls: it
waits for the rows queued before it (a watermark), never for rows other callers queue after
it, and at most :data:`READ_WAIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..infra import metrics
from ..store.models import utcnow

log = logging.getLogger("hub.activity")
from .rollup import LOGS, PENDING, TALLIED, apply_changes, as_tallied, difference, tally


_DEFAULTS: dict[str, Any] = {"kind": "call", "request_data": None, "response_data": None, "error_message": None, "duration_ms": 0}
_FIELDS = ("integration_id", "kind", "action", "status", "request_data", "response_data", "error_message", "duration_ms", "created_at")


def _stored(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every column the insert names (an executemany needs the same keys in each)."""
    values = {f: row.get(f, _DEFAULTS.get(f)) for f in _FIELDS}
    if values["created_at"] is None:
        values["created_at"] = utcnow()
    return values


_INSERT_LOGS = insert(LOGS)

# How long a read waits for the rows queued before it. Past this the database is far behind
# (or away), and the read answers with what is committed rather than hanging.
READ_WAIT_SECONDS = 5.0


class _Default:
    """The type of "not given" for :meth:`ActivityWriter.flush`, where ``None`` means no bound."""


_DEFAULT = _Default()


class ActivityWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        buffer_limit: int = 10_000,
        read_wait: float = READ_WAIT_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._interval = flush_interval
        self._batch = batch_size
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=buffer_limit)
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.read_wait = read_wait
        # The watermark. The queue is first in, first out, so the n-th row queued is the
        # n-th row the writer takes: ``flush`` needs only the count queued when it was
        # called, and waits for ``_done`` (rows written, or given up on) to reach it.
        self._queued = 0
        self._done = 0
        self._progress = asyncio.Condition()
        # When each PENDING row this process started was stamped: finishing it then names
        # the month too, so on a partitioned table the update reads one partition, not all.
        self._pending_at: dict[int, Any] = {}

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hub-activity-writer")

    async def stop(self, timeout: float | None = None) -> None:
        """Write everything buffered, then stop the background task.

        With ``timeout``, give up waiting after that long (the database is down, say):
        what is still buffered then is reported in the log rather than hanging shutdown.
        """
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            log.error("shutting down with %d activity rows not written: the database did not take them in %.0fs", self._queue.qsize(), timeout)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    @property
    def buffered(self) -> int:
        return self._queue.qsize()

    async def record(self, row: Mapping[str, Any]) -> None:
        """Queue one row (columns of :class:`IntegrationLog`). Waits when the buffer is full."""
        item = dict(row)
        item.setdefault("created_at", utcnow())
        item.setdefault("kind", "call")
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            await self._queue.put(item)  # back-pressure: wait for room
        # No await between the put and the count: the count always matches the queue order.
        self._queued += 1
        metrics.ACTIVITY_BUFFERED.set(self._queue.qsize())

    async def start_pending(self, row: Mapping[str, Any]) -> int:
        """Write a PENDING row now (not buffered: it must be visible while the work runs)."""
        values = _stored({"created_at": utcnow(), "kind": "call", **row, "status": PENDING})
        async with self._sessions.begin() as session:
            conn = await session.connection()
            result = await conn.execute(insert(LOGS).values(**values).returning(LOGS.c.id))
            row_id = int(result.scalar_one())
            await apply_changes(conn, tally([as_tallied(values)]))
        self._pending_at[row_id] = values["created_at"]
        return row_id

    async def finish_pending(self, row_id: int, values: Mapping[str, Any]) -> None:
        """Complete a PENDING row with ``values``; the rollup moves the call from pending
        to its outcome in the same transaction."""
        # The id alone finds the row (ids come from one sequence); the stamp, when this
        # process knows it, lets PostgreSQL skip every other month's partition.
        match = [LOGS.c.id == row_id]
        stamped = self._pending_at.pop(row_id, None)
        if stamped is not None:
            match.append(LOGS.c.created_at == stamped)
        async with self._sessions.begin() as session:
            conn = await session.connection()
            before = (await conn.execute(select(*TALLIED).where(*match).with_for_update())).first()
            done = await conn.execute(update(LOGS).where(*match).values(**values))
            # No row updated (pruned, or its integration deleted meanwhile): nothing to move.
            if before is not None and done.rowcount:
                after = as_tallied({**before._mapping, **values})
                await apply_changes(conn, difference(tally([after]), tally([before])))
        self.written += 1
        metrics.ACTIVITY_WRITTEN.inc()

    async def flush(self, timeout: float | None | _Default = _DEFAULT) -> bool:
        """Wait until every row queued before the call is in the database; True once it is.

        Rows queued after the call are not waited for, so a steady stream of another
        caller's rows cannot hold a read up. Waits at most ``timeout`` seconds (by default
        :attr:`read_wait`; ``None`` waits as long as it takes) and then returns False,
        leaving the rows buffered: they are written as soon as the database takes them."""
        if self._task is None:
            await self._drain_now()
            return True
        target = self._queued
        if self._done >= target:
            return True
        limit = self.read_wait if isinstance(timeout, _Default) else timeout
        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(lambda: self._done >= target), limit)
            return True
        except asyncio.TimeoutError:
            log.warning("activity read went ahead after %.1fs with %d earlier rows not yet written (the database is behind)",
                        limit or 0, target - self._done)
            return False

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._take_waiting(batch)
            if len(batch) < self._batch:
                # Not a full batch: give the rest of this interval's rows a chance to join
                # it, once, rather than waking per row (which, under load, let the buffer
                # fill up faster than it was written).
                await asyncio.sleep(self._interval)
                self._take_waiting(batch)
            await self._write(batch)
            await self._settled(batch)

    async def _settled(self, batch: list[dict[str, Any]]) -> None:
        """``batch`` has been dealt with: move the watermark and wake the reads it releases."""
        for _ in batch:
            self._queue.task_done()
        self._done += len(batch)
        async with self._progress:
            self._progress.notify_all()

    def _take_waiting(self, batch: list[dict[str, Any]]) -> None:
        while len(batch) < self._batch:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _drain_now(self) -> None:
        batch: list[dict[str, Any]] = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._write(batch)
            await self._settled(batch)

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self._insert_retrying(batch)
        except Exception as exc:
            # Something in the rows themselves: write them one by one so a single bad
            # row cannot block everyone's activity, and keep even that row, stripped.
            log.error("activity batch refused (%s); writing its %d rows one by one", type(exc).__name__, len(batch))
            for row in batch:
                await self._write_alone(row)

    async def _insert_retrying(self, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows``, waiting out database outages; raises what the rows cause."""
        delay = 0.1
        while True:
            try:
                await self._insert(rows)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    raise
                # The database is away (or chose this transaction as a deadlock victim):
                # keep the rows and try again; requests wait on the full buffer meanwhile
                # (back-pressure), nothing is dropped.
                log.error("activity write of %d rows failed (%s); retrying in %.1fs", len(rows), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_alone(self, row: dict[str, Any]) -> None:
        try:
            await self._insert_retrying([row])
            return
        except Exception as exc:
            stripped = {**row, "request_data": None, "response_data": None}
            stripped["error_message"] = ((row.get("error_message") or "") + f" [payload not storable: {type(exc).__name__}]").strip()
        try:
            await self._insert_retrying([stripped])
        except Exception as exc:
            # Not even the row without its payloads can be stored (a missing column, say).
            # Retrying it would never end and would hold up every row behind it.
            log.error("activity row of integration %s, action %r, refused even without its payloads (%s); not written",
                      row.get("integration_id"), row.get("action"), type(exc).__name__)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        # The rows and their rollup counts commit together or not at all: a row is counted
        # exactly when it is stored, whichever path (batch, one by one, stripped) stores it.
        values = [_stored(r) for r in rows]
        changes = tally(as_tallied(v) for v in values)
        async with self._sessions.begin() as session:
            conn = await session.connection()
            await conn.execute(_INSERT_LOGS, values)
            await apply_changes(conn, changes)
        self.written += len(rows)
        metrics.ACTIVITY_WRITTEN.inc(len(rows))
        metrics.ACTIVITY_BUFFERED.set(self._queue.qsize())


def _transient(exc: BaseException) -> bool:
    """A failure that says nothing about the rows: retry them as they are."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError, asyncio.TimeoutError)):
        return True
    # SQLSTATE class 40, transaction rollback: PostgreSQL's deadlock victim (40P01) and
    # serialization failure (40001) arrive as a plain DBAPIError, and succeed when retried.
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and isinstance(code, str) and code.startswith("40")


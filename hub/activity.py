"""Activity: the record of every upstream call, and the queries over it.

Writes are buffered. A request hands its row to :class:`ActivityWriter` and goes on; a
background task inserts rows in batches every ``flush_interval``. The buffer is bounded:
when the database falls behind, :meth:`ActivityWriter.record` waits for room instead of
dropping rows. Shutdown drains the buffer. Reads call :meth:`flush` first, so a caller
always sees its own calls: it waits for the rows queued before it (a watermark), never for
rows other callers queue after it, and at most :data:`READ_WAIT_SECONDS`.

Statistics do not read every row of their window. The writer keeps ``activity_hourly``
(:class:`~hub.models.ActivityHour`) in the same transaction as the rows it inserts: per
integration, UTC hour, action and duration bucket, the calls that succeeded, failed or
are pending, and their summed duration. :func:`stats` adds up the whole hours of its
window from there and reads raw rows only for at most half of the hour the window
starts in, so its counts, rates, averages and breakdown are exact. Percentiles are exact too while
the window holds at most :data:`EXACT_PERCENTILES_UP_TO` calls; above that they are read
from the duration buckets, within 5% of the exact value (see :func:`duration_bucket`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from . import metrics
from .errors import BadRequest
from .models import ActivityHour, IntegrationLog, utcnow

log = logging.getLogger("hub.activity")

SUCCESS, FAILED, PENDING = "SUCCESS", "FAILED", "PENDING"
LOG_STATUSES = (SUCCESS, FAILED, PENDING)

# Above this many calls in a window, p50/p95 come from the duration buckets instead of a
# pass over the raw rows (which costs about a millisecond per few thousand rows).
EXACT_PERCENTILES_UP_TO = 20_000

# How long a read waits for the rows queued before it. Past this the database is far behind
# (or away), and the read answers with what is committed rather than hanging.
READ_WAIT_SECONDS = 5.0

HOUR = timedelta(hours=1)
LOGS = IntegrationLog.__table__
ROLLUP = ActivityHour.__table__


# --- the hourly rollup -----------------------------------------------------------------


def _bucket_floors() -> list[int]:
    # Each bucket is a tenth of its lower bound wide (at least 1 ms), so below 20 ms every
    # duration has a bucket of its own, and above it the buckets grow by about 10% each:
    # 0, 1, ..., 19, 20, 22, 24, ..., 30, 33, 36, ... up to the 32-bit column's range.
    floors = [0]
    while floors[-1] < 2**31:
        floors.append(floors[-1] + max(1, floors[-1] // 10))
    return floors


_FLOORS = _bucket_floors()


def duration_bucket(duration_ms: int) -> int:
    """The bucket of a duration, named by the smallest duration it holds.

    Durations under 20 ms are their own bucket; above that a bucket ``[lo, lo + lo // 10)``
    is at most 10% of ``lo`` wide. A percentile read from a bucket is reported as the
    bucket's middle (:func:`bucket_value`), so it is off by at most half the width: 5% of
    the exact value, and nothing under 20 ms."""
    if duration_ms < 20:
        return max(0, duration_ms)
    return _FLOORS[bisect_right(_FLOORS, duration_ms) - 1]


def bucket_value(floor: int) -> int:
    """The duration reported for a percentile that falls in the bucket starting at ``floor``."""
    i = bisect_right(_FLOORS, floor) - 1
    width = _FLOORS[i + 1] - _FLOORS[i] if i + 1 < len(_FLOORS) else 1
    return floor + (width - 1) // 2


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


# The columns of a log row the rollup is made from, in the order tally() reads them.
_TALLIED = (LOGS.c.integration_id, LOGS.c.kind, LOGS.c.created_at, LOGS.c.action, LOGS.c.status, LOGS.c.duration_ms)
_KEY = ("integration_id", "hour", "action", "bucket")
_COUNTS = ("succeeded", "failed", "pending", "total_ms")
_SLOT = {SUCCESS: 0, FAILED: 1}  # any other status is counted as pending

Key = tuple[int, datetime, str, int]


def tally(rows: Iterable[Sequence[Any]]) -> dict[Key, list[int]]:
    """What ``rows`` (integration_id, kind, created_at, action, status, duration_ms) add
    to the rollup: [succeeded, failed, pending, total_ms] per rollup key. Only calls count."""
    out: dict[Key, list[int]] = {}
    for integration_id, kind, created_at, action, status, duration_ms in rows:
        if kind != "call":
            continue
        ms = int(duration_ms or 0)
        key = (integration_id, hour_of(created_at), action, duration_bucket(ms))
        counts = out.get(key)
        if counts is None:
            counts = out[key] = [0, 0, 0, 0]
        counts[_SLOT.get(status, 2)] += 1
        counts[3] += ms
    return out


def _as_tallied(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in _TALLIED)


def _bind(column: str) -> Any:
    return bindparam("p_" + column, type_=ROLLUP.c[column].type)


def _matches_key() -> Any:
    return and_(*(ROLLUP.c[c] == _bind(c) for c in _KEY))


def _upsert(dialect: str) -> Any:
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the activity rollup supports PostgreSQL and SQLite, not {dialect}")
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ROLLUP).values({c: _bind(c) for c in _KEY + _COUNTS})
    return ins.on_conflict_do_update(index_elements=list(_KEY), set_={c: ROLLUP.c[c] + ins.excluded[c] for c in _COUNTS})


_UPSERTS = {d: _upsert(d) for d in ("postgresql", "sqlite")}
# Taking away only ever touches a row that exists: what was never counted is not subtracted.
_SUBTRACT = update(ROLLUP).where(_matches_key()).values({c: ROLLUP.c[c] + _bind(c) for c in _COUNTS})
_DROP_EMPTY = delete(ROLLUP).where(_matches_key(), ROLLUP.c.succeeded == 0, ROLLUP.c.failed == 0, ROLLUP.c.pending == 0)


def _rollup_statements(dialect: str, changes: Mapping[Key, Sequence[int]]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The statements that apply ``changes`` (signed counts per key), each with its
    executemany parameters. Keys go in sorted order, so concurrent writers take their row
    locks in one order and cannot deadlock one another on PostgreSQL."""
    steps: list[tuple[Any, list[dict[str, Any]]]] = []
    emptied: list[dict[str, Any]] = []
    upsert = _UPSERTS[dialect] if dialect in _UPSERTS else _upsert(dialect)
    for key in sorted(changes):
        counts = changes[key]
        if not any(counts):
            continue
        keyed = {"p_" + c: v for c, v in zip(_KEY, key)}
        params = {**keyed, **{"p_" + c: int(v) for c, v in zip(_COUNTS, counts)}}
        stmt = _SUBTRACT if min(counts) < 0 else upsert
        if stmt is _SUBTRACT:
            emptied.append(keyed)
        if steps and steps[-1][0] is stmt:
            steps[-1][1].append(params)
        else:
            steps.append((stmt, [params]))
    if emptied:
        steps.append((_DROP_EMPTY, emptied))
    return steps


def _difference(after: Mapping[Key, Sequence[int]], before: Mapping[Key, Sequence[int]]) -> dict[Key, list[int]]:
    out = {k: list(v) for k, v in after.items()}
    for key, counts in before.items():
        acc = out.setdefault(key, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            acc[i] -= n
    return out


async def _apply(conn: AsyncConnection, changes: Mapping[Key, Sequence[int]]) -> None:
    for stmt, params in _rollup_statements(conn.dialect.name, changes):
        await conn.execute(stmt, params)


def rebuild_rollups_sync(bind: Connection | Session, integration_id: int | None = None, *, batch_size: int = 50_000) -> int:
    """Recompute ``activity_hourly`` from ``integration_logs`` (for one integration, or
    all), inside the caller's transaction; returns the number of calls counted.

    Rows are read in batches of ``batch_size`` by id, so memory stays bounded whatever
    the table holds. Safe beside running writers: on PostgreSQL the rollup table is locked
    against writes until the caller commits (writers wait; readers do not), and on SQLite
    the first statement takes the database's write lock."""
    conn = bind.connection() if isinstance(bind, Session) else bind
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {ROLLUP.name} IN EXCLUSIVE MODE"))
    clear = delete(ROLLUP)
    scope = [LOGS.c.kind == "call"]
    if integration_id is not None:
        clear = clear.where(ROLLUP.c.integration_id == integration_id)
        scope.append(LOGS.c.integration_id == integration_id)
    conn.execute(clear)
    counted, last = 0, 0
    while True:
        rows = conn.execute(select(LOGS.c.id, *_TALLIED).where(*scope, LOGS.c.id > last).order_by(LOGS.c.id).limit(batch_size)).all()
        if not rows:
            return counted
        last = rows[-1][0]
        counted += len(rows)
        for stmt, params in _rollup_statements(conn.dialect.name, tally(r[1:] for r in rows)):
            conn.execute(stmt, params)


async def rebuild_rollups(session_or_conn: AsyncSession | AsyncConnection, integration_id: int | None = None, *, batch_size: int = 50_000) -> int:
    """:func:`rebuild_rollups_sync` for an async session or connection (in its transaction).

    Needed only after rows were written around :class:`ActivityWriter` (a bulk load, a
    restore, a hand edit); the writer and :func:`prune` keep the rollup right themselves."""
    return await session_or_conn.run_sync(rebuild_rollups_sync, integration_id, batch_size=batch_size)


# --- writing ---------------------------------------------------------------------------

_DEFAULTS: dict[str, Any] = {"kind": "call", "request_data": None, "response_data": None, "error_message": None, "duration_ms": 0}
_FIELDS = ("integration_id", "kind", "action", "status", "request_data", "response_data", "error_message", "duration_ms", "created_at")


def _stored(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every column the insert names (an executemany needs the same keys in each)."""
    values = {f: row.get(f, _DEFAULTS.get(f)) for f in _FIELDS}
    if values["created_at"] is None:
        values["created_at"] = utcnow()
    return values


_INSERT_LOGS = insert(LOGS)


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
        await self._queue.put(item)
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
            await _apply(conn, tally([_as_tallied(values)]))
            return row_id

    async def finish_pending(self, row_id: int, values: Mapping[str, Any]) -> None:
        """Complete a PENDING row with ``values``; the rollup moves the call from pending
        to its outcome in the same transaction."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            before = (await conn.execute(select(*_TALLIED).where(LOGS.c.id == row_id).with_for_update())).first()
            done = await conn.execute(update(LOGS).where(LOGS.c.id == row_id).values(**values))
            # No row updated (pruned, or its integration deleted meanwhile): nothing to move.
            if before is not None and done.rowcount:
                after = _as_tallied({**before._mapping, **values})
                await _apply(conn, _difference(tally([after]), tally([before])))
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
        changes = tally(_as_tallied(v) for v in values)
        async with self._sessions.begin() as session:
            conn = await session.connection()
            await conn.execute(_INSERT_LOGS, values)
            await _apply(conn, changes)
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


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogQuery:
    status: str | None = None
    action: str | None = None
    since: datetime | None = None
    limit: int = 50
    cursor: str | None = None


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        row_id = int(value)
        if kind != "id" or not 0 < row_id < 2**63:
            raise ValueError
        return row_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor this API returned (use nextCursor from the previous page)", details={"field": "cursor"}) from None


def log_to_json(row: IntegrationLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "action": row.action,
        "status": row.status,
        "requestData": row.request_data,
        "responseData": row.response_data,
        "errorMessage": row.error_message,
        "durationMs": row.duration_ms,
        "createdAt": row.created_at.isoformat().replace("+00:00", "Z"),
    }


async def list_logs(session: AsyncSession, integration_id: int, query: LogQuery) -> dict[str, Any]:
    conditions = [IntegrationLog.integration_id == integration_id]
    if query.status:
        conditions.append(IntegrationLog.status == query.status)
    if query.action:
        conditions.append(IntegrationLog.action == query.action)
    if query.since:
        conditions.append(IntegrationLog.created_at >= query.since)
    if query.cursor:
        conditions.append(IntegrationLog.id < decode_cursor(query.cursor))
    stmt = select(IntegrationLog).where(and_(*conditions)).order_by(IntegrationLog.id.desc()).limit(query.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "items": [log_to_json(r) for r in rows],
        "nextCursor": encode_cursor(rows[-1].id) if more and rows else None,
    }


def period_label(days: int) -> str:
    return f"Last {days} day" + ("" if days == 1 else "s")


def percent(part: int, whole: int) -> str:
    return f"{(100.0 * part / whole) if whole else 0.0:.2f}%"


@dataclass(frozen=True)
class _Window:
    """How a window starting at ``since`` is read: rollup hours from ``first_hour`` on,
    plus (``sign`` +1) or less (``sign`` -1) the raw call rows in ``[raw_from, raw_to)``.

    The hour the window starts in is read from whichever side of ``since`` holds less of
    it: the rows after ``since`` are added to the later hours, or the whole hour is taken
    from the rollup and the rows before ``since`` taken away. Either way the result is
    exact, and at most half an hour of raw rows is read."""

    first_hour: datetime
    raw_from: datetime
    raw_to: datetime
    sign: int

    @classmethod
    def starting(cls, since: datetime) -> _Window:
        start = hour_of(since)
        if since == start:
            return cls(start, since, since, 0)
        if since - start < HOUR / 2:
            return cls(start, start, since, -1)
        return cls(start + HOUR, since, start + HOUR, 1)

    def raw_calls(self) -> list[Any]:
        return [IntegrationLog.kind == "call", IntegrationLog.created_at >= self.raw_from, IntegrationLog.created_at < self.raw_to]


def _pick(sorted_counts: Sequence[tuple[int, int]], total: int, q: float) -> int:
    """The smallest value whose cumulative count reaches rank ceil(q * total): what
    PostgreSQL's ``percentile_disc(q)`` answers."""
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, n in sorted_counts:
        seen += n
        if seen >= rank:
            return value
    return sorted_counts[-1][0] if sorted_counts else 0


async def stats(
    session: AsyncSession, integration_id: int, days: int, *, now: datetime | None = None, exact_up_to: int = EXACT_PERCENTILES_UP_TO
) -> dict[str, Any]:
    """The statistics of one integration over the window ``[now - days, now]``.

    Whole hours come from the rollup and the hour the window starts in is completed from
    raw rows (see :class:`_Window`), so every figure but the percentiles is exact. p50/p95 are exact while the window holds at most
    ``exact_up_to`` calls, and otherwise estimated from the duration buckets (within 5%;
    ``percentilesEstimated`` says which)."""
    since = (now or utcnow()) - timedelta(days=days)
    window = _Window.starting(since)
    per_action: dict[str, list[int]] = {}  # action -> [succeeded, failed, pending, total_ms]
    buckets: Counter[int] = Counter()

    def add(action: str, bucket: int, counts: Sequence[int], sign: int = 1) -> None:
        acc = per_action.setdefault(action, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            acc[i] += sign * int(n or 0)
        buckets[bucket] += sign * sum(int(n or 0) for n in counts[:3])

    h = ActivityHour
    hours = await session.execute(
        select(h.action, h.bucket, func.sum(h.succeeded), func.sum(h.failed), func.sum(h.pending), func.sum(h.total_ms))
        .where(h.integration_id == integration_id, h.hour >= window.first_hour)
        .group_by(h.action, h.bucket)
    )
    for action, bucket, *counts in hours.all():
        add(action, bucket, counts)
    if window.sign:
        lg = IntegrationLog
        edge = await session.execute(
            select(lg.action, lg.status, lg.duration_ms, func.count())
            .where(lg.integration_id == integration_id, *window.raw_calls())
            .group_by(lg.action, lg.status, lg.duration_ms)
        )
        for action, status, ms, n in edge.all():
            counts = [0, 0, 0, int(ms) * n]
            counts[_SLOT.get(status, 2)] = n
            add(action, duration_bucket(int(ms)), counts, window.sign)

    total = sum(c[0] + c[1] + c[2] for c in per_action.values())
    ok = sum(c[0] for c in per_action.values())
    failed = sum(c[1] for c in per_action.values())
    estimated = total > exact_up_to
    if total == 0:
        p50 = p95 = 0
    elif estimated:
        ordered = sorted(buckets.items())
        p50, p95 = (bucket_value(_pick(ordered, total, q)) for q in (0.5, 0.95))
    else:
        p50, p95 = await _exact_percentiles(session, integration_id, since, total, (0.5, 0.95))
    breakdown = sorted(((a, c[0] + c[1] + c[2]) for a, c in per_action.items()), key=lambda item: (-item[1], item[0]))
    return {
        "period": period_label(days),
        "totalRequests": total,
        "successfulRequests": ok,
        "failedRequests": failed,
        "successRate": percent(ok, total),
        "averageDuration": round(sum(c[3] for c in per_action.values()) / total) if total else 0,
        "p50Duration": p50,
        "p95Duration": p95,
        "percentilesEstimated": estimated,
        "actionBreakdown": [{"action": a, "count": n} for a, n in breakdown if n],
    }


async def _exact_percentiles(session: AsyncSession, integration_id: int, since: datetime, total: int, quantiles: Sequence[float]) -> list[int]:
    lg = IntegrationLog
    rows = await session.execute(
        select(lg.duration_ms, func.count())
        .where(lg.integration_id == integration_id, lg.kind == "call", lg.created_at >= since)
        .group_by(lg.duration_ms)
        .order_by(lg.duration_ms)
    )
    ordered = [(int(ms), int(n)) for ms, n in rows.all()]
    return [_pick(ordered, total, q) for q in quantiles]


async def daily(session: AsyncSession, integration_id: int, days: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Requests per UTC day over the last ``days`` days, successes against failures,
    every day present (zeros included) so a chart needs no gap-filling. UTC days are whole
    hours, so this reads the rollup alone."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    h = ActivityHour
    rows = await session.execute(
        select(h.hour, func.sum(h.succeeded), func.sum(h.failed))
        .where(h.integration_id == integration_id, h.hour >= since)
        .group_by(h.hour)
    )
    found: dict[str, list[int]] = {}
    for hour, ok, bad in rows.all():
        day = found.setdefault(hour.date().isoformat(), [0, 0])
        day[0] += int(ok or 0)
        day[1] += int(bad or 0)
    series = []
    for offset in range(days):
        key = (first + timedelta(days=offset)).isoformat()
        ok, bad = found.get(key, (0, 0))
        series.append({"date": key, "successful": ok, "failed": bad})
    return {"period": period_label(days), "days": series}


async def summaries(session: AsyncSession, integration_ids: Sequence[int], days: int = 7, *, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Total and success counts for many integrations (for list views): one query over
    the rollup, one over the raw rows of part of the hour the window starts in."""
    if not integration_ids:
        return {}
    window = _Window.starting((now or utcnow()) - timedelta(days=days))
    found: dict[int, list[int]] = {iid: [0, 0] for iid in integration_ids}
    h = ActivityHour
    parts = [(
        select(h.integration_id, func.sum(h.succeeded + h.failed + h.pending), func.sum(h.succeeded))
        .where(h.integration_id.in_(integration_ids), h.hour >= window.first_hour)
        .group_by(h.integration_id),
        1,
    )]
    if window.sign:
        lg = IntegrationLog
        parts.append((
            select(lg.integration_id, func.count(), func.sum(case((lg.status == SUCCESS, 1), else_=0)))
            .where(lg.integration_id.in_(integration_ids), *window.raw_calls())
            .group_by(lg.integration_id),
            window.sign,
        ))
    for stmt, sign in parts:
        for iid, n, ok in (await session.execute(stmt)).all():
            found[iid][0] += sign * int(n or 0)
            found[iid][1] += sign * int(ok or 0)
    return {
        iid: {"period": period_label(days), "totalRequests": n, "successRate": percent(ok, n)}
        for iid, (n, ok) in ((i, found[i]) for i in integration_ids)
    }


async def prune(session: AsyncSession, older_than: datetime) -> int:
    """Delete activity rows created before ``older_than``, and their share of the rollup.

    Rollup hours that end at or before the cutoff go with their rows. In the hour the
    cutoff falls in, the deleted rows are subtracted from that hour's counts, so the
    statistics always describe exactly the rows that remain. Returns the rows deleted."""
    edge = hour_of(older_than)
    deleted = int((await session.execute(delete(LOGS).where(LOGS.c.created_at < edge))).rowcount or 0)
    if older_than > edge:
        gone = (await session.execute(delete(LOGS).where(LOGS.c.created_at >= edge, LOGS.c.created_at < older_than).returning(*_TALLIED))).all()
        deleted += len(gone)
        conn = await session.connection()
        await _apply(conn, {key: [-n for n in counts] for key, counts in tally(gone).items()})
    await session.execute(delete(ROLLUP).where(ROLLUP.c.hour < edge))
    return deleted

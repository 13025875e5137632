"""Activity: the record of every upstream call, and the queries over it.

Writes are buffered. A request hands its row to :class:`ActivityWriter` and goes on; a
background task inserts rows in batches every ``flush_interval``. The buffer is bounded:
when the database falls behind, :meth:`ActivityWriter.record` waits for room instead of
dropping rows. Shutdown drains the buffer. Reads call :meth:`flush` first, so a caller
always sees its own calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, func, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import metrics
from .errors import BadRequest
from .models import IntegrationLog, utcnow

log = logging.getLogger("hub.activity")

SUCCESS, FAILED, PENDING = "SUCCESS", "FAILED", "PENDING"
LOG_STATUSES = (SUCCESS, FAILED, PENDING)


class ActivityWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        buffer_limit: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._interval = flush_interval
        self._batch = batch_size
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=buffer_limit)
        self._task: asyncio.Task[None] | None = None
        self.written = 0

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
        metrics.ACTIVITY_BUFFERED.set(self._queue.qsize())

    async def start_pending(self, row: Mapping[str, Any]) -> int:
        """Write a PENDING row now (not buffered: it must be visible while the work runs)."""
        values = {"created_at": utcnow(), "kind": "call", **row, "status": PENDING}
        async with self._sessions.begin() as session:
            result = await session.execute(insert(IntegrationLog).values(**values).returning(IntegrationLog.id))
            return int(result.scalar_one())

    async def finish_pending(self, row_id: int, values: Mapping[str, Any]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(IntegrationLog).where(IntegrationLog.id == row_id).values(**values))
        self.written += 1
        metrics.ACTIVITY_WRITTEN.inc()

    async def flush(self) -> None:
        """Return once every row queued before the call is in the database."""
        if self._task is None:
            await self._drain_now()
            return
        await self._queue.join()

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
            for _ in batch:
                self._queue.task_done()

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
            for _ in batch:
                self._queue.task_done()

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        delay = 0.1
        while True:
            try:
                await self._insert(batch)
                return
            except asyncio.CancelledError:
                raise
            except (OperationalError, InterfaceError, OSError, asyncio.TimeoutError) as exc:
                # The database is away: keep the rows and try again; requests wait on the
                # full buffer meanwhile (back-pressure), nothing is dropped.
                log.error("activity write of %d rows failed (%s); retrying in %.1fs", len(batch), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:
                # Something in the rows themselves: write them one by one so a single bad
                # row cannot block everyone's activity, and keep even that row, stripped.
                log.error("activity batch refused (%s); writing its %d rows one by one", type(exc).__name__, len(batch))
                for row in batch:
                    await self._write_alone(row)
                return

    async def _write_alone(self, row: dict[str, Any]) -> None:
        try:
            await self._insert([row])
        except (OperationalError, InterfaceError, OSError, asyncio.TimeoutError):
            await self._write([row])
        except Exception as exc:
            stripped = {**row, "request_data": None, "response_data": None}
            stripped["error_message"] = ((row.get("error_message") or "") + f" [payload not storable: {type(exc).__name__}]").strip()
            await self._write([stripped])

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(insert(IntegrationLog), rows)
        self.written += len(rows)
        metrics.ACTIVITY_WRITTEN.inc(len(rows))
        metrics.ACTIVITY_BUFFERED.set(self._queue.qsize())


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


async def stats(session: AsyncSession, integration_id: int, days: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The statistics of one integration over ``days``, computed by the database."""
    since = (now or utcnow()) - timedelta(days=days)
    scope = and_(
        IntegrationLog.integration_id == integration_id,
        IntegrationLog.kind == "call",
        IntegrationLog.created_at >= since,
    )
    totals = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((IntegrationLog.status == SUCCESS, 1), else_=0)), 0),
                func.coalesce(func.sum(case((IntegrationLog.status == FAILED, 1), else_=0)), 0),
                func.avg(IntegrationLog.duration_ms),
            ).where(scope)
        )
    ).one()
    total, ok, failed, avg = int(totals[0]), int(totals[1]), int(totals[2]), totals[3]
    breakdown = (
        await session.execute(
            select(IntegrationLog.action, func.count().label("n"))
            .where(scope)
            .group_by(IntegrationLog.action)
            .order_by(func.count().desc(), IntegrationLog.action)
        )
    ).all()
    p50, p95 = await _percentiles(session, scope, total, (0.5, 0.95))
    return {
        "period": period_label(days),
        "totalRequests": total,
        "successfulRequests": ok,
        "failedRequests": failed,
        "successRate": percent(ok, total),
        "averageDuration": round(float(avg)) if avg is not None else 0,
        "p50Duration": p50,
        "p95Duration": p95,
        "actionBreakdown": [{"action": a, "count": int(n)} for a, n in breakdown],
    }


async def _percentiles(session: AsyncSession, scope: Any, total: int, quantiles: Sequence[float]) -> list[int]:
    if total == 0:
        return [0 for _ in quantiles]
    if session.bind.dialect.name == "postgresql":
        cols = [func.percentile_disc(q).within_group(IntegrationLog.duration_ms.asc()) for q in quantiles]
        row = (await session.execute(select(*cols).where(scope))).one()
        return [int(v or 0) for v in row]
    # SQLite has no percentile aggregate: read the nth smallest duration directly.
    out = []
    for q in quantiles:
        offset = max(0, min(total - 1, int(q * total + 0.999999) - 1))
        value = await session.scalar(
            select(IntegrationLog.duration_ms).where(scope).order_by(IntegrationLog.duration_ms).limit(1).offset(offset)
        )
        out.append(int(value or 0))
    return out


async def daily(session: AsyncSession, integration_id: int, days: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Requests per UTC day over the last ``days`` days, successes against failures,
    every day present (zeros included) so a chart needs no gap-filling."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    if session.bind.dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", IntegrationLog.created_at), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", IntegrationLog.created_at)
    rows = await session.execute(
        select(
            day.label("day"),
            func.sum(case((IntegrationLog.status == SUCCESS, 1), else_=0)),
            func.sum(case((IntegrationLog.status == FAILED, 1), else_=0)),
        )
        .where(IntegrationLog.integration_id == integration_id, IntegrationLog.kind == "call", IntegrationLog.created_at >= since)
        .group_by(day)
    )
    found = {d: (int(ok or 0), int(bad or 0)) for d, ok, bad in rows.all()}
    series = []
    for offset in range(days):
        key = (first + timedelta(days=offset)).isoformat()
        ok, bad = found.get(key, (0, 0))
        series.append({"date": key, "successful": ok, "failed": bad})
    return {"period": period_label(days), "days": series}


async def summaries(session: AsyncSession, integration_ids: Sequence[int], days: int = 7) -> dict[int, dict[str, Any]]:
    """Total and success counts for many integrations in one query (for list views)."""
    if not integration_ids:
        return {}
    since = utcnow() - timedelta(days=days)
    rows = await session.execute(
        select(
            IntegrationLog.integration_id,
            func.count(),
            func.sum(case((IntegrationLog.status == SUCCESS, 1), else_=0).cast(Integer)),
        )
        .where(
            IntegrationLog.integration_id.in_(integration_ids),
            IntegrationLog.kind == "call",
            IntegrationLog.created_at >= since,
        )
        .group_by(IntegrationLog.integration_id)
    )
    found = {iid: (int(n), int(ok or 0)) for iid, n, ok in rows.all()}
    return {
        iid: {
            "period": period_label(days),
            "totalRequests": found.get(iid, (0, 0))[0],
            "successRate": percent(found.get(iid, (0, 0))[1], found.get(iid, (0, 0))[0]),
        }
        for iid in integration_ids
    }


async def prune(session: AsyncSession, older_than: datetime) -> int:
    from sqlalchemy import delete

    result = await session.execute(delete(IntegrationLog).where(IntegrationLog.created_at < older_than))
    return int(result.rowcount or 0)

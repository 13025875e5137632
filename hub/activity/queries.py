"""Reading activity: log pages (keyset cursor), statistics and daily counts, summaries
for the integration list, and retention.

:func:`stats` adds up the whole hours of its window from the rollup and reads raw rows
only for at most half of the hour the window starts in, so its counts, rates, averages
and breakdown are exact. Percentiles are exact too while the window holds at most
:data:`EXACT_PERCENTILES_UP_TO` calls; above that they are read from the duration
buckets, within 5% of the exact value.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, CompoundSelect, Select, Table, and_, any_, case, delete, func, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..errors import ValidationFailed
from ..store.models import IntegrationLog, utcnow

from .partitions import drop_months_before
from .rollup import (
    COUNTS,
    DAILY,
    DAYS,
    EXACT_PERCENTILES_UP_TO,
    HOUR,
    LOGS,
    ROLLUP,
    SLOT,
    SUCCESS,
    TALLIED,
    apply_changes,
    bucket_value,
    day_of,
    duration_bucket,
    hour_of,
    next_day,
    tally,
)

log = logging.getLogger("hub.activity")


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
        raise ValidationFailed("cursor: not a cursor this API returned (use nextCursor from the previous page)", details={"field": "cursor"}) from None


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


def _integration_rows(session: AsyncSession, integration_id: int) -> ColumnElement[bool]:
    """The condition "rows of this integration", shaped so the planner walks its index.

    On PostgreSQL a plain ``integration_id = :id`` with ``ORDER BY id DESC LIMIT n`` lets the
    planner prefer the primary key backwards, betting that the integration's rows are spread
    evenly; when other integrations' rows lie after them (a bulk import, a restore, one busy
    neighbour) it then filters past every one of those. Written as ``= ANY(ARRAY[:id])`` the
    column is no longer a constant to the planner, so ``ORDER BY integration_id, id`` can be
    served only by an index that starts with the integration: the scan stays inside its rows
    whatever the layout. tests/test_activity_plans.py checks the plan on PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return IntegrationLog.integration_id == any_(postgresql.array([integration_id], type_=BigInteger))
    return IntegrationLog.integration_id == integration_id


def logs_statement(session: AsyncSession, integration_id: int, query: LogQuery) -> Select[tuple[IntegrationLog]]:
    """The SELECT behind one logs page (newest first, one row more than the page to tell
    whether another follows)."""
    conditions = [_integration_rows(session, integration_id)]
    if query.status:
        conditions.append(IntegrationLog.status == query.status)
    if query.action:
        conditions.append(IntegrationLog.action == query.action)
    if query.since:
        conditions.append(IntegrationLog.created_at >= query.since)
    if query.cursor:
        conditions.append(IntegrationLog.id < decode_cursor(query.cursor))
    order = (IntegrationLog.integration_id.desc(), IntegrationLog.id.desc())
    return select(IntegrationLog).where(and_(*conditions)).order_by(*order).limit(query.limit + 1)


async def list_logs(session: AsyncSession, integration_id: int, query: LogQuery) -> dict[str, Any]:
    rows = list((await session.scalars(logs_statement(session, integration_id, query))).all())
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

    def rolled_up(self, shape: Callable[[Table], Select[Any]]) -> CompoundSelect:
        """``shape`` (the columns, filters and grouping of one rollup table) over the window's
        rollup part: the hours from ``first_hour`` to the next UTC midnight, then whole days.
        The two parts cover disjoint time, so a caller adds up their rows as they come."""
        first_day = next_day(self.first_hour)
        return union_all(
            shape(ROLLUP).where(ROLLUP.c.hour >= self.first_hour, ROLLUP.c.hour < first_day),
            shape(DAYS).where(DAYS.c.day >= first_day),
        )


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


def rollup_sums_statement(integration_id: int, since: datetime) -> CompoundSelect:
    """The rollup part of :func:`stats` for the window starting at ``since``: per action and
    duration bucket, the counts and summed durations of the window's whole hours and days
    (a key may come twice, once per level)."""

    def shape(t: Table) -> Select[Any]:
        return (
            select(t.c.action, t.c.bucket, func.sum(t.c.succeeded), func.sum(t.c.failed), func.sum(t.c.pending), func.sum(t.c.total_ms))
            .where(t.c.integration_id == integration_id)
            .group_by(t.c.action, t.c.bucket)
        )

    return _Window.starting(since).rolled_up(shape)


async def stats(
    session: AsyncSession, integration_id: int, days: int, *, now: datetime | None = None, exact_up_to: int = EXACT_PERCENTILES_UP_TO
) -> dict[str, Any]:
    """The statistics of one integration over the window ``[now - days, now]``.

    Whole days and hours come from the rollup and the hour the window starts in is completed
    from raw rows (see :class:`_Window`), so every figure but the percentiles is exact. p50/p95 are exact while the window holds at most
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

    for action, bucket, *counts in (await session.execute(rollup_sums_statement(integration_id, since))).all():
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
            counts[SLOT.get(status, 2)] = n
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
    every day present (zeros included) so a chart needs no gap-filling. This reads the
    daily rollup alone."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    d = DAYS.c
    rows = await session.execute(
        select(d.day, func.sum(d.succeeded), func.sum(d.failed)).where(d.integration_id == integration_id, d.day >= since).group_by(d.day)
    )
    found = {day.date().isoformat(): (int(ok or 0), int(bad or 0)) for day, ok, bad in rows.all()}
    series = []
    for offset in range(days):
        key = (first + timedelta(days=offset)).isoformat()
        ok, bad = found.get(key, (0, 0))
        series.append({"date": key, "successful": ok, "failed": bad})
    return {"period": period_label(days), "days": series}


async def summaries(session: AsyncSession, integration_ids: Sequence[int], days: int = 7, *, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Total and success counts for many integrations (for list views): one query over
    the rollup (days and hours), one over the raw rows of part of the hour the window starts in."""
    if not integration_ids:
        return {}
    window = _Window.starting((now or utcnow()) - timedelta(days=days))
    found: dict[int, list[int]] = {iid: [0, 0] for iid in integration_ids}

    def shape(t: Table) -> Select[Any]:
        return (
            select(t.c.integration_id, func.sum(t.c.succeeded + t.c.failed + t.c.pending), func.sum(t.c.succeeded))
            .where(t.c.integration_id.in_(integration_ids))
            .group_by(t.c.integration_id)
        )

    parts: list[tuple[Any, int]] = [(window.rolled_up(shape), 1)]
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

    Rollup hours and days that end at or before the cutoff go with their rows. The hours
    deleted from the day the cutoff falls in are subtracted from that day's row, and in the
    hour the cutoff falls in, the deleted rows are subtracted from that hour's and that
    day's counts, so the statistics always describe exactly the rows that remain. Returns
    the rows deleted.

    Each subtraction is of what this call itself deleted (``RETURNING``), so two prunes at
    once never take the same rows away twice."""
    edge = hour_of(older_than)
    conn = await session.connection()
    h = ROLLUP.c
    hours_gone = (
        await session.execute(
            delete(ROLLUP).where(h.hour >= day_of(edge), h.hour < edge).returning(h.integration_id, h.hour, h.action, h.bucket, *(h[c] for c in COUNTS))
        )
    ).all()
    await apply_changes(conn, {(iid, hour, action, bucket): [-n for n in counts] for iid, hour, action, bucket, *counts in hours_gone}, (DAILY,))
    deleted = int((await session.execute(delete(LOGS).where(LOGS.c.created_at < edge))).rowcount or 0)
    if older_than > edge:
        gone = (await session.execute(delete(LOGS).where(LOGS.c.created_at >= edge, LOGS.c.created_at < older_than).returning(*TALLIED))).all()
        deleted += len(gone)
        await apply_changes(conn, {key: [-n for n in counts] for key, counts in tally(gone).items()})
    await session.execute(delete(ROLLUP).where(h.hour < edge))
    await session.execute(delete(DAYS).where(DAYS.c.day < day_of(edge)))
    return deleted


@dataclass(frozen=True)
class Pruned:
    rows: int
    partitions: list[str]


async def prune_expired(sessions: async_sessionmaker[AsyncSession], older_than: datetime) -> Pruned:
    """Retention: every activity row created before ``older_than`` goes, with its share of
    the rollup, in two transactions that each leave the statistics matching the rows.

    On a partitioned PostgreSQL table the months wholly before ``older_than``'s hour are
    detached and dropped first (:func:`~hub.activity.partitions.drop_months_before`: no
    row-by-row delete, no dead rows to vacuum); then :func:`prune` deletes the rest, the
    older part of the month the cutoff falls in. On SQLite it is :func:`prune` alone."""
    async with sessions.begin() as session:
        dropped = await drop_months_before(await session.connection(), hour_of(older_than))
    async with sessions.begin() as session:
        deleted = await prune(session, older_than)
    return Pruned(dropped.rows + deleted, dropped.partitions)

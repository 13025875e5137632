"""The activity rollup, at two levels: per integration, UTC hour (``activity_hourly``) or
UTC day (``activity_daily``), action and duration bucket, the calls that succeeded, failed
or are pending, and their summed duration.

The writer keeps both levels in the same transaction as the rows it inserts, so statistics
add up days and hours instead of reading every row: a 90-day window reads at most 90 days
of daily rows and one day's worth of hours. Durations fall in buckets about 10% wide
(:func:`duration_bucket`), which is what bounds an estimated percentile's error.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from ..store.models import ActivityDay, ActivityHour, IntegrationLog

log = logging.getLogger("hub.activity")

SUCCESS, FAILED, PENDING = "SUCCESS", "FAILED", "PENDING"
LOG_STATUSES = (SUCCESS, FAILED, PENDING)

# Above this many calls in a window, p50/p95 come from the duration buckets instead of a
# pass over the raw rows (which costs about a millisecond per few thousand rows).
EXACT_PERCENTILES_UP_TO = 20_000

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LOGS = IntegrationLog.__table__
ROLLUP = ActivityHour.__table__
DAYS = ActivityDay.__table__


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


def day_of(moment: datetime) -> datetime:
    """The UTC midnight that starts the day ``moment`` falls in."""
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(moment: datetime) -> datetime:
    """The first UTC midnight at or after ``moment``."""
    start = day_of(moment)
    return start if start == moment else start + DAY


# The columns of a log row the rollup is made from, in the order tally() reads them.
TALLIED = (LOGS.c.integration_id, LOGS.c.kind, LOGS.c.created_at, LOGS.c.action, LOGS.c.status, LOGS.c.duration_ms)
COUNTS = ("succeeded", "failed", "pending", "total_ms")
SLOT = {SUCCESS: 0, FAILED: 1}  # any other status is counted as pending

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
        counts[SLOT.get(status, 2)] += 1
        counts[3] += ms
    return out


def as_tallied(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in TALLIED)


class Level:
    """One rollup table: its period column, how a moment maps to its period, and the
    statements that add to it, take from it and drop the rows a subtraction empties."""

    def __init__(self, table: Any, period: str, period_of: Callable[[datetime], datetime]) -> None:
        self.table = table
        self.period = period
        self.period_of = period_of
        self.key = ("integration_id", period, "action", "bucket")
        self._upserts = {d: self._upsert(d) for d in ("postgresql", "sqlite")}
        matches = and_(*(table.c[c] == self._bind(c) for c in self.key))
        # Taking away only ever touches a row that exists: what was never counted is not subtracted.
        self.subtract = update(table).where(matches).values({c: table.c[c] + self._bind(c) for c in COUNTS})
        self.drop_empty = delete(table).where(matches, table.c.succeeded == 0, table.c.failed == 0, table.c.pending == 0)

    def _bind(self, column: str) -> Any:
        return bindparam("p_" + column, type_=self.table.c[column].type)

    def _upsert(self, dialect: str) -> Any:
        if dialect not in ("postgresql", "sqlite"):
            raise NotImplementedError(f"the activity rollup supports PostgreSQL and SQLite, not {dialect}")
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(self.table).values({c: self._bind(c) for c in self.key + COUNTS})
        return ins.on_conflict_do_update(index_elements=list(self.key), set_={c: self.table.c[c] + ins.excluded[c] for c in COUNTS})

    def upsert(self, dialect: str) -> Any:
        return self._upserts[dialect] if dialect in self._upserts else self._upsert(dialect)

    def regroup(self, changes: Mapping[Key, Sequence[int]]) -> Mapping[Key, Sequence[int]]:
        """``changes`` (keyed by hour) keyed by this level's period instead, summed."""
        if self.period_of is hour_of:
            return changes
        out: dict[Key, list[int]] = {}
        for (integration_id, hour, action, bucket), counts in changes.items():
            acc = out.setdefault((integration_id, self.period_of(hour), action, bucket), [0, 0, 0, 0])
            for i, n in enumerate(counts):
                acc[i] += n
        return out

    def statements(self, dialect: str, changes: Mapping[Key, Sequence[int]]) -> list[tuple[Any, list[dict[str, Any]]]]:
        steps: list[tuple[Any, list[dict[str, Any]]]] = []
        emptied: list[dict[str, Any]] = []
        upsert = self.upsert(dialect)
        for key in sorted(changes):
            counts = changes[key]
            if not any(counts):
                continue
            keyed = {"p_" + c: v for c, v in zip(self.key, key)}
            params = {**keyed, **{"p_" + c: int(v) for c, v in zip(COUNTS, counts)}}
            stmt = self.subtract if min(counts) < 0 else upsert
            if stmt is self.subtract:
                emptied.append(keyed)
            if steps and steps[-1][0] is stmt:
                steps[-1][1].append(params)
            else:
                steps.append((stmt, [params]))
        if emptied:
            steps.append((self.drop_empty, emptied))
        return steps


HOURLY = Level(ROLLUP, "hour", hour_of)
DAILY = Level(DAYS, "day", day_of)
LEVELS = (HOURLY, DAILY)


def rollup_statements(
    dialect: str, changes: Mapping[Key, Sequence[int]], levels: Sequence[Level] = LEVELS
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The statements that apply ``changes`` (signed counts per hourly key) to every rollup
    level, each with its executemany parameters. The hours go first, then the days, and
    within a level keys go in sorted order, so concurrent writers take their row locks in
    one order and cannot deadlock one another on PostgreSQL."""
    return [step for level in levels for step in level.statements(dialect, level.regroup(changes))]


def difference(after: Mapping[Key, Sequence[int]], before: Mapping[Key, Sequence[int]]) -> dict[Key, list[int]]:
    out = {k: list(v) for k, v in after.items()}
    for key, counts in before.items():
        acc = out.setdefault(key, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            acc[i] -= n
    return out


async def apply_changes(conn: AsyncConnection, changes: Mapping[Key, Sequence[int]], levels: Sequence[Level] = LEVELS) -> None:
    for stmt, params in rollup_statements(conn.dialect.name, changes, levels):
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
        conn.execute(text(f"LOCK TABLE {ROLLUP.name}, {DAYS.name} IN EXCLUSIVE MODE"))
    scope = [LOGS.c.kind == "call"]
    if integration_id is not None:
        scope.append(LOGS.c.integration_id == integration_id)
    for level in LEVELS:
        clear = delete(level.table)
        conn.execute(clear if integration_id is None else clear.where(level.table.c.integration_id == integration_id))
    counted, last = 0, 0
    while True:
        rows = conn.execute(select(LOGS.c.id, *TALLIED).where(*scope, LOGS.c.id > last).order_by(LOGS.c.id).limit(batch_size)).all()
        if not rows:
            return counted
        last = rows[-1][0]
        counted += len(rows)
        for stmt, params in rollup_statements(conn.dialect.name, tally(r[1:] for r in rows)):
            conn.execute(stmt, params)


async def rebuild_rollups(session_or_conn: AsyncSession | AsyncConnection, integration_id: int | None = None, *, batch_size: int = 50_000) -> int:
    """:func:`rebuild_rollups_sync` for an async session or connection (in its transaction).

    Needed only after rows were written around :class:`ActivityWriter` (a bulk load, a
    restore, a hand edit); the writer and :func:`prune` keep the rollup right themselves."""
    return await session_or_conn.run_sync(rebuild_rollups_sync, integration_id, batch_size=batch_size)


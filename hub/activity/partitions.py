"""Monthly partitions of ``integration_logs`` on PostgreSQL (SQLite keeps one table).

Revision ``0007_logs_partitions`` makes the table ``PARTITION BY RANGE (created_at)``; the
hub then keeps one partition per UTC month, named ``integration_logs_pYYYY_MM``, from the
current month to :data:`MONTHS_AHEAD` months ahead, and a default partition,
``integration_logs_default``, that takes any row no month partition covers (a clock far
off, a bulk import of old rows), so an insert never fails for want of a partition.

Every process runs :func:`ensure_partitions` now and then (``hub.core.upkeep``). A
transaction-scoped advisory lock lets one process at a time look and create, so two
processes starting together never race on the same ``CREATE TABLE``.

Retention drops whole months: :func:`drop_months_before` detaches and drops the partitions
that end at or before the cutoff's hour, deletes what the default partition holds before
that moment, and the rollup hours and days of those rows, in one transaction, so the statistics
always describe exactly the rows that remain.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection

from .rollup import DAYS, LOGS, ROLLUP

log = logging.getLogger("hub.activity")

MONTHS_AHEAD = 3
DEFAULT_PARTITION = f"{LOGS.name}_default"
# An arbitrary constant: the advisory lock held while partitions are created or dropped.
PARTITION_LOCK = 0x48554207
# How long making or dropping a partition waits for the brief exclusive lock it takes on the
# table before giving up until the next pass, rather than queueing every activity read and
# write behind it.
LOCK_TIMEOUT = "5s"

_NAME = re.compile(rf"^{LOGS.name}_p(\d{{4}})_(\d{{2}})$")


def month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month ``moment`` falls in."""
    return moment.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return month.replace(year=index // 12, month=index % 12 + 1)


def partition_name(month: datetime) -> str:
    return f"{LOGS.name}_p{month.year:04d}_{month.month:02d}"


def month_of(name: str) -> datetime | None:
    """The month a partition of the hub's naming holds, or None for any other table."""
    found = _NAME.match(name)
    if not found:
        return None
    return datetime(int(found[1]), int(found[2]), 1, tzinfo=timezone.utc)


def _literal(moment: datetime) -> str:
    # Partition bounds cannot be bound parameters; this is the hub's own datetime, never input.
    return "'" + moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "+00'"


async def is_partitioned(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = await conn.scalar(text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": LOGS.name})
    return kind == "p"


async def partitions(conn: AsyncConnection) -> list[str]:
    """The names of ``integration_logs``' partitions (none on SQLite or an unpartitioned table)."""
    if not await is_partitioned(conn):
        return []
    rows = await conn.execute(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = to_regclass(:t) ORDER BY c.relname"),
        {"t": LOGS.name},
    )
    return [r[0] for r in rows]


async def ensure_partitions(conn: AsyncConnection, now: datetime, *, ahead: int = MONTHS_AHEAD, since: datetime | None = None) -> list[str]:
    """Create the month partitions from ``since``'s month (by default ``now``'s) to ``ahead``
    months after ``now``'s, and the default partition, where missing; returns the names
    created. Does nothing on SQLite. Safe to run from many processes at once.

    A month whose rows already went to the default partition (it had no partition of its
    own then) gets them moved into its new partition, in the same transaction."""
    if not await is_partitioned(conn):
        return []
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK})
    # Making a partition locks the table for a moment; behind a long query it would hold
    # every activity read and write up meanwhile. Give up instead: the months are made
    # well ahead, and the next pass tries again.
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    existing = set(await partitions(conn))
    created: list[str] = []
    if DEFAULT_PARTITION not in existing:
        await conn.execute(text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {LOGS.name} DEFAULT"))
        created.append(DEFAULT_PARTITION)
    first, last = month_start(since or now), add_months(month_start(now), ahead)
    month = first
    while month <= last:
        name = partition_name(month)
        if name not in existing:
            await _create_month(conn, month)
            created.append(name)
        month = add_months(month, 1)
    await conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    if created:
        log.info("activity partitions created: %s", ", ".join(created))
    return created


async def _create_month(conn: AsyncConnection, month: datetime) -> None:
    name, lower, upper = partition_name(month), _literal(month), _literal(add_months(month, 1))
    bounds = f"FOR VALUES FROM ({lower}) TO ({upper})"
    in_range = f"created_at >= {lower} AND created_at < {upper}"
    stranded = await conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {in_range})"))
    if not stranded:
        await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {LOGS.name} {bounds}"))
        return
    # PostgreSQL refuses a partition whose rows sit in the default one: take the default
    # out, give the month its table, move the rows over (ids and all) and put it back.
    await conn.execute(text(f"ALTER TABLE {LOGS.name} DETACH PARTITION {DEFAULT_PARTITION}"))
    await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {LOGS.name} {bounds}"))
    moved = await conn.execute(text(f"INSERT INTO {LOGS.name} SELECT * FROM {DEFAULT_PARTITION} WHERE {in_range}"))
    await conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE {in_range}"))
    await conn.execute(text(f"ALTER TABLE {LOGS.name} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT"))
    log.info("moved %d activity rows of %s from the default partition into %s", moved.rowcount or 0, month.strftime("%Y-%m"), name)


@dataclass(frozen=True)
class Dropped:
    partitions: list[str]
    rows: int


async def drop_months_before(conn: AsyncConnection, edge: datetime) -> Dropped:
    """Detach and drop every month partition that ends at or before ``edge`` (an hour
    boundary), with what the default partition holds before the newest such month's end and
    the rollup hours and days before it. Nothing on SQLite or when no month is wholly before ``edge``.

    DETACH takes a brief exclusive lock on the table; this waits for it at most
    :data:`LOCK_TIMEOUT` and otherwise raises, leaving everything as it was."""
    if not await is_partitioned(conn):
        return Dropped([], 0)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PARTITION_LOCK})
    expired = sorted((m, n) for n in await partitions(conn) if (m := month_of(n)) is not None and add_months(m, 1) <= edge)
    if not expired:
        return Dropped([], 0)
    until = add_months(expired[-1][0], 1)
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    rows = 0
    for _, name in expired:
        rows += int(await conn.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
        await conn.execute(text(f"ALTER TABLE {LOGS.name} DETACH PARTITION {name}"))
        await conn.execute(text(f"DROP TABLE {name}"))
    # Rows before ``until`` that are left can only be in the default partition.
    rows += int((await conn.execute(delete(LOGS).where(LOGS.c.created_at < until))).rowcount or 0)
    # A month ends at a UTC midnight, so its hours and days go whole.
    await conn.execute(delete(ROLLUP).where(ROLLUP.c.hour < until))
    await conn.execute(delete(DAYS).where(DAYS.c.day < until))
    await conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    log.info("activity partitions dropped: %s (%d rows)", ", ".join(n for _, n in expired), rows)
    return Dropped([n for _, n in expired], rows)

"""Hourly activity rollup: activity_hourly, filled from the existing integration_logs.

Statistics read whole hours from this table instead of every row of their window; the
activity writer keeps it in step with integration_logs from here on.

Revision ID: 0002
Revises: 0001

Everything this revision needs is in this file, as hub.models and hub.activity had it on
the revision's day: the column types and the recount that fills the table. An upgrade
from 0001 must build the table this revision describes, whatever the live code has
become since, so nothing here may be imported from ``hub``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the backend stores (SQLite: naive
    UTC). The backfill reads ``created_at`` and writes ``hour`` through it."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def upgrade() -> None:
    op.create_table(
        "activity_hourly",
        sa.Column("integration_id", BigId, sa.ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("hour", UTCDateTime, primary_key=True),
        sa.Column("action", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("succeeded", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("pending", sa.Integer, nullable=False),
        sa.Column("total_ms", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("activity_hourly")


# --- the backfill: hub.activity's recount as of this revision ------------------------

_LOGS = sa.table(
    "integration_logs",
    sa.column("id", BigId),
    sa.column("integration_id", BigId),
    sa.column("kind", sa.String(16)),
    sa.column("created_at", UTCDateTime()),
    sa.column("action", sa.String(64)),
    sa.column("status", sa.String(8)),
    sa.column("duration_ms", sa.Integer),
)
_ROLLUP = sa.table(
    "activity_hourly",
    sa.column("integration_id", BigId),
    sa.column("hour", UTCDateTime()),
    sa.column("action", sa.String(64)),
    sa.column("bucket", sa.Integer),
    sa.column("succeeded", sa.Integer),
    sa.column("failed", sa.Integer),
    sa.column("pending", sa.Integer),
    sa.column("total_ms", sa.BigInteger),
)
_KEY = ("integration_id", "hour", "action", "bucket")
_COUNTS = ("succeeded", "failed", "pending", "total_ms")
_SLOT = {"SUCCESS": 0, "FAILED": 1}  # any other status is counted as pending

Key = tuple[int, datetime, str, int]


def _bucket_floors() -> list[int]:
    # Below 20 ms every duration is its own bucket; above, a bucket [lo, lo + lo // 10)
    # is a tenth of its floor wide, up to the 32-bit column's range.
    floors = [0]
    while floors[-1] < 2**31:
        floors.append(floors[-1] + max(1, floors[-1] // 10))
    return floors


_FLOORS = _bucket_floors()


def duration_bucket(duration_ms: int) -> int:
    if duration_ms < 20:
        return max(0, duration_ms)
    return _FLOORS[bisect_right(_FLOORS, duration_ms) - 1]


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def tally(rows: Iterable[Sequence[Any]]) -> dict[Key, list[int]]:
    """[succeeded, failed, pending, total_ms] per rollup key of ``rows`` (integration_id,
    kind, created_at, action, status, duration_ms); only calls count."""
    out: dict[Key, list[int]] = {}
    for integration_id, kind, created_at, action, status, duration_ms in rows:
        if kind != "call":
            continue
        ms = int(duration_ms or 0)
        counts = out.setdefault((integration_id, hour_of(created_at), action, duration_bucket(ms)), [0, 0, 0, 0])
        counts[_SLOT.get(status, 2)] += 1
        counts[3] += ms
    return out


def _add(conn: Connection, tallied: dict[Key, list[int]]) -> None:
    """Add ``tallied`` to the rollup: a key an earlier batch stored gets these counts on top."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the activity rollup supports PostgreSQL and SQLite, not {dialect}")
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_ROLLUP)
    upsert = ins.on_conflict_do_update(index_elements=list(_KEY), set_={c: _ROLLUP.c[c] + ins.excluded[c] for c in _COUNTS})
    params = [{**dict(zip(_KEY, key)), **dict(zip(_COUNTS, tallied[key]))} for key in sorted(tallied)]
    if params:
        conn.execute(upsert, params)


def backfill(conn: Connection, *, batch_size: int = 50_000) -> int:
    """Recount activity_hourly from every call row of integration_logs, in the caller's
    transaction; returns the rows counted. Reads by id in batches, so memory stays flat
    however many rows an upgraded hub already holds. As the live recount did on this
    revision's day, it keeps writers out (on PostgreSQL a table lock until commit; on
    SQLite the first statement takes the write lock) and starts from an empty table."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("LOCK TABLE activity_hourly IN EXCLUSIVE MODE"))
    conn.execute(sa.delete(_ROLLUP))
    columns = [_LOGS.c[c] for c in ("integration_id", "kind", "created_at", "action", "status", "duration_ms")]
    counted, last = 0, 0
    while True:
        batch = sa.select(_LOGS.c.id, *columns).where(_LOGS.c.kind == "call", _LOGS.c.id > last).order_by(_LOGS.c.id).limit(batch_size)
        rows = conn.execute(batch).all()
        if not rows:
            return counted
        last = rows[-1][0]
        counted += len(rows)
        _add(conn, tally(r[1:] for r in rows))

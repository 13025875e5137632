"""Daily activity rollup: activity_daily, filled from activity_hourly.

Statistics over weeks read days from this table instead of every hour of their window (a
busy integration has about 3,400 hourly rows a day). The activity writer keeps both levels
in step from here on; this revision adds up the hours that exist into days, in one
statement, holding writers off the hourly table until it commits (on PostgreSQL; on
SQLite the statement takes the database's write lock). On PostgreSQL both rollup tables
are set to plan no parallel workers (see ``upgrade``).

A hub of an older version still writing after this upgrade adds to the hours only; run
``hub logs recount`` once every process runs this version (docs/operations.md).

Revision ID: 0011_activity_daily
Revises: 0010_webhook_routes

Everything this revision needs is in this file; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011_activity_daily"
down_revision = "0010_webhook_routes"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the backend stores (SQLite: naive UTC)."""

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


# The UTC midnight of an hour, as each backend stores it: PostgreSQL a timestamptz,
# SQLite the text SQLAlchemy writes for a naive datetime ("YYYY-MM-DD HH:MM:SS.ffffff").
_DAY_OF_HOUR = {
    "postgresql": "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "substr(hour, 1, 10) || ' 00:00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "activity_daily",
        sa.Column("integration_id", BigId, sa.ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("day", UTCDateTime, primary_key=True),
        sa.Column("action", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("succeeded", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("pending", sa.Integer, nullable=False),
        sa.Column("total_ms", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    backfill(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        # Statistics read a few thousand rollup rows of one integration by its key: about a
        # millisecond of work, to which a parallel plan adds 5 to 15 ms of starting workers
        # (seen in bench/p3scale.py's plans at 1 M to 100 M rows). No query of these tables
        # gains from workers, so none are planned.
        for table in ("activity_hourly", "activity_daily"):
            op.execute(f"ALTER TABLE {table} SET (parallel_workers = 0)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE activity_hourly RESET (parallel_workers)")
    op.drop_table("activity_daily")


def backfill(conn: sa.engine.Connection) -> None:
    """Fill activity_daily with the sum of activity_hourly's rows per day."""
    dialect = conn.dialect.name
    if dialect not in _DAY_OF_HOUR:
        raise NotImplementedError(f"the activity rollup supports PostgreSQL and SQLite, not {dialect}")
    if dialect == "postgresql":
        conn.execute(sa.text("LOCK TABLE activity_hourly IN SHARE MODE"))
    day = _DAY_OF_HOUR[dialect]
    conn.execute(sa.text(
        "INSERT INTO activity_daily (integration_id, day, action, bucket, succeeded, failed, pending, total_ms) "
        f"SELECT integration_id, {day}, action, bucket, sum(succeeded), sum(failed), sum(pending), sum(total_ms) "
        f"FROM activity_hourly GROUP BY integration_id, {day}, action, bucket"
    ))

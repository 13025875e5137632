"""Hourly activity rollup: activity_hourly, filled from the existing integration_logs.

Statistics read whole hours from this table instead of every row of their window; the
activity writer keeps it in step with integration_logs from here on.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from hub.models import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


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
    # The backfill reads integration_logs in batches by id and adds each batch's counts,
    # so memory stays flat however many rows an upgraded hub already holds. It uses the
    # live recount, which matches this revision's table. A later revision that changes
    # the rollup's columns or buckets must first copy today's recount into this file, so
    # that an upgrade from 0001 still runs the code this table was made for.
    from hub.activity import rebuild_rollups_sync

    rebuild_rollups_sync(op.get_bind())


def downgrade() -> None:
    op.drop_table("activity_hourly")

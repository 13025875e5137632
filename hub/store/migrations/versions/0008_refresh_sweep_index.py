"""A partial index for the background refresh sweep: ACTIVE integrations holding a refresh
token, by the expiry of their access token.

Every process's sweep asks, every ``refresh.interval_seconds``, for the ACTIVE rows with a
refresh token whose access token runs out soonest. Without an index that is a scan of the
whole of ``integrations`` per pass and process, which grows with every user; with this one
it reads the rows falling due and stops after a batch. Only the rows the sweep can want are
in it (ACTIVE, with a refresh token), so a row without an expiring token costs it nothing.

Building it reads ``integrations`` once (about a second per million rows on PostgreSQL);
writes to that table wait meanwhile.

Revision ID: 0008_refresh_sweep_index
Revises: 0007_logs_partitions

Everything this revision needs is in this file; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_refresh_sweep_index"
down_revision = "0007_logs_partitions"
branch_labels = None
depends_on = None

NAME = "ix_integrations_refresh_due"
# Written the same way in the sweep's query (hub/store/integrations.py), so that both
# databases' planners can see that the query asks for a subset of the index's rows.
WHERE = "status = 'ACTIVE' AND refresh_token IS NOT NULL"


def upgrade() -> None:
    op.create_index(NAME, "integrations", ["token_expiry"], postgresql_where=sa.text(WHERE), sqlite_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index(NAME, table_name="integrations")

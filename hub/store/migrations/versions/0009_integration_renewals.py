"""Renewals: when a plugin wants its ``hub_renew`` called for an integration (a push channel
about to run out), and the lease of the process doing it.

Revision ID: 0009_integration_renewals
Revises: 0008_refresh_sweep_index

Everything this revision needs is in this file, as hub.store.models had it on the
revision's day; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_integration_renewals"
down_revision = "0008_refresh_sweep_index"
branch_labels = None
depends_on = None

UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("integrations", sa.Column("renew_by", UTCDateTime, nullable=True))
    op.add_column("integrations", sa.Column("renew_lease_until", UTCDateTime, nullable=True))
    op.create_index("ix_integrations_renew_by", "integrations", ["renew_by"])


def downgrade() -> None:
    op.drop_index("ix_integrations_renew_by", table_name="integrations")
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("renew_lease_until")
        batch.drop_column("renew_by")

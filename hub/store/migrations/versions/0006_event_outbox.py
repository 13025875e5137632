"""The event outbox: events, their deliveries to each subscriber, and what the hub learnt
about subscribers (disabled after a 410).

An event is written in the same transaction as the change it reports; its deliveries are
claimed by whichever process gets there first (a lease with a compare-and-swap), in order
per subscriber and integration.

Revision ID: 0006_event_outbox
Revises: 0005_connect_sessions

Everything this revision needs is in this file, as hub.store.models had it on the
revision's day; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_event_outbox"
down_revision = "0005_connect_sessions"
branch_labels = None
depends_on = None

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("integration_id", BigId, sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("once_key", sa.String(200), nullable=True, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_events_user_id", "events", ["user_id", "id"])
    op.create_index("ix_events_user_type_id", "events", ["user_id", "type", "id"])
    op.create_index("ix_events_user_status_id", "events", ["user_id", "status", "id"])
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "event_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subscriber", sa.String(64), nullable=False),
        sa.Column("integration_id", BigId, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_event_deliveries_order", "event_deliveries", ["subscriber", "integration_id", "state", "id"])
    op.create_index("ix_event_deliveries_event", "event_deliveries", ["event_id"])
    op.create_table(
        "event_subscribers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("disabled_at", UTCDateTime, nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("event_subscribers")
    op.drop_table("event_deliveries")
    op.drop_table("events")

"""Connect sessions: connect_sessions, and the binding of an OAuth state to one.

A connect session is a short-lived, single-use link whose page sets a cookie in the browser
that opens it; every state started from that page carries the session's id and the
cookie's SHA-256, which the callback checks. Only hashes of the link's secret and of the
cookie are stored. Both new columns of oauth_states are nullable: states issued by the plain
connect route carry neither.

Revision ID: 0005_connect_sessions
Revises: 0004_activity_filter_indexes

Everything this revision needs is in this file, as hub.store.models had it on the
revision's day; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_connect_sessions"
down_revision = "0004_activity_filter_indexes"
branch_labels = None
depends_on = None

# The models' UTCDateTime stores this type; this revision writes no rows.
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connect_sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("cookie_hash", sa.String(64), nullable=True),
        sa.Column("providers", sa.JSON, nullable=False),
        sa.Column("return_url", sa.Text, nullable=True),
        sa.Column("opener_origin", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("connected_provider", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("opened_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_connect_sessions_user_id", "connect_sessions", ["user_id"])
    op.create_index("ix_connect_sessions_expires_at", "connect_sessions", ["expires_at"])
    op.add_column("oauth_states", sa.Column("session_id", sa.String(40), nullable=True))
    op.add_column("oauth_states", sa.Column("cookie_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("cookie_hash")
        batch.drop_column("session_id")
    op.drop_table("connect_sessions")

"""Initial schema: integrations, integration_logs, oauth_states.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

# The column types as hub.models defined them on this revision's day, copied so that a
# later change to the models cannot change what this revision creates. Only their DDL
# matters here: this revision moves no data, so hub.models.UTCDateTime (a TypeDecorator
# that converts values to and from UTC) is its implementation type, timezone-aware.
#
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sa.DateTime(timezone=True)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("access_token", sa.Text, nullable=True),
        sa.Column("refresh_token", sa.Text, nullable=True),
        sa.Column("token_expiry", UTCDateTime, nullable=True),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("last_sync_at", UTCDateTime, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("refresh_lease_until", UTCDateTime, nullable=True),
        sa.UniqueConstraint("user_id", "provider", name="uq_integrations_user_provider"),
    )
    op.create_table(
        "integration_logs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("integration_id", BigId, sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("request_data", sa.JSON, nullable=True),
        sa.Column("response_data", sa.JSON, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_integration_logs_integration_id_id", "integration_logs", ["integration_id", "id"])
    op.create_index("ix_integration_logs_integration_created", "integration_logs", ["integration_id", "created_at"])
    op.create_table(
        "oauth_states",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("state_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.Text, nullable=True),
        sa.Column("return_url", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("consumed_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_oauth_states_expires_at", "oauth_states", ["expires_at"])


def downgrade() -> None:
    op.drop_table("oauth_states")
    op.drop_table("integration_logs")
    op.drop_table("integrations")

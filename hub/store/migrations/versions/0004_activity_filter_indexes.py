"""Indexes that let every activity filter read only its own integration's rows, newest first.

A logs page filtered by status, by action, or by both walks one of these backwards and stops
after a page, however many rows other integrations or other actions hold. Without them a
rare status or action made the walk read the integration's whole history.

Building them reads the table once: about two seconds per million rows on PostgreSQL, during
which writes to ``integration_logs`` wait (the hub's activity writer buffers them).

Revision ID: 0004_activity_filter_indexes
Revises: 0003_idempotency_keys

Everything this revision needs is in this file; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

from alembic import op

revision = "0004_activity_filter_indexes"
down_revision = "0003_idempotency_keys"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_integration_logs_integration_status_id": ["integration_id", "status", "id"],
    "ix_integration_logs_integration_action_id": ["integration_id", "action", "id"],
    "ix_integration_logs_integration_action_status_id": ["integration_id", "action", "status", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "integration_logs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="integration_logs")

"""Webhook routes: an index from what an inbound provider webhook names (a Slack team, a
Trello board, a Google channel) to the integrations it concerns, so the webhook route no
longer reads every integration of the provider per request.

One row per ``key=value`` of each integration's metadata and plugin state (a list counted
per element); the hub keeps them on every write of the metadata (hub.store.routes). This
revision fills them for the integrations that exist: it reads ``integrations`` once, in
batches (about 10 s per million rows here); writes to ``integrations`` are not held.

Revision ID: 0010_webhook_routes
Revises: 0009_integration_renewals

Everything this revision needs is in this file; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_webhook_routes"
down_revision = "0009_integration_renewals"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 5000
MAX_ROUTE = 255


def _route(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    text = f"{key}={value}"
    return text if len(text) <= MAX_ROUTE else None


def _routes(meta: Any) -> set[str]:
    if isinstance(meta, str):
        meta = json.loads(meta)
    meta = meta if isinstance(meta, dict) else {}
    found = {_route(str(k), v) for k, v in meta.items() if k != "state"}
    state = meta.get("state")
    if isinstance(state, dict):
        for key, value in state.items():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                found.add(_route(f"state.{key}", item))
    return {r for r in found if r}


def upgrade() -> None:
    routes = op.create_table(
        "webhook_routes",
        sa.Column("integration_id", BigId, sa.ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("route", sa.String(255), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
    )
    op.create_index("ix_webhook_routes_lookup", "webhook_routes", ["provider", "route"])
    integrations = sa.table("integrations", sa.column("id", BigId), sa.column("provider", sa.String), sa.column("metadata", sa.JSON))
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(integrations.c.id, integrations.c.provider, integrations.c.metadata)
            .where(integrations.c.id > last).order_by(integrations.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        values = [{"integration_id": i, "provider": p, "route": r} for i, p, meta in rows for r in sorted(_routes(meta))]
        if values:
            bind.execute(routes.insert(), values)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_webhook_routes_lookup", table_name="webhook_routes")
    op.drop_table("webhook_routes")

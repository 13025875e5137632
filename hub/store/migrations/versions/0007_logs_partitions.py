"""On PostgreSQL, ``integration_logs`` becomes a table partitioned by month of ``created_at``.

Retention can then drop a whole month (a catalog change) instead of deleting its rows one by
one, and a query with a time bound reads only the months it names. SQLite keeps one table:
this revision does nothing there.

A partitioned table's primary key must hold its partition key, so the key becomes
``(id, created_at)``; ids still come from the one sequence, ``integration_logs_id_seq``,
which stays (and keeps its position), so every id stays unique and keeps its order.

The conversion: the old table is renamed aside (with its key and indexes), the partitioned
table is created with a partition per month from the oldest row's month to three months
ahead and a default partition, the rows are copied over month by month (ids unchanged),
the indexes are built, and the old table is dropped. It all happens in the upgrade's one
transaction: it reads and writes the whole table once, needs as much free disk again, and
the hub's activity writes wait until it commits (docs/operations.md, "Partitions").
Downgrade copies the rows back into one plain table the same way.

Revision ID: 0007_logs_partitions
Revises: 0006_event_outbox

Everything this revision needs is in this file; nothing here may be imported from ``hub``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0007_logs_partitions"
down_revision = "0006_event_outbox"
branch_labels = None
depends_on = None

TABLE = "integration_logs"
ASIDE = "integration_logs_unpartitioned"
SEQUENCE = "integration_logs_id_seq"
MONTHS_AHEAD = 3

# Every index of the table as revisions 0001 and 0004 made it.
INDEXES = {
    "ix_integration_logs_integration_id_id": ["integration_id", "id"],
    "ix_integration_logs_integration_created": ["integration_id", "created_at"],
    "ix_integration_logs_integration_status_id": ["integration_id", "status", "id"],
    "ix_integration_logs_integration_action_id": ["integration_id", "action", "id"],
    "ix_integration_logs_integration_action_status_id": ["integration_id", "action", "status", "id"],
}

COLUMNS = "id, integration_id, kind, action, status, request_data, response_data, error_message, duration_ms, created_at"

# The columns as revision 0001 made them, on PostgreSQL.
_DEFINITION = f"""
    id BIGINT NOT NULL DEFAULT nextval('{SEQUENCE}'::regclass),
    integration_id BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind VARCHAR(16) NOT NULL,
    action VARCHAR(64) NOT NULL,
    status VARCHAR(8) NOT NULL,
    request_data JSON,
    response_data JSON,
    error_message TEXT,
    duration_ms INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL"""


def _month(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _literal(moment: datetime) -> str:
    return "'" + moment.strftime("%Y-%m-%d %H:%M:%S") + "+00'"


def _set_aside(table: str, suffix: str) -> None:
    """Rename the table to ``table`` with its keys and indexes, freeing their names."""
    foreign = op.get_bind().execute(
        sa.text(f"SELECT conname FROM pg_constraint WHERE conrelid = '{TABLE}'::regclass AND contype = 'f'")
    ).scalars().all()
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {table}")
    op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {TABLE}_pkey TO {table}_pkey")
    # The foreign key keeps its name free too, so the new table's gets the usual one.
    for n, name in enumerate(foreign):
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {name} TO {table}_fkey{n}")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}{suffix}")


def _create_indexes() -> None:
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {TABLE} ({', '.join(columns)})")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _set_aside(ASIDE, "_unpartitioned")
    op.execute(f"CREATE TABLE {TABLE} ({_DEFINITION},\n    PRIMARY KEY (id, created_at)\n) PARTITION BY RANGE (created_at)")
    op.execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
    now = datetime.now(timezone.utc)
    oldest = bind.execute(sa.text(f"SELECT min(created_at) FROM {ASIDE}")).scalar()
    month, last = _month(min(oldest, now) if oldest else now), _month(now)
    for _ in range(MONTHS_AHEAD):
        last = _next(last)
    op.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    while month <= last:
        upper = _next(month)
        bounds = f"FROM ({_literal(month)}) TO ({_literal(upper)})"
        op.execute(f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES {bounds}")
        # One month per statement: each reads one range of the old table's rows.
        op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {ASIDE} "
                   f"WHERE created_at >= {_literal(month)} AND created_at < {_literal(upper)}")
        month = upper
    # Rows dated after the last month (a clock far ahead) go to the default partition.
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {ASIDE} WHERE created_at >= {_literal(month)}")
    _create_indexes()
    op.execute(f"DROP TABLE {ASIDE}")
    op.execute(f"ANALYZE {TABLE}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _set_aside(f"{TABLE}_partitioned", "_partitioned")
    op.execute(f"CREATE TABLE {TABLE} ({_DEFINITION},\n    PRIMARY KEY (id)\n)")
    op.execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
    op.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE}_partitioned ORDER BY id")
    _create_indexes()
    op.execute(f"DROP TABLE {TABLE}_partitioned")
    op.execute(f"ANALYZE {TABLE}")

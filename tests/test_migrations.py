"""The migrations are frozen and complete: every revision is a file of its own day that
imports nothing from ``hub``, and an empty database upgraded through all of them has
exactly the tables the models describe (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import ast
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.store.engine import MIGRATIONS, alembic_config, create_engine, current_revision, upgrade
from hub.store.models import Base

# What a revision may import: the standard library, SQLAlchemy and Alembic. Anything else
# (``hub`` above all) is live code that can change under a revision already applied.
ALLOWED_IMPORTS = {"sqlalchemy", "alembic", *sys.stdlib_module_names}


def migration_files() -> list[Path]:
    return sorted((MIGRATIONS / "versions").glob("*.py")) + [MIGRATIONS / "env.py"]


def revisions_in_order() -> list[str]:
    scripts = ScriptDirectory.from_config(alembic_config())
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (function bodies included), by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # A relative import reaches into the package the file lives in: hub itself.
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_migration_files_import_nothing_from_hub() -> None:
    files = migration_files()
    assert len(files) >= 3, files
    offending = [
        f"{path.relative_to(MIGRATIONS.parent.parent)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if module.split(".")[0] not in ALLOWED_IMPORTS
    ]
    assert offending == []


def test_revisions_form_one_line_from_base() -> None:
    """One head, no branches: "upgrade through every revision" means all of them."""
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    assert revisions_in_order()[:2] == ["0001", "0002"]
    assert len(revisions_in_order()) == len(list((MIGRATIONS / "versions").glob("*.py")))


@pytest.fixture
async def empty_db_url(tmp_path: Path, _pg_url: str | None) -> AsyncIterator[str]:
    """A database with no tables at all: a new file on SQLite, a database of this test's
    own on PostgreSQL (dropped afterwards)."""
    if not _pg_url:
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    url = make_url(_pg_url)
    empty = url.set(database=f"{url.database}_migrations")
    admin = create_async_engine(_pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{empty.database}" WITH (FORCE)'))
            await conn.execute(sa.text(f'CREATE DATABASE "{empty.database}"'))
    except DBAPIError:
        await admin.dispose()
        pytest.skip("this PostgreSQL role may not create databases")
    yield empty.render_as_string(hide_password=False)
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{empty.database}" WITH (FORCE)'))
    await admin.dispose()


async def drift(engine: AsyncEngine) -> list[str]:
    """What autogenerate would change to make the database match the models, one line per
    change: empty when the migrations and ``hub.store.models`` describe the same schema."""
    async with engine.connect() as conn:
        # The month partitions of integration_logs are the hub's to create and drop at run
        # time (hub.activity.partitions), not tables of the models: leave them out.
        parts = set(await conn.run_sync(partition_tables))
        opts = {"compare_type": True, "compare_server_default": True,
                "include_name": lambda name, kind, _parent: not (kind == "table" and name in parts)}
        diffs = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), Base.metadata))
        rowids = await conn.run_sync(sqlite_rowid_drift)
        partitioned = await conn.run_sync(partitioning_drift)
    # A column's changes come as a list of ("modify_...", ...) tuples; everything else alone.
    # (Alembic cannot see an unnamed UNIQUE go missing on SQLite; the PostgreSQL run does.)
    return [repr(change) for diff in diffs for change in (diff if isinstance(diff, list) else [diff])] + rowids + partitioned


def partition_tables(conn: sa.Connection) -> list[str]:
    if conn.dialect.name != "postgresql":
        return []
    return list(conn.execute(sa.text("SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'")).scalars())


def partitioning_drift(conn: sa.Connection) -> list[str]:
    """Autogenerate compares neither ``PARTITION BY`` nor primary keys: on PostgreSQL each
    table the models partition must be partitioned that way, with its partition key in its
    primary key."""
    if conn.dialect.name != "postgresql":
        return []
    drifted = []
    for name, table in Base.metadata.tables.items():
        wanted = table.dialect_options["postgresql"]["partition_by"]
        made = conn.execute(sa.text("SELECT pg_get_partkeydef(to_regclass(:t))"), {"t": name}).scalar()
        if (wanted or None) != made:
            drifted.append(f"{name}: partitioned by {wanted!r} in the models, {made!r} in the database")
        elif wanted:
            key = sa.inspect(conn).get_pk_constraint(name)["constrained_columns"]
            column = wanted.split("(")[1].rstrip(")").strip()
            if column not in key:
                drifted.append(f"{name}: primary key {key} lacks the partition key {column}")
    return drifted


def sqlite_rowid_drift(conn: sa.Connection) -> list[str]:
    """``WITHOUT ROWID`` is a table option autogenerate does not compare."""
    if conn.dialect.name != "sqlite":
        return []
    created = dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
    drifted = []
    for name, table in Base.metadata.tables.items():
        wanted, made = table.dialect_options["sqlite"]["with_rowid"], "WITHOUT ROWID" not in created.get(name, "")
        if wanted != made:
            drifted.append(f"{name}: with_rowid={wanted} in the models, {made} in the database")
    return drifted


async def test_upgrading_an_empty_database_through_every_revision_gives_the_models_schema(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        for revision in revisions_in_order():
            await upgrade(engine, revision)
            assert await current_revision(engine) == revision
        assert await drift(engine) == []
    finally:
        await engine.dispose()


# --- 0002's backfill, as of its day --------------------------------------------------
# The tables as revision 0001 left them and as 0002 made the rollup, written out here
# rather than taken from hub.store.models, so this keeps checking 0002 after the models move on.
_INTEGRATIONS = sa.table(
    "integrations", sa.column("id"), sa.column("user_id"), sa.column("provider"), sa.column("status"),
    sa.column("scopes", sa.JSON), sa.column("metadata", sa.JSON), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("version"),
)
_LOGS = sa.table(
    "integration_logs", sa.column("integration_id"), sa.column("kind"), sa.column("action"), sa.column("status"),
    sa.column("duration_ms"), sa.column("created_at", sa.DateTime(timezone=True)),
)
_ROLLUP = sa.table(
    "activity_hourly", sa.column("integration_id"), sa.column("hour", sa.DateTime(timezone=True)), sa.column("action"),
    sa.column("bucket"), sa.column("succeeded"), sa.column("failed"), sa.column("pending"), sa.column("total_ms"),
)

T = datetime(2026, 3, 10, 14, 0, tzinfo=timezone.utc)

# (integration, minutes after T, kind, action, status, duration_ms)
ROWS = [
    (1, 5, "call", "post", "SUCCESS", 10),
    (1, 59, "call", "post", "FAILED", 10),  # same hour and duration: the same rollup row
    (1, 30, "call", "post", "PENDING", 25),  # 24 ms bucket: [24, 26)
    (1, 31, "call", "post", "TIMEOUT", 27),  # any other status counts as pending; 26 ms bucket
    (1, 60, "call", "post", "SUCCESS", 10),  # the next hour
    (1, 7, "transition", "post", "SUCCESS", 10),  # not a call: not counted
    (1, 8, "call", "list", "SUCCESS", 1000),  # 972 ms bucket: [972, 1069)
    (1, 9, "call", "list", "FAILED", 1070),  # 1069 ms bucket
    (2, 5, "call", "post", "SUCCESS", 0),
    (2, 6, "call", "post", "PENDING", 0),
    (2, -1, "call", "post", "SUCCESS", 19),  # a minute before T: the hour before
]
# (integration, hour, action, bucket) -> (succeeded, failed, pending, total_ms), worked out
# by hand from the bucket rule of 0002's day: every ms below 20 its own bucket, then
# buckets [lo, lo + lo // 10) from 20 up.
EXPECTED = {
    (1, T, "post", 10): (1, 1, 0, 20),
    (1, T, "post", 24): (0, 0, 1, 25),
    (1, T, "post", 26): (0, 0, 1, 27),
    (1, T + timedelta(hours=1), "post", 10): (1, 0, 0, 10),
    (1, T, "list", 972): (1, 0, 0, 1000),
    (1, T, "list", 1069): (0, 1, 0, 1070),
    (2, T, "post", 0): (1, 0, 1, 0),
    (2, T - timedelta(hours=1), "post", 19): (1, 0, 0, 19),
}


async def filled_at_0001(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await upgrade(engine, "0001")
    async with engine.begin() as conn:
        await conn.execute(_INTEGRATIONS.insert(), [
            {"id": i, "user_id": f"u{i}", "provider": "slack", "status": "ACTIVE", "scopes": [], "metadata": {},
             "created_at": T, "updated_at": T, "version": 1}
            for i in (1, 2)
        ])
        await conn.execute(_LOGS.insert(), [
            {"integration_id": i, "kind": kind, "action": action, "status": status, "duration_ms": ms,
             "created_at": T + timedelta(minutes=minutes)}
            for i, minutes, kind, action, status, ms in ROWS
        ])
    return engine


async def stored_rollup(engine: AsyncEngine) -> dict[tuple[Any, ...], tuple[int, ...]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(_ROLLUP))).all()
    return {(r[0], as_utc(r[1]), r[2], r[3]): tuple(r[4:]) for r in rows}


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back the naive UTC it stores; PostgreSQL an aware timestamp."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


async def test_0002_backfills_the_rollup_from_the_rows_already_stored(empty_db_url: str) -> None:
    engine = await filled_at_0001(empty_db_url)
    try:
        await upgrade(engine, "0002")
        assert await stored_rollup(engine) == EXPECTED
    finally:
        await engine.dispose()


async def test_0002_backfill_adds_up_across_batches(empty_db_url: str) -> None:
    """Batches of two rows split hours and keys between them; each batch adds to what the
    ones before it stored, so the totals are those of one pass."""
    engine = await filled_at_0001(empty_db_url)
    try:
        await upgrade(engine, "0002")
        revision = ScriptDirectory.from_config(alembic_config()).get_revision("0002")
        async with engine.begin() as conn:
            await conn.execute(_ROLLUP.delete())
            await conn.run_sync(lambda sync: revision.module.backfill(sync, batch_size=2))
        assert await stored_rollup(engine) == EXPECTED
    finally:
        await engine.dispose()


# --- 0007: integration_logs partitioned by month on PostgreSQL ----------------------------
_ALL_LOGS = sa.table(
    "integration_logs", sa.column("id"), sa.column("integration_id"), sa.column("kind"), sa.column("action"),
    sa.column("status"), sa.column("request_data", sa.JSON), sa.column("response_data", sa.JSON),
    sa.column("error_message"), sa.column("duration_ms"), sa.column("created_at", sa.DateTime(timezone=True)),
)
LOG_INDEXES = {
    "ix_integration_logs_integration_id_id": ["integration_id", "id"],
    "ix_integration_logs_integration_created": ["integration_id", "created_at"],
    "ix_integration_logs_integration_status_id": ["integration_id", "status", "id"],
    "ix_integration_logs_integration_action_id": ["integration_id", "action", "id"],
    "ix_integration_logs_integration_action_status_id": ["integration_id", "action", "status", "id"],
}


async def all_logs(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(_ALL_LOGS).order_by(_ALL_LOGS.c.id))).all()
    return [(*r[:-1], as_utc(r[-1])) for r in rows]


async def log_layout(engine: AsyncEngine) -> tuple[str | None, dict[str, list[str]], list[str], list[str]]:
    """How integration_logs is stored: its kind (PostgreSQL), its indexes, its primary key
    and its partitions."""
    async with engine.connect() as conn:
        def read(sync: sa.Connection) -> tuple[str | None, dict[str, list[str]], list[str], list[str]]:
            inspector = sa.inspect(sync)
            indexes = {i["name"]: list(i["column_names"]) for i in inspector.get_indexes("integration_logs")}
            key = list(inspector.get_pk_constraint("integration_logs")["constrained_columns"])
            if sync.dialect.name != "postgresql":
                return None, indexes, key, []
            kind = sync.execute(sa.text("SELECT relkind::text FROM pg_class WHERE oid = 'integration_logs'::regclass")).scalar()
            parts = list(sync.execute(sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'integration_logs'::regclass ORDER BY 1")).scalars())
            return kind, indexes, key, parts
        return await conn.run_sync(read)


async def test_0007_partitions_an_existing_table_keeping_every_row_and_back(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    now = datetime.now(timezone.utc)
    old = [now - timedelta(days=d, minutes=d) for d in (400, 95, 63, 31, 2)] + [now, now + timedelta(days=5 * 365)]
    try:
        await upgrade(engine, "0004_activity_filter_indexes")
        async with engine.begin() as conn:
            await conn.execute(_INTEGRATIONS.insert(), [
                {"id": 1, "user_id": "u1", "provider": "slack", "status": "ACTIVE", "scopes": [], "metadata": {},
                 "created_at": T, "updated_at": T, "version": 1}
            ])
            await conn.execute(_ALL_LOGS.insert(), [
                {"integration_id": 1, "kind": "call", "action": f"a{n}", "status": "SUCCESS", "request_data": {"n": n},
                 "response_data": None if n % 2 else [n], "error_message": None if n % 3 else f"e{n}", "duration_ms": n,
                 "created_at": at}
                for n, at in enumerate(old)
            ])
        rows = await all_logs(engine)
        assert len(rows) == len(old)
        _, plain_indexes, _, _ = await log_layout(engine)

        await upgrade(engine, "0007_logs_partitions")
        assert await all_logs(engine) == rows
        kind, indexes, key, parts = await log_layout(engine)
        assert indexes == plain_indexes == LOG_INDEXES
        if engine.dialect.name == "postgresql":
            assert kind == "p" and key == ["id", "created_at"]
            months = {f"integration_logs_p{at:%Y_%m}" for at in old[:-1]}
            assert months | {"integration_logs_default"} <= set(parts)
            async with engine.connect() as conn:
                where = dict((await conn.execute(sa.text("SELECT id, tableoid::regclass::text FROM integration_logs"))).all())
            assert where[rows[-1][0]] == "integration_logs_default"  # years ahead: no month of its own
            assert all(where[r[0]] == f"integration_logs_p{r[-1]:%Y_%m}" for r in rows[:-1])
        # The sequence goes on from where it was.
        async with engine.begin() as conn:
            new_id = (await conn.execute(_ALL_LOGS.insert().values(
                integration_id=1, kind="call", action="next", status="SUCCESS", duration_ms=0, created_at=now,
            ).returning(_ALL_LOGS.c.id))).scalar_one()
        assert new_id == max(r[0] for r in rows) + 1
        rows = await all_logs(engine)

        await upgrade_to(engine, "0004_activity_filter_indexes", down=True)
        assert await all_logs(engine) == rows
        kind, indexes, key, parts = await log_layout(engine)
        assert indexes == LOG_INDEXES and key == ["id"] and parts == []
        assert kind in (None, "r")
        await upgrade(engine)
        assert await all_logs(engine) == rows
        assert await drift(engine) == []
    finally:
        await engine.dispose()


async def upgrade_to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: (command.downgrade if down else command.upgrade)(alembic_config(sync), revision))


async def test_0010_fills_the_webhook_routes_of_the_integrations_already_stored(empty_db_url: str) -> None:
    """Each scalar of the metadata and of the plugin state (a list per element) becomes a
    route; objects, None and over-long values do not; and the rows go again on downgrade."""
    engine = create_engine(empty_db_url)
    try:
        await upgrade(engine, "0009_integration_renewals")
        metas = {
            1: {"teamId": "T01", "accountId": "U01", "token": {"scope": "x"}, "none": None},
            2: {"accountId": "m2", "state": {"webhook_models": ["b1", "b2"], "webhooks": {"w": "b1"}, "long": "x" * 300}},
            3: {},
        }
        async with engine.begin() as conn:
            await conn.execute(_INTEGRATIONS.insert(), [
                {"id": i, "user_id": f"u{i}", "provider": "slack" if i == 1 else "trello", "status": "ACTIVE", "scopes": [],
                 "metadata": meta, "created_at": T, "updated_at": T, "version": 1}
                for i, meta in metas.items()
            ])
        await upgrade(engine, "0010_webhook_routes")
        routes = sa.table("webhook_routes", sa.column("integration_id"), sa.column("provider"), sa.column("route"))
        async with engine.connect() as conn:
            stored = sorted(tuple(r) for r in (await conn.execute(sa.select(routes))).all())
        assert stored == [
            (1, "slack", "accountId=U01"), (1, "slack", "teamId=T01"),
            (2, "trello", "accountId=m2"), (2, "trello", "state.webhook_models=b1"), (2, "trello", "state.webhook_models=b2"),
        ]
        await upgrade_to(engine, "0009_integration_renewals", down=True)
        assert await current_revision(engine) == "0009_integration_renewals"
    finally:
        await engine.dispose()

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
    opts = {"compare_type": True, "compare_server_default": True}
    async with engine.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), Base.metadata))
        rowids = await conn.run_sync(sqlite_rowid_drift)
    # A column's changes come as a list of ("modify_...", ...) tuples; everything else alone.
    # (Alembic cannot see an unnamed UNIQUE go missing on SQLite; the PostgreSQL run does.)
    return [repr(change) for diff in diffs for change in (diff if isinstance(diff, list) else [diff])] + rowids


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

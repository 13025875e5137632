"""Time revision 0007_logs_partitions on an old-layout PostgreSQL table.

    .venv/bin/python bench/partition_migration.py [--rows N] [--days D] [--pg-url URL]

Makes a private database through the server at --pg-url (default: $HUB_BENCH_PG_URL, else
postgresql+asyncpg://postgres@127.0.0.1:5432/test), brings it to revision
0004_activity_filter_indexes, fills integration_logs with N rows spread over D days, times
the upgrade to 0007 and prints it with the partitions' count and size; the database is
dropped at the end. Not a test: pytest never collects bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.store.engine import create_engine, upgrade

SIZE = ("SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
        "WHERE inhparent = 'integration_logs'::regclass")


async def main(rows: int, days: float, server: str) -> None:
    url = make_url(server).set(database=f"{make_url(server).database}_partmig{os.getpid()}")
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        await upgrade(engine, "0004_activity_filter_indexes")
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO integrations (user_id, provider, status, scopes, metadata, created_at, updated_at, version) "
                                    "VALUES ('bench', 'slack', 'ACTIVE', '[]', '{}', now(), now(), 1)"))
            await conn.execute(text(
                "INSERT INTO integration_logs (integration_id, kind, action, status, request_data, response_data, duration_ms, created_at) "
                "SELECT 1, 'call', 'post_message', 'SUCCESS', '{\"channel\": \"general\"}', '{}', 100, "
                "now() - g * (:span / :n) * interval '1 second' FROM generate_series(1, :n) AS g"
            ), {"n": rows, "span": days * 86400.0})
        started = time.perf_counter()
        await upgrade(engine, "0007_logs_partitions")
        took = time.perf_counter() - started
        async with engine.connect() as conn:
            parts, size = (await conn.execute(text(SIZE))).one()
        print(f"{rows:,} rows over {days:g} days: upgraded to 0007 in {took:.1f}s ({rows / took:,.0f} rows/s), {parts} partitions, {size}")
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--days", type=float, default=90)
    p.add_argument("--pg-url", default=os.environ.get("HUB_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))
    a = p.parse_args()
    asyncio.run(main(a.rows, a.days, a.pg_url))

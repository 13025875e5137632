"""The background refresh sweep's query over many integrations, with and without its index.

Stores ``--integrations`` integrations (default 300,000) the way docs/scaling.md counts them:
a third Slack (12-hour tokens), a third Google Calendar (1-hour tokens), a third Trello
(tokens that never expire, no refresh token); 2% in ERROR. Each expiring token falls due
at a moment spread evenly over its renewal period, as in the steady state (bench/simulate
seeds the same way), and the token columns hold ciphertext-sized text, so the table has
its real width.

Then the sweep's own statement (``hub.store.integrations.expiring_statement``, with the
defaults: due within 300 s, a batch of 100) runs ``--repeat`` times through the hub's
session, first with the partial index ``ix_integrations_refresh_due`` (migration 0008),
then with it dropped, which is the table before that migration. The medians and both
plans (``EXPLAIN (ANALYZE, BUFFERS)``) go to ``bench/out/sweep-*.txt``. On PostgreSQL
(``--pg-url``, a database ``bench_sweep`` of its own, dropped afterwards) and on SQLite.

    .venv/bin/python bench/sweep.py [--integrations 300000] [--no-sqlite]

Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import BENCH, log, migrate  # noqa: E402

INDEX = "ix_integrations_refresh_due"
LIVES = {"slack": 12 * 3600, "google_calendar": 3599, "trello": None}
AHEAD_S = 300  # refresh.ahead_seconds
BATCH = 100  # refresh.batch_size


async def fill(url: str, count: int) -> None:
    import random

    from hub.store.engine import create_engine
    from hub.store.models import Integration

    rng = random.Random(17)
    now = datetime.now(timezone.utc)
    sealed = "v1:bench1:" + "x" * 180  # the width of a stored ciphertext
    rows: list[dict[str, Any]] = []
    for i in range(count):
        provider = ("slack", "google_calendar", "trello")[i % 3]
        life = LIVES[provider]
        expiry = None
        if life:
            period = life - min(AHEAD_S, life / 2)
            expiry = now + timedelta(seconds=life - period + rng.uniform(-30, period))
        rows.append({"user_id": f"sweep-user-{i // 3:07d}", "provider": provider, "status": "ERROR" if rng.random() < 0.02 else "ACTIVE",
                     "access_token": sealed, "refresh_token": sealed if life else None, "token_expiry": expiry, "scopes": [],
                     "metadata": {}, "created_at": now, "updated_at": (expiry - timedelta(seconds=life)) if life and expiry else now,
                     "version": 1, "refresh_lease_until": None})
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for start in range(0, len(rows), 10_000):
                await conn.execute(Integration.__table__.insert(), rows[start:start + 10_000])
            await conn.exec_driver_sql("ANALYZE integrations" if url.startswith("postgresql") else "ANALYZE")
    finally:
        await engine.dispose()


async def measure(url: str, repeat: int) -> tuple[dict[str, float], str]:
    """Median and fastest of ``repeat`` runs of the sweep's statement, and its plan."""
    from sqlalchemy import text

    from hub.store.engine import create_engine, sessionmaker
    from hub.store.integrations import expiring_statement

    engine = create_engine(url)
    pg = url.startswith("postgresql")
    try:
        samples, found = [], 0
        async with sessionmaker(engine)() as session:
            for _ in range(repeat + 1):
                now = datetime.now(timezone.utc)
                t0 = time.perf_counter()
                found = len((await session.scalars(expiring_statement(now + timedelta(seconds=AHEAD_S), now, BATCH))).all())
                samples.append(time.perf_counter() - t0)
            now = datetime.now(timezone.utc)
            sql = str(expiring_statement(now + timedelta(seconds=AHEAD_S), now, BATCH).compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
            plan = "\n".join(" | ".join(str(c) for c in row) for row in (await session.execute(text(prefix + sql))).all())
        rest = sorted(samples[1:])
        return {"median": statistics.median(rest), "min": rest[0], "first": samples[0], "rows": found}, f"{sql}\n{plan}"
    finally:
        await engine.dispose()


async def drop_index(url: str) -> None:
    from hub.store.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"DROP INDEX {INDEX}")
    finally:
        await engine.dispose()


async def admin(base: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def one(label: str, url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    asyncio.run(migrate(url))
    t0 = time.perf_counter()
    asyncio.run(fill(url, args.integrations))
    log(f"{label}: {args.integrations:,} integrations stored in {time.perf_counter() - t0:.0f}s")
    with_index, plan_with = asyncio.run(measure(url, args.repeat))
    asyncio.run(drop_index(url))
    without, plan_without = asyncio.run(measure(url, args.repeat))
    (out / f"sweep-plans-{label.lower()}.txt").write_text(
        f"-- {label}, {args.integrations:,} integrations, with {INDEX}\n{plan_with}\n\n-- without it (before migration 0008)\n{plan_without}\n")
    return {"with": with_index, "without": without}


def main() -> int:
    p = argparse.ArgumentParser(description="The refresh sweep's query over many integrations, with and without its index.")
    p.add_argument("--integrations", type=int, default=300_000, help="integrations stored (default 300,000)")
    p.add_argument("--repeat", type=int, default=20, help="timed runs of the query each way (default 20, after one untimed)")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", help="PostgreSQL to create bench_sweep through")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--out", default=str(BENCH / "out"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    if not args.no_sqlite:
        d = Path(tempfile.mkdtemp(prefix="hub-sweep-"))
        results["SQLite"] = one("SQLite", f"sqlite+aiosqlite:///{d}/hub.db", args, out)
    head = args.pg_url.rpartition("/")[0]
    asyncio.run(admin(args.pg_url, 'DROP DATABASE IF EXISTS "bench_sweep" WITH (FORCE)'))
    asyncio.run(admin(args.pg_url, 'CREATE DATABASE "bench_sweep"'))
    try:
        results["PostgreSQL"] = one("PostgreSQL", f"{head}/bench_sweep", args, out)
    finally:
        asyncio.run(admin(args.pg_url, 'DROP DATABASE IF EXISTS "bench_sweep" WITH (FORCE)'))
    print(f"\n{time.strftime('%Y-%m-%d %H:%M %Z')}: the sweep's query over {args.integrations:,} integrations "
          f"(due within {AHEAD_S} s, batch {BATCH}), median of {args.repeat} (fastest)")
    print("| | with ix_integrations_refresh_due | without (before 0008) |\n|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | " + " | ".join(f"{r[k]['median'] * 1000:.2f} ms ({r[k]['min'] * 1000:.2f}), {r[k]['rows']} rows"
                                          for k in ("with", "without")) + " |")
    print(f"plans in {out}/sweep-plans-*.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

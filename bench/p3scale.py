"""P3 at growing sizes on PostgreSQL: the activity queries over 1 M, 10 M, 100 M rows.

The layout is the one that once misled PostgreSQL's planner (issue 17): the measured
integration's rows first, then the rows of ten other integrations after them, as a restore
or a bulk import leaves a table. Of ``N`` rows the measured integration holds half, written
first, in time order over ``--span-days``; the other half belongs to ten integrations taking
turns, again in time order over the whole span, with higher ids. The rows are shaped like
bench.py's P3 rows (the same payload variants; 70% post_message, 20% list_channels, 10%
get_user; 3% FAILED; lognormal durations around 120 ms).

The rows are made by PostgreSQL itself (``INSERT ... SELECT`` over ``generate_series``, two
connections at a time, ids given explicitly so the layout does not depend on which
connection commits first), so 100 M rows take tens of minutes rather than hours. The month
partitions are made as a hub running through the span would have made them, then switched
to UNLOGGED: writing them then skips the write-ahead log, and reading them is the same. The
hourly rollup is computed by one ``INSERT ... SELECT ... GROUP BY`` with the hub's duration
buckets and the daily level from it as revision 0011 does (``--check-rollup`` compares it with ``hub.activity.rebuild_rollups`` for the
measured integration), then ``VACUUM ANALYZE``, as autovacuum would after such a load.

Each size gets a database of its own, ``bench_p3_<size>`` (dropped at the end unless
``--keep``). A ``hub serve`` answers the timed calls over HTTP, one at a time (median of
``--repeat``; the first call, on a cold cache, reported apart), and every statement's plan
goes to ``bench/out/p3scale-plans-<size>.txt`` (``EXPLAIN (ANALYZE, BUFFERS)``).

    .venv/bin/python bench/p3scale.py --sizes 1M,10M,100M
    .venv/bin/python bench/p3scale.py --sizes 10M --keep      # and look at bench_p3_10m

Not part of CI. The machine needs about 550 bytes of disk per row (heap, TOAST, the six
indexes of integration_logs): 55 GB for 100 M.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    BENCH,
    Procs,
    _payloads,
    fake_token,
    hub_config,
    jwt_for,
    log,
    migrate,
    month_partitions,
    start_hub,
    start_passthrough,
    start_upstream,
    system_busy,
    time_queries,
)

OTHERS = 10
DATA_DIR = "/var/lib/postgresql"
CHUNK = 1_000_000  # rows per INSERT statement
FAILED_MESSAGE = "Slack answered with an error: internal_error [internal_error]"
# 70 / 20 / 10 of 1024, drawn from a hash of the row number.
ACTION_CUTS = ((717, 0), (922, 1), (1024, 2))
ACTION_NAMES = ("post_message", "list_channels", "get_user")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def size_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1_000}k"


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn(base))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def database_url(base: str, name: str) -> str:
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


# --- seeding -----------------------------------------------------------------------------------

ROW_SQL = """
INSERT INTO integration_logs (id, integration_id, kind, action, status, request_data, response_data, error_message, duration_ms, created_at)
SELECT $1::bigint + n, {integration}, 'call', p.action,
       CASE WHEN r.failed THEN 'FAILED' ELSE 'SUCCESS' END,
       p.req, CASE WHEN r.failed THEN NULL ELSE p.resp END,
       CASE WHEN r.failed THEN $6::text END,
       r.duration, $4::timestamptz + n * $5::float8 * interval '1 second'
FROM generate_series($2::bigint, $3::bigint - 1) AS n
CROSS JOIN LATERAL (
    SELECT (hashint8(n * 3 + $7::bigint) & 1023) AS pick,
           (hashint8(n * 5 + $7::bigint) & 63) AS variant,
           (hashint8(n * 7 + $7::bigint) & 2147483647) % 100 < 3 AS failed,
           least(30000, exp(4.8 + 0.6 * sqrt(-2 * ln(((hashint8(n * 11 + $7::bigint) & 1048575) + 1) / 1048577.0))
                              * cos(2 * pi() * ((hashint8(n * 13 + $7::bigint) & 1048575) / 1048576.0))))::int AS duration
) AS r
JOIN bench_payloads AS p
  ON p.k = (CASE WHEN r.pick < {cut0} THEN 0 WHEN r.pick < {cut1} THEN 1 ELSE 2 END) * 64 + r.variant
"""


async def make_integrations(conn: asyncpg.Connection) -> list[int]:
    now = datetime.now(timezone.utc)
    ids = []
    for i in range(OTHERS + 1):
        ids.append(await conn.fetchval(
            "INSERT INTO integrations (user_id, provider, status, scopes, metadata, created_at, updated_at, version) "
            "VALUES ($1, 'slack', 'ACTIVE', '[\"channels:read\", \"chat:write\", \"users:read\"]', '{\"accountId\": \"U0FAKEBOT01\"}', "
            "$2, $2, 1) RETURNING id", f"p3-user-{i}", now))
    return ids


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(dsn(url))
    try:
        parts = await conn.fetch("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'integration_logs'::regclass")
        for (name,) in parts:
            await conn.execute(f"ALTER TABLE {name} SET UNLOGGED")
        await conn.execute("CREATE UNLOGGED TABLE bench_payloads (k int PRIMARY KEY, action text, req json, resp json)")
        by_action: dict[str, list[tuple[str, str]]] = {a: [] for a in ACTION_NAMES}
        import random

        for action, req, resp in _payloads(random.Random(7)):
            by_action[action].append((req, resp))
        rows = [(a * 64 + v, name, *by_action[name][v]) for a, name in enumerate(ACTION_NAMES) for v in range(64)]
        await conn.executemany("INSERT INTO bench_payloads VALUES ($1, $2, $3::json, $4::json)", rows)
    finally:
        await conn.close()


async def drop_indexes(url: str) -> list[str]:
    """Drop integration_logs' key and indexes (to be made again after the load, by sorting,
    which is quicker than keeping six indexes up to date row by row); the statements that
    make them again."""
    conn = await asyncpg.connect(dsn(url))
    try:
        again = []
        key = await conn.fetchrow("SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
                                  "WHERE conrelid = 'integration_logs'::regclass AND contype = 'p'")
        for name, definition in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'integration_logs' "
                                                 "AND indexname <> $1", key["conname"]):
            again.append(definition.replace(" ON ONLY ", " ON "))
            await conn.execute(f'DROP INDEX "{name}"')
        await conn.execute(f'ALTER TABLE integration_logs DROP CONSTRAINT "{key["conname"]}"')
        again.append(f'ALTER TABLE integration_logs ADD CONSTRAINT "{key["conname"]}" {key["definition"]}')
        return again
    finally:
        await conn.close()


async def make_indexes(url: str, statements: list[str], jobs: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for sql in statements:
        queue.put_nowait(sql)
    t0 = time.perf_counter()

    async def worker() -> None:
        c = await asyncpg.connect(dsn(url))
        try:
            await c.execute("SET maintenance_work_mem = '1GB'")
            while not queue.empty():
                sql = queue.get_nowait()
                await c.execute(sql)
                log(f"  {sql[:90]}... done at {time.perf_counter() - t0:.0f}s")
        finally:
            await c.close()

    await asyncio.gather(*(worker() for _ in range(jobs)))
    return time.perf_counter() - t0


def disk_free() -> int:
    return shutil.disk_usage(DATA_DIR).free


async def seed(url: str, total: int, span_days: float, jobs: int, reserve: int) -> tuple[int, int, int, float]:
    """Write ``total`` rows in the layout above, or fewer if the disk would keep less than
    ``reserve`` bytes free; (measured integration id, its rows, rows written, seconds)."""
    conn = await asyncpg.connect(dsn(url))
    try:
        ids = await make_integrations(conn)
    finally:
        await conn.close()
    own = total // 2
    rest = total - own
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=span_days) + timedelta(minutes=5)
    span_s = (now - start).total_seconds()
    cuts = {"cut0": ACTION_CUTS[0][0], "cut1": ACTION_CUTS[1][0]}
    own_sql = ROW_SQL.format(integration=f"{ids[0]}::bigint", **cuts)
    rest_sql = ROW_SQL.format(integration=f"(ARRAY{ids[1:]}::bigint[])[1 + n % {OTHERS}]", **cuts)
    # (sql, first id - 0, n from, n to, start, seconds per row, salt); the measured
    # integration's chunks first, so its rows lie before the others' in every month too.
    work: list[tuple[Any, ...]] = []
    for lo in range(0, own, CHUNK):
        work.append((own_sql, 1, lo, min(own, lo + CHUNK), start, span_s / own, 1))
    for lo in range(0, rest, CHUNK):
        work.append((rest_sql, 1 + own, lo, min(rest, lo + CHUNK), start, span_s / rest, 2))
    queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    done = 0
    start_free = disk_free()
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        c = await asyncpg.connect(dsn(url))
        try:
            await c.execute("SET synchronous_commit = off")
            while not queue.empty():
                # Keep room for the indexes still to be made (about 3/4 of the rows' own bytes).
                if disk_free() < reserve + 0.75 * max(0, start_free - disk_free()):
                    # The database's disk is shared: stop here and measure what was reached.
                    log(f"  stopping at {done:,} rows: {disk_free() / 2**30:.0f} GiB left on the database's disk")
                    while not queue.empty():
                        queue.get_nowait()
                    return
                sql, first, lo, hi, st, step, salt = queue.get_nowait()
                await c.execute(sql, first, lo, hi, st, step, FAILED_MESSAGE, salt)
                done += hi - lo
                took = time.perf_counter() - t0
                log(f"  {done:,} of {total:,} rows in {took:.0f}s ({done / took:,.0f} rows/s)")
        finally:
            await c.close()

    # The measured integration's rows go in before any of the others' (the layout).
    first_part = [w for w in work if w[1] == 1]
    for item in first_part:
        queue.put_nowait(item)
    await asyncio.gather(*(worker() for _ in range(jobs)))
    queue = asyncio.Queue()
    for item in work[len(first_part):]:
        queue.put_nowait(item)
    await asyncio.gather(*(worker() for _ in range(jobs)))
    took = time.perf_counter() - t0
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("SELECT setval('integration_logs_id_seq', (SELECT max(id) FROM integration_logs))")
        own = await conn.fetchval("SELECT count(*) FROM integration_logs WHERE integration_id = $1", ids[0])
        await conn.execute("DROP TABLE bench_payloads")
    finally:
        await conn.close()
    return ids[0], own, done, took


async def rollup(url: str) -> tuple[float, int]:
    """The hourly rollup of every row, in one statement, with the hub's buckets, then the
    daily level from it; returns the seconds and the rollup rows of both levels."""
    from hub.activity.rollup import _FLOORS

    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("SET TimeZone = 'UTC'")
        await conn.execute("SET work_mem = '256MB'")
        t0 = time.perf_counter()
        await conn.execute(
            """INSERT INTO activity_hourly (integration_id, hour, action, bucket, succeeded, failed, pending, total_ms)
               SELECT integration_id, date_trunc('hour', created_at), action, ($1::bigint[])[width_bucket(duration_ms::bigint, $1::bigint[])],
                      count(*) FILTER (WHERE status = 'SUCCESS'), count(*) FILTER (WHERE status = 'FAILED'),
                      count(*) FILTER (WHERE status NOT IN ('SUCCESS', 'FAILED')), sum(duration_ms)
               FROM integration_logs WHERE kind = 'call' GROUP BY 1, 2, 3, 4""", _FLOORS)
        # The daily level, as revision 0011 fills it: the hours added up per UTC day.
        await conn.execute(
            """INSERT INTO activity_daily (integration_id, day, action, bucket, succeeded, failed, pending, total_ms)
               SELECT integration_id, date_trunc('day', hour), action, bucket, sum(succeeded), sum(failed), sum(pending), sum(total_ms)
               FROM activity_hourly GROUP BY 1, 2, 3, 4""")
        took = time.perf_counter() - t0
        return took, int(await conn.fetchval("SELECT (SELECT count(*) FROM activity_hourly) + (SELECT count(*) FROM activity_daily)"))
    finally:
        await conn.close()


async def check_rollup(url: str, integration_id: int) -> int:
    """Rows where the statement's rollup and ``hub.activity.rebuild_rollups`` differ, for one integration."""
    from sqlalchemy import text

    from hub.activity import rebuild_rollups
    from hub.store.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            levels = {"activity_hourly": "hour", "activity_daily": "day"}
            for table in levels:
                await conn.execute(text(f"CREATE TEMP TABLE mine_{table} AS SELECT * FROM {table} WHERE integration_id = :i"), {"i": integration_id})
            await rebuild_rollups(conn, integration_id)
            differ = 0
            for table, period in levels.items():
                cols = f"integration_id, {period}, action, bucket, succeeded, failed, pending, total_ms"
                mine, theirs = f"SELECT {cols} FROM mine_{table}", f"SELECT {cols} FROM {table} WHERE integration_id = :i"
                differ += (await conn.execute(text(
                    f"SELECT count(*) FROM (({mine} EXCEPT {theirs}) UNION ALL ({theirs} EXCEPT {mine})) AS d"), {"i": integration_id})).scalar_one()
            return int(differ)
    finally:
        await engine.dispose()


async def vacuum(url: str) -> float:
    conn = await asyncpg.connect(dsn(url))
    try:
        t0 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE integration_logs")
        await conn.execute("VACUUM ANALYZE activity_hourly")
        await conn.execute("VACUUM ANALYZE activity_daily")
        await conn.execute("VACUUM ANALYZE integrations")
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def sizes(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT sum(pg_table_size(inhrelid)) AS heap, sum(pg_indexes_size(inhrelid)) AS indexes "
            "FROM pg_inherits WHERE inhparent = 'integration_logs'::regclass")
        return {"heap_and_toast": int(row["heap"]), "indexes": int(row["indexes"]),
                "rollup": int(await conn.fetchval("SELECT pg_total_relation_size('activity_hourly') + pg_total_relation_size('activity_daily')"))}
    finally:
        await conn.close()


async def row_ids(url: str, integration_id: int, own: int) -> tuple[int, int]:
    """Ids of the measured integration's row in the middle of its history and near its start."""
    conn = await asyncpg.connect(dsn(url))
    try:
        middle = await conn.fetchval("SELECT min(id) + $2 FROM integration_logs WHERE integration_id = $1", integration_id, own // 2)
        early = await conn.fetchval("SELECT min(id) + 100 FROM integration_logs WHERE integration_id = $1", integration_id)
        return int(middle), int(early)
    finally:
        await conn.close()


# --- what is timed ------------------------------------------------------------------------------


def paths(middle: int, early: int) -> dict[str, str]:
    from hub.activity import encode_cursor

    base = "/api/integrations/slack/"
    since = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "stats?days=7": base + "stats?days=7",
        "stats?days=30": base + "stats?days=30",
        "stats?days=90": base + "stats?days=90",
        "logs, first page": base + "logs?limit=50",
        "logs, page at the middle (cursor)": base + f"logs?limit=50&cursor={encode_cursor(middle)}",
        "logs, oldest pages (cursor)": base + f"logs?limit=50&cursor={encode_cursor(early)}",
        "logs, status=FAILED": base + "logs?limit=50&status=FAILED",
        "logs, action=get_user": base + "logs?limit=50&action=get_user",
        "logs, action=get_user&status=FAILED": base + "logs?limit=50&action=get_user&status=FAILED",
        "logs, action=list_channels&status=FAILED, middle": base + f"logs?limit=50&action=list_channels&status=FAILED&cursor={encode_cursor(middle)}",
        "logs, since an hour ago": base + f"logs?limit=50&since={since}",
        "logs, since an hour ago, FAILED": base + f"logs?limit=50&since={since}&status=FAILED",
    }


async def plans(url: str, integration_id: int, middle: int, early: int) -> tuple[str, dict[str, float]]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement behind the timed calls, and the
    statistics' SQL alone (``hub.activity.stats`` in this process, median of 5)."""
    from sqlalchemy import text

    from hub import activity
    from hub.activity.queries import LogQuery, encode_cursor, logs_statement, rollup_sums_statement
    from hub.store.engine import create_engine, sessionmaker

    engine = create_engine(url)
    now = datetime.now(timezone.utc)
    hour = timedelta(hours=1)
    queries: dict[str, tuple[str, dict[str, Any]]] = {}
    for days in (7, 30, 90):
        statement = rollup_sums_statement(integration_id, now - timedelta(days=days))
        queries[f"stats {days} days: rollup hours and days"] = (str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})), {})
    since = now - timedelta(days=7)
    queries["stats: the window's first partial hour (raw rows)"] = (
        "SELECT action, status, duration_ms, count(*) FROM integration_logs WHERE integration_id = :i AND kind = 'call' "
        "AND created_at >= :s AND created_at < :h GROUP BY action, status, duration_ms",
        {"i": integration_id, "s": since, "h": since.replace(minute=0, second=0, microsecond=0) + hour})
    pages = {
        "logs first page": LogQuery(),
        "logs middle (cursor)": LogQuery(cursor=encode_cursor(middle)),
        "logs oldest (cursor)": LogQuery(cursor=encode_cursor(early)),
        "logs FAILED": LogQuery(status="FAILED"),
        "logs get_user": LogQuery(action="get_user"),
        "logs get_user FAILED": LogQuery(action="get_user", status="FAILED"),
        "logs since an hour ago": LogQuery(since=now - hour),
        "logs since an hour ago, FAILED": LogQuery(since=now - hour, status="FAILED"),
    }
    lines: list[str] = []
    sql_alone: dict[str, float] = {}
    executed: dict[str, str] = {}
    try:
        async with sessionmaker(engine)() as session:
            for name, query in pages.items():
                statement = logs_statement(session, integration_id, query)
                queries[name] = (str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})), {})
            for days in (7, 30, 90):
                samples = []
                for _ in range(6):
                    t0 = time.perf_counter()
                    await activity.stats(session, integration_id, days)
                    samples.append(time.perf_counter() - t0)
                sql_alone[f"stats?days={days}"] = sorted(samples[1:])[2]
        async with engine.connect() as conn:
            for name, (sql, params) in queries.items():
                rows = (await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)).all()
                times = {str(r[0]).split(":")[0]: str(r[0]).split(":")[1].strip() for r in rows if str(r[0]).endswith(" ms")}
                executed[name] = f"{times.get('Execution Time', '?')} ({times.get('Planning Time', '?')} to plan)"
                lines.append(f"-- {name}\n{sql}\n   params {params}")
                lines.extend("   " + " | ".join(str(c) for c in r) for r in rows)
                lines.append("")
    finally:
        await engine.dispose()
    sql_alone["executed"] = executed  # type: ignore[assignment]
    return "\n".join(lines), sql_alone


# --- the run ------------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, procs: Procs, upstream: Any, keys: str, total: int, out: Path) -> dict[str, Any]:
    label = size_label(total)
    name = f"bench_p3_{label}"
    url = database_url(args.pg_url, name)
    result: dict[str, Any] = {"rows": total, "database": name, "span_days": args.span_days}
    if args.reuse:
        return measure(args, procs, upstream, keys, out, label, url, result, *asyncio.run(reused(url, result)))
    asyncio.run(admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(args.pg_url, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate(url))
        asyncio.run(month_partitions(url, args.span_days))
        asyncio.run(prepare(url))
        again = asyncio.run(drop_indexes(url)) if args.rebuild_indexes else []
        log(f"P3 {label}: seeding {total:,} rows ({args.jobs} connections{', indexes made afterwards' if again else ''})")
        measured, own, written, seed_s = asyncio.run(seed(url, total, args.span_days, args.jobs, int(args.reserve_gib * 2**30)))
        result.update(rows=written, measured_rows=own, seed_s=seed_s)
        log(f"P3 {label}: {written:,} rows in {seed_s:.0f}s ({written / seed_s:,.0f} rows/s)")
        if again:
            result["index_s"] = asyncio.run(make_indexes(url, again, args.jobs))
            log(f"P3 {label}: key and indexes made in {result['index_s']:.0f}s")
        result["rollup_s"], result["rollup_rows"] = asyncio.run(rollup(url))
        log(f"P3 {label}: rollup {result['rollup_rows']:,} rows in {result['rollup_s']:.0f}s")
        if args.check_rollup:
            result["rollup_differences"] = asyncio.run(check_rollup(url, measured))
            log(f"P3 {label}: rollup statement vs hub.activity.rebuild_rollups: {result['rollup_differences']} rows differ")
        result["vacuum_s"] = asyncio.run(vacuum(url))
        result["bytes"] = asyncio.run(sizes(url))
        log(f"P3 {label}: VACUUM ANALYZE in {result['vacuum_s']:.0f}s; {result['bytes']}")
        return measure(args, procs, upstream, keys, out, label, url, result, measured, own)
    finally:
        if not args.keep:
            asyncio.run(admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def reused(url: str, result: dict[str, Any]) -> tuple[int, int]:
    """A database an earlier ``--keep`` run seeded: its measured integration and its rows;
    the loading figures are those of that run and are not repeated here."""
    conn = await asyncpg.connect(dsn(url))
    try:
        measured = await conn.fetchval("SELECT id FROM integrations WHERE user_id = 'p3-user-0'")
        own = await conn.fetchval("SELECT count(*) FROM integration_logs WHERE integration_id = $1", measured)
        result["rows"] = await conn.fetchval("SELECT count(*) FROM integration_logs")
        result["rollup_rows"] = await conn.fetchval("SELECT (SELECT count(*) FROM activity_hourly) + (SELECT count(*) FROM activity_daily)")
        result.update(measured_rows=own, seed_s=0.0, rollup_s=0.0, vacuum_s=0.0, reused=True)
    finally:
        await conn.close()
    result["bytes"] = await sizes(url)
    return int(measured), int(own)


def measure(args: argparse.Namespace, procs: Procs, upstream: Any, keys: str, out: Path, label: str, url: str,
            result: dict[str, Any], measured: int, own: int) -> dict[str, Any]:
    """Time the API through a ``hub serve`` and write every statement's plan."""
    middle, early = asyncio.run(row_ids(url, measured, own))
    d = Path(tempfile.mkdtemp(prefix=f"hub-p3-{label}-"))
    cfg = d / "hub.json"
    from bench import free_port

    hub_config(cfg, port=free_port(), db_url=url, slack=upstream, keys=keys)
    hub = start_hub(procs, f"hub-{label}", cfg, d)
    try:
        busy0, t0 = system_busy(), time.perf_counter()
        timings = asyncio.run(time_queries(hub.url, args.passthrough_url, jwt_for("p3-user-0"), paths(middle, early), args.repeat))
        result["machine_busy_cores"] = (system_busy() - busy0) / (time.perf_counter() - t0)
    finally:
        procs.stop(hub.proc)
    result["timings"] = timings
    text, result["sql_alone"] = asyncio.run(plans(url, measured, middle, early))
    (out / f"p3scale-plans-{label}.txt").write_text(text)
    return result


def table(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    names = [k for k in results[0]["timings"] if k != "floor"]
    head = "| median (fastest; first call, cold) | " + " | ".join(f"{r['rows'] / 1e6:,.0f} M rows" for r in results) + " | target |"
    lines = [head, "|---|" + "---|" * len(results) + "---|"]
    for key in names:
        target = "≤ 30 ms" if key.startswith("stats") else "≤ 5 ms"
        cells = [f"{r['timings'][key]['median'] * 1000:.1f} ms ({r['timings'][key]['min'] * 1000:.1f}; {r['timings'][key]['first'] * 1000:.0f})"
                 for r in results]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {target} |")
    lines.append("| the whole machine busy while timing (cores of 2) | " + " | ".join(f"{r.get('machine_busy_cores', 0):.2f}" for r in results) + " | |")
    lines.append("| HTTP floor (`/hello`) | " + " | ".join(f"{r['timings']['floor']['median'] * 1000:.2f} ms" for r in results) + " | |")
    for days in (7, 30, 90):
        lines.append(f"| stats?days={days}, SQL alone | " + " | ".join(f"{r['sql_alone'][f'stats?days={days}'] * 1000:.1f} ms" for r in results) + " | |")
    for name in results[0]["sql_alone"]["executed"]:
        lines.append(f"| SQL of {name}, EXPLAIN ANALYZE | " + " | ".join(r["sql_alone"]["executed"][name] for r in results) + " | |")
    lines.append("| rollup rows (all integrations) | " + " | ".join(f"{r['rollup_rows']:,}" for r in results) + " | |")
    lines.append("| integration_logs heap + TOAST / indexes | " + " | ".join(
        f"{r['bytes']['heap_and_toast'] / 2**30:.1f} / {r['bytes']['indexes'] / 2**30:.1f} GiB" for r in results) + " | |")
    lines.append("| seeding / rollup / VACUUM ANALYZE | " + " | ".join(
        "a kept database (--reuse)" if r.get("reused") else
        f"{r['seed_s'] + r.get('index_s', 0):.0f} / {r['rollup_s']:.0f} / {r['vacuum_s']:.0f} s" for r in results) + " | |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description="P3 (activity queries) on PostgreSQL at growing sizes, in the skewed layout of issue 17.")
    p.add_argument("--sizes", default="1M,10M,100M", help="table sizes in rows, comma-separated (default 1M,10M,100M)")
    p.add_argument("--span-days", type=float, default=90, help="the rows span this many days back (default 90: stats?days=90 is full)")
    p.add_argument("--jobs", type=int, default=2, help="connections writing rows at once (default 2)")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per query (default 20; the first call is reported apart)")
    p.add_argument("--reserve-gib", type=float, default=12, help="stop writing rows when the database's disk would keep less free once the indexes are made (default 12 GiB)")
    p.add_argument("--data-dir", default="/var/lib/postgresql", help="where PostgreSQL keeps its files, for --reserve-gib")
    p.add_argument("--rebuild-indexes", action="store_true", help="drop integration_logs' indexes for the load and make them afterwards")
    p.add_argument("--check-rollup", action="store_true", help="compare the rollup statement with the hub's own rebuild (measured integration)")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", help="PostgreSQL to create the databases through")
    p.add_argument("--out", default=str(BENCH / "out"), help="where plans and results go (default bench/out)")
    p.add_argument("--keep", action="store_true", help="keep each size's database")
    p.add_argument("--reuse", action="store_true", help="measure the databases an earlier --keep run left, without seeding (implies --keep)")
    args = p.parse_args()
    args.keep = args.keep or args.reuse
    global DATA_DIR
    DATA_DIR = args.data_dir
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from hub.infra.crypto import generate_key

    work = Path(tempfile.mkdtemp(prefix="hub-p3scale-"))
    (work / "logs").mkdir()
    procs = Procs(work / "logs")
    results = []
    try:
        upstream = start_upstream(procs, "upstream")
        passthrough = start_passthrough(procs, upstream, asyncio.run(fake_token(upstream)))
        args.passthrough_url = passthrough.url
        for total in (parse_size(s) for s in args.sizes.split(",")):
            result = run_size(args, procs, upstream, generate_key("bench1"), total, out)
            results.append(result)
            stamp = time.strftime("%Y%m%d-%H%M")
            (out / f"p3scale-{size_label(total)}-{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
            print(table(results), flush=True)
    finally:
        procs.stop_all()
    print(f"\n{time.strftime('%Y-%m-%d %H:%M %Z')}: plans in {out}/p3scale-plans-*.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

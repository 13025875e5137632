"""Monthly partitions of the activity log (PostgreSQL) and retention (both databases).

Partitions are made ahead and a default one catches any other month; prune drops whole
months and deletes the rest row by row, and the statistics of the days it keeps do not
move; the logs page still walks the integration's index, reading only the months a time
bound leaves; two engines making partitions at once make each exactly once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from hub.activity import ActivityWriter, daily, ensure_partitions, hour_of, partitions, prune_expired, stats
from hub.activity.partitions import DEFAULT_PARTITION, drop_months_before, add_months, month_of, month_start, partition_name
from hub.activity.queries import LogQuery, logs_statement
from hub.core.upkeep import ActivityUpkeep
from hub.store.engine import create_engine, sessionmaker
from hub.store.models import IntegrationLog

from test_activity_plans import _nodes, index_parents
from test_rollup import assert_both_levels_exact, call, make_db, rollup

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=timezone.utc)


def postgres_only(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("partitions are PostgreSQL's; SQLite keeps one table")


async def where_rows_are(sessions: Any) -> dict[int, str]:
    async with sessions() as s:
        return dict((await s.execute(text("SELECT id, tableoid::regclass::text FROM integration_logs"))).all())


async def month_names(sessions: Any) -> set[str]:
    async with sessions() as s:
        return set(await partitions(await s.connection()))


@pytest.fixture(autouse=True)
async def restore_partitions(db_url: str) -> AsyncIterator[None]:
    """The run's database is shared by every test: drop the partitions a test made, so the
    next ones see the table the migration left."""
    engine = create_engine(db_url)
    sessions = sessionmaker(engine)
    before = await month_names(sessions)
    yield
    async with sessions.begin() as s:
        for name in sorted(await month_names(sessions) - before):
            await s.execute(text(f"DROP TABLE {name}"))
    await engine.dispose()


async def one_upkeep_pass(upkeep: ActivityUpkeep) -> None:
    """Start the upkeep as a hub does and wait for its first pass (it runs at once)."""
    await upkeep.start()
    try:
        await upkeep.wait_for_passes(1)
    finally:
        await upkeep.stop()


async def ensure(sessions: Any, now: datetime, **kw: Any) -> list[str]:
    async with sessions.begin() as s:
        return await ensure_partitions(await s.connection(), now, **kw)


async def test_partitions_are_made_ahead_by_the_upkeep(db_url: str) -> None:
    postgres_only(db_url)
    engine, sessions, _ = await make_db(db_url, integrations=1)
    await one_upkeep_pass(ActivityUpkeep(sessions, months_ahead=5, retention_days=90, prune=False, interval_seconds=3600))
    this = month_start(datetime.now(timezone.utc))
    wanted = {partition_name(add_months(this, n)) for n in range(6)} | {DEFAULT_PARTITION}
    assert wanted <= await month_names(sessions)
    await engine.dispose()


async def test_a_row_of_a_month_without_a_partition_lands_in_the_default_one_and_moves_later(db_url: str) -> None:
    postgres_only(db_url)
    engine, sessions, ids = await make_db(db_url, integrations=1)
    far = datetime.now(timezone.utc) + timedelta(days=3 * 365)
    writer = ActivityWriter(sessions)
    await writer.record(call(ids[0], far))
    await writer.record(call(ids[0], datetime.now(timezone.utc)))
    await writer.flush()
    placed = await where_rows_are(sessions)
    assert sorted(placed.values()) == sorted([DEFAULT_PARTITION, partition_name(month_start(datetime.now(timezone.utc)))])
    before = await rollup(sessions)

    # Its month gets a partition later: the row moves there, id and all, and counts the same.
    assert partition_name(month_start(far)) in await ensure(sessions, far, ahead=1)
    moved = await where_rows_are(sessions)
    assert set(moved) == set(placed)
    assert sorted(moved.values()) == sorted([partition_name(month_start(far)), partition_name(month_start(datetime.now(timezone.utc)))])
    assert await assert_both_levels_exact(sessions) == before
    await engine.dispose()


async def test_prune_drops_whole_old_months_and_keeps_the_statistics_of_the_days_it_keeps(db_url: str) -> None:
    pg = db_url.startswith("postgresql")
    engine, sessions, ids = await make_db(db_url, integrations=2)
    if pg:
        await ensure(sessions, NOW, ahead=1, since=NOW - timedelta(days=150))
    writer = ActivityWriter(sessions)
    for hours in range(0, 140 * 24, 7):  # every 7 hours over 140 days, both integrations
        await writer.record(call(ids[hours % 2], NOW - timedelta(hours=hours), ms=hours % 50, status="FAILED" if hours % 5 == 0 else "SUCCESS"))
    await writer.record(call(ids[0], NOW - timedelta(days=400)))  # older than every partition: the default one
    await writer.flush()
    cutoff = NOW - timedelta(days=70, minutes=20)  # 2026-04-06 12:10, mid-hour, mid-month
    kept_days = 69

    async with sessions() as s:
        kept_ids = set((await s.scalars(select(IntegrationLog.id).where(IntegrationLog.created_at >= cutoff))).all())
        gone = await s.scalar(select(text("count(*)")).select_from(IntegrationLog).where(IntegrationLog.created_at < cutoff))
        before = {iid: (await daily(s, iid, kept_days, now=NOW), await stats(s, iid, kept_days, now=NOW)) for iid in ids}

    dropped: list[str] = []
    if pg:
        # Retention's first step alone (whole months) leaves the statistics matching the rows.
        async with sessions.begin() as s:
            first = await drop_months_before(await s.connection(), hour_of(cutoff))
        await assert_both_levels_exact(sessions)
        dropped, gone = first.partitions, gone - first.rows
    pruned = await prune_expired(sessions, cutoff)

    assert pruned.rows == gone > 0
    async with sessions() as s:
        assert set((await s.scalars(select(IntegrationLog.id))).all()) == kept_ids
        assert {iid: (await daily(s, iid, kept_days, now=NOW), await stats(s, iid, kept_days, now=NOW)) for iid in ids} == before
    await assert_both_levels_exact(sessions)
    if pg:
        # January to March end before the cutoff's hour: dropped whole. April holds the
        # cutoff: its older rows were deleted, the partition stays.
        assert dropped == [partition_name(datetime(2026, m, 1, tzinfo=timezone.utc)) for m in (1, 2, 3)]
        assert pruned.partitions == []
        names = await month_names(sessions)
        assert not names & set(dropped)
        assert {partition_name(datetime(2026, m, 1, tzinfo=timezone.utc)) for m in (4, 5, 6, 7)} | {DEFAULT_PARTITION} <= names
    await engine.dispose()


async def test_the_scheduled_prune_runs_in_the_background(db_url: str) -> None:
    engine, sessions, ids = await make_db(db_url, integrations=1)
    now = datetime.now(timezone.utc)
    writer = ActivityWriter(sessions)
    for age in (timedelta(days=40), timedelta(days=20), timedelta(minutes=1)):
        await writer.record(call(ids[0], now - age))
    await writer.flush()
    await one_upkeep_pass(ActivityUpkeep(sessions, months_ahead=1, retention_days=30, prune=True, interval_seconds=3600))
    async with sessions() as s:
        left = sorted((await s.scalars(select(IntegrationLog.created_at))).all())
    assert left == [now - timedelta(days=20), now - timedelta(minutes=1)]
    await assert_both_levels_exact(sessions)
    await engine.dispose()


async def test_the_logs_page_walks_the_integration_index_and_reads_only_the_months_asked(db_url: str) -> None:
    postgres_only(db_url)
    engine, sessions, ids = await make_db(db_url, integrations=2)
    await ensure(sessions, NOW, ahead=1, since=NOW - timedelta(days=120))
    writer = ActivityWriter(sessions)
    for hours in range(0, 120 * 24, 3):
        await writer.record(call(ids[hours % 2], NOW - timedelta(hours=hours)))
    await writer.flush()
    async with sessions.begin() as s:
        await s.execute(text("ANALYZE integration_logs"))

    async def plan(query: LogQuery) -> list[dict[str, Any]]:
        async with sessions() as s:
            sql = str(logs_statement(s, ids[0], query).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            raw = (await s.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) {sql}"))).scalar_one()
            parents = await index_parents(s)
        nodes = _nodes((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
        for n in nodes:
            n["Parent Index"] = parents.get(n.get("Index Name"), n.get("Index Name"))
        return nodes

    first = await plan(LogQuery(limit=50))
    scans = [n for n in first if "Scan" in n["Node Type"] and (n.get("Actual Rows") or n.get("Rows Removed by Filter"))]
    assert scans and all(n["Parent Index"] == "ix_integration_logs_integration_id_id" for n in scans), scans
    assert not any(n["Node Type"] == "Sort" for n in first)
    assert sum(n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0) for n in scans) <= 51 + len(scans)

    since = NOW - timedelta(days=10)
    recent = await plan(LogQuery(limit=50, since=since))
    read = {n["Relation Name"] for n in recent if "Relation Name" in n}
    months = [m for r in read if (m := month_of(r)) is not None]
    assert partition_name(month_start(NOW)) in read
    assert all(m >= month_start(since) for m in months), read
    await engine.dispose()


async def test_two_engines_making_partitions_at_once_make_each_once(db_url: str) -> None:
    postgres_only(db_url)
    engine, sessions, _ = await make_db(db_url, integrations=1)
    since = datetime(2020, 1, 1, tzinfo=timezone.utc)  # 78 months neither has made yet
    others = [create_engine(db_url) for _ in range(3)]
    try:
        made = await asyncio.gather(*(ensure(sessionmaker(e), NOW, ahead=2, since=since) for e in [engine, *others]))
    finally:
        for e in others:
            await e.dispose()
    created = [name for names in made for name in names if name != DEFAULT_PARTITION]
    assert len(created) == len(set(created))
    month, wanted = since, set()
    while month <= add_months(month_start(NOW), 2):
        wanted.add(partition_name(month))
        month = add_months(month, 1)
    assert wanted <= await month_names(sessions)
    await engine.dispose()


async def test_stopping_the_upkeep_lets_a_pass_in_flight_finish(db_url: str) -> None:
    """Cancelling a pass midway would cancel a statement under the database driver, which
    then answers into a closed event loop at shutdown."""
    engine, sessions, _ = await make_db(db_url, integrations=1)
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class Held(ActivityUpkeep):
        async def run_once(self) -> None:  # type: ignore[override]
            started.set()
            await release.wait()
            finished.set()

    upkeep = Held(sessions, months_ahead=1, retention_days=30, prune=False, interval_seconds=3600)
    await upkeep.start()
    await started.wait()
    stopping = asyncio.create_task(upkeep.stop())
    # No wait for a condition: a few turns of the loop, counted not timed, in which a stop()
    # that cancelled the pass would already have finished.
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await stopping
    assert finished.is_set()
    await engine.dispose()

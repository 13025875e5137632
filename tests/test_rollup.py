"""The activity rollup, hourly and daily: kept exactly in step with the rows by every write
path, each day the sum of its hours, and the statistics read from it equal the statistics
of the rows themselves."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, column, delete, func, insert, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from hub.activity import rollup as rollup_module
from hub.activity import writer as writer_module
from hub.activity import ActivityWriter, bucket_value, daily, duration_bucket, prune, rebuild_rollups, stats, summaries
from hub.store.engine import create_engine, sessionmaker, upgrade
from hub.store.models import ActivityDay, ActivityHour, Integration, IntegrationLog

# A fixed clock: 00:20 UTC, so a window of whole days starts 20 minutes into an hour and
# the last hour of the previous day is only 20 minutes back.
NOW = datetime(2026, 3, 10, 0, 20, tzinfo=timezone.utc)


async def make_db(db_url: str, integrations: int = 3) -> tuple[Any, Any, list[int]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    sessions = sessionmaker(engine)
    async with sessions.begin() as s:
        rows = [Integration(user_id=f"u{i}", provider="slack", status="ACTIVE", scopes=[], meta={}, version=1) for i in range(integrations)]
        s.add_all(rows)
        await s.flush()
        ids = [r.id for r in rows]
    return engine, sessions, ids


def call(iid: int, at: datetime, *, action: str = "post_message", status: str = "SUCCESS", ms: int = 10, **extra: Any) -> dict[str, Any]:
    return {"integration_id": iid, "action": action, "status": status, "duration_ms": ms, "created_at": at, **extra}


def _stored(rows: Any) -> dict[tuple[Any, ...], tuple[int, ...]]:
    out = {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:7])}
    # One row per key: a period stored in two spellings (text on SQLite) would read back
    # as one key here while the table held two rows for it.
    assert len({tuple(r[:4]) for r in rows}) == len(rows)
    return out


def _level(model: Any) -> Any:
    period = model.hour if model is ActivityHour else model.day
    return select(model.integration_id, period, model.action, model.bucket, model.succeeded, model.failed, model.pending, model.total_ms)


async def rollup(sessions: Any, model: Any = ActivityHour) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """One level of the rollup as stored, without rows whose counts are all zero."""
    async with sessions() as s:
        return _stored((await s.execute(_level(model))).all())


async def recomputed(sessions: Any, model: Any = ActivityHour) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The rollup a from-scratch rebuild makes of the rows as they are (rolled back after)."""
    async with sessions() as s:
        await rebuild_rollups(s, batch_size=7)  # a small batch: several passes, summed
        rows = (await s.execute(_level(model))).all()
        await s.rollback()
    return _stored(rows)


def by_day(hours: dict[tuple[Any, ...], tuple[int, ...]]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """What the daily level must hold: the hours' counts added up per UTC day."""
    out: dict[tuple[Any, ...], list[int]] = {}
    for (iid, hour, action, bucket), counts in hours.items():
        acc = out.setdefault((iid, rollup_module.day_of(hour), action, bucket), [0, 0, 0, 0])
        for i, n in enumerate(counts):
            acc[i] += n
    return {k: tuple(v) for k, v in out.items() if any(v[:3])}


async def assert_both_levels_exact(sessions: Any) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Both levels equal a recount of the rows, and every day is the sum of its hours;
    returns the hourly level."""
    hours = await rollup(sessions)
    assert hours == await recomputed(sessions)
    days = await rollup(sessions, ActivityDay)
    assert days == by_day(hours) == await recomputed(sessions, ActivityDay)
    return hours


async def calls_of(sessions: Any, iid: int) -> list[Any]:
    lg = IntegrationLog
    async with sessions() as s:
        return list((await s.execute(select(lg.action, lg.status, lg.duration_ms, lg.created_at).where(lg.integration_id == iid, lg.kind == "call"))).all())


def percentile_disc(durations: list[int], q: float) -> int:
    ordered = sorted(durations)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1] if ordered else 0


def expected_stats(rows: list[Any], days: int, now: datetime) -> dict[str, Any]:
    """What the statistics of the raw rows are, computed here the plain way."""
    since = now - timedelta(days=days)
    window = [r for r in rows if r.created_at >= since]
    total = len(window)
    ok = sum(r.status == "SUCCESS" for r in window)
    failed = sum(r.status == "FAILED" for r in window)
    durations = [r.duration_ms for r in window]
    per_action = Counter(r.action for r in window)
    return {
        "period": f"Last {days} day" + ("" if days == 1 else "s"),
        "totalRequests": total,
        "successfulRequests": ok,
        "failedRequests": failed,
        "successRate": f"{(100.0 * ok / total) if total else 0.0:.2f}%",
        "averageDuration": round(sum(durations) / total) if total else 0,
        "p50Duration": percentile_disc(durations, 0.5),
        "p95Duration": percentile_disc(durations, 0.95),
        "percentilesEstimated": False,
        "actionBreakdown": [{"action": a, "count": n} for a, n in sorted(per_action.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


async def mixed_workload(sessions: Any, ids: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything that writes activity: batches, pending rows started and finished, a batch
    refused for one row's payload (the row kept, stripped), a row that cannot be stored at
    all, a database failure between a batch's insert and its rollup, lifecycle rows; over
    several integrations and actions, across hour and day boundaries."""
    rng = random.Random(5)
    writer = ActivityWriter(sessions, flush_interval=0.01, batch_size=37, buffer_limit=100)
    await writer.start()
    for n in range(400):
        at = NOW - timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        await writer.record(call(rng.choice(ids), at, action=rng.choice(["post_message", "list_channels", "get_user"]),
                                 status="FAILED" if rng.random() < 0.2 else "SUCCESS", ms=int(rng.lognormvariate(4, 1.2))))
    await writer.record(call(ids[0], NOW - timedelta(minutes=3), kind="transition", action="status_change"))
    await writer.flush()

    # a payload that cannot be stored: the batch goes row by row, this one stripped
    await writer.record(call(ids[1], NOW - timedelta(minutes=21), ms=33, request_data={"not json": object()}))
    await writer.record(call(ids[1], NOW - timedelta(minutes=22), ms=34))
    # a row no database takes even stripped (no action): not stored, so never counted
    await writer.record(call(ids[1], NOW - timedelta(minutes=23), action=None))
    await writer.flush()

    # the database fails after a batch's rows went in but before its rollup did
    real_apply, failures = writer_module.apply_changes, {"left": 1}

    async def flaky_apply(conn: Any, changes: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("INSERT INTO activity_hourly", {}, ConnectionError("connection lost"))
        await real_apply(conn, changes)

    monkeypatch.setattr(writer_module, "apply_changes", flaky_apply)
    for minutes in (40, 61, 62, 24 * 60 + 5):
        await writer.record(call(ids[2], NOW - timedelta(minutes=minutes), action="sync", ms=minutes))
    await writer.flush()
    monkeypatch.setattr(writer_module, "apply_changes", real_apply)
    assert failures["left"] == 0

    # pending rows: two finished (one in an hour before midnight), one left running
    first = await writer.start_pending({"integration_id": ids[0], "action": "sync", "duration_ms": 0, "created_at": NOW - timedelta(minutes=25)})
    second = await writer.start_pending({"integration_id": ids[0], "action": "sync", "duration_ms": 0, "created_at": NOW - timedelta(minutes=5)})
    await writer.start_pending({"integration_id": ids[1], "action": "sync", "duration_ms": 0, "created_at": NOW - timedelta(hours=2)})
    await writer.finish_pending(first, {"status": "SUCCESS", "duration_ms": 1234})
    await writer.finish_pending(second, {"status": "FAILED", "duration_ms": 7, "error_message": "gone"})
    await writer.stop()


async def test_rollup_matches_a_recount_after_every_kind_of_write(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, sessions, ids = await make_db(db_url)
    await mixed_workload(sessions, ids, monkeypatch)

    kept = await assert_both_levels_exact(sessions)
    async with sessions() as s:
        calls = await s.scalar(select(func.count()).select_from(IntegrationLog).where(IntegrationLog.kind == "call"))
        stripped = (await s.scalars(select(IntegrationLog.error_message).where(IntegrationLog.error_message.like("%payload%")))).all()
    assert len(stripped) == 1 and stripped[0].startswith("[payload not storable: ")
    # every stored call counted once; the unstorable row neither stored nor counted
    assert calls == 400 + 2 + 4 + 3 == sum(sum(v[:3]) for v in kept.values())
    assert sum(v[2] for v in kept.values()) == 1  # the one pending row left running
    assert {k[1].hour for k in kept} >= {23, 0}  # both sides of midnight
    for iid in ids:
        rows = await calls_of(sessions, iid)
        for days in (1, 2, 3):
            async with sessions() as s:
                assert await stats(s, iid, days, now=NOW) == expected_stats(rows, days, NOW)
    await engine.dispose()


@pytest.mark.parametrize(
    "now", [NOW, NOW + timedelta(minutes=25), NOW - timedelta(minutes=20)], ids=["start-at-20-past", "start-at-45-past", "start-at-midnight"]
)
async def test_stats_daily_and_summaries_are_exact_when_the_window_starts_mid_hour(db_url: str, now: datetime) -> None:
    """Early in an hour the rows before the window's start are taken off that whole hour;
    late in an hour the rows after it are added to the hours that follow."""
    engine, sessions, ids = await make_db(db_url, integrations=2)
    since = now - timedelta(days=1)
    rows = []
    for minute in range(0, 120, 3):  # from an hour before the window starts to an hour into it
        at = since - timedelta(hours=1) + timedelta(minutes=minute)
        rows.append(call(ids[0], at, action="a" if minute % 2 else "b", status="FAILED" if minute % 9 == 0 else "SUCCESS", ms=minute))
        rows.append(call(ids[1], at, ms=5))
    rows.append(call(ids[0], since, ms=999))  # exactly on the window's start: inside
    rows.append(call(ids[0], since - timedelta(microseconds=1), ms=888))  # just before: outside
    writer = ActivityWriter(sessions)
    for r in rows:
        await writer.record(r)
    await writer.flush()

    async with sessions() as s:
        got = await stats(s, ids[0], 1, now=now)
        summary = await summaries(s, ids, 1, now=now)
        per_day = await daily(s, ids[0], 3, now=now)
    want = expected_stats(await calls_of(sessions, ids[0]), 1, now)
    assert got == want
    assert 0 < got["totalRequests"] < sum(r["integration_id"] == ids[0] for r in rows)
    other = [r for r in rows if r["integration_id"] == ids[1] and r["created_at"] >= since]
    assert summary == {
        ids[0]: {"period": "Last 1 day", "totalRequests": want["totalRequests"], "successRate": want["successRate"]},
        ids[1]: {"period": "Last 1 day", "totalRequests": len(other), "successRate": "100.00%"},
    }
    by_day: dict[str, list[int]] = {}
    for r in rows:
        if r["integration_id"] == ids[0]:
            day = by_day.setdefault(r["created_at"].date().isoformat(), [0, 0])
            day[r["status"] == "FAILED"] += 1
    assert per_day["days"] == [
        {"date": d, "successful": by_day.get(d, [0, 0])[0], "failed": by_day.get(d, [0, 0])[1]}
        for d in ((now - timedelta(days=k)).date().isoformat() for k in (2, 1, 0))
    ]
    await engine.dispose()


def test_every_duration_estimate_is_within_five_percent() -> None:
    for ms in range(0, 200_000):
        estimate = bucket_value(duration_bucket(ms))
        if ms < 20:
            assert estimate == ms
        assert abs(estimate - ms) <= ms * 0.05, ms
    assert duration_bucket(-3) == 0 and duration_bucket(2**31 - 1) <= 2**31 - 1


async def test_percentiles_exact_below_the_threshold_and_bounded_above(db_url: str) -> None:
    engine, sessions, ids = await make_db(db_url, integrations=1)
    rng = random.Random(11)
    durations = [0, 0, 1, 3, 19] + [int(rng.lognormvariate(5, 1.5)) for _ in range(600)]
    writer = ActivityWriter(sessions)
    for n, ms in enumerate(durations):
        await writer.record(call(ids[0], NOW - timedelta(minutes=n * 7 % 2000), ms=ms))
    await writer.flush()
    exact = {q: percentile_disc(durations, q) for q in (0.5, 0.95)}
    async with sessions() as s:
        below = await stats(s, ids[0], 2, now=NOW)  # the default threshold: exact
        above = await stats(s, ids[0], 2, now=NOW, exact_up_to=100)
    assert below["percentilesEstimated"] is False
    assert (below["p50Duration"], below["p95Duration"]) == (exact[0.5], exact[0.95])
    assert above["percentilesEstimated"] is True
    for key, q in (("p50Duration", 0.5), ("p95Duration", 0.95)):
        assert abs(above[key] - exact[q]) <= 0.05 * exact[q], (key, above[key], exact[q])
    assert {k: v for k, v in above.items() if k not in ("p50Duration", "p95Duration", "percentilesEstimated")} == \
        {k: v for k, v in below.items() if k not in ("p50Duration", "p95Duration", "percentilesEstimated")}

    # small durations come out exact from the buckets too
    async with sessions.begin() as s:
        await s.execute(delete(IntegrationLog))
        await rebuild_rollups(s)
    small = [0, 1, 2, 2, 3, 5, 8, 13, 19, 19, 4]
    for n, ms in enumerate(small):
        await writer.record(call(ids[0], NOW - timedelta(minutes=n), ms=ms))
    await writer.flush()
    async with sessions() as s:
        tiny = await stats(s, ids[0], 1, now=NOW, exact_up_to=0)
    assert tiny["percentilesEstimated"] is True
    assert (tiny["p50Duration"], tiny["p95Duration"]) == (percentile_disc(small, 0.5), percentile_disc(small, 0.95))
    await engine.dispose()


async def test_prune_takes_the_rollup_with_the_rows(db_url: str) -> None:
    engine, sessions, ids = await make_db(db_url, integrations=2)
    writer = ActivityWriter(sessions)
    for minutes in range(0, 6 * 60, 10):  # 18:20 the day before to 00:10
        await writer.record(call(ids[minutes % 2], NOW - timedelta(minutes=minutes), ms=minutes, status="FAILED" if minutes % 30 == 0 else "SUCCESS"))
    await writer.record(call(ids[0], NOW - timedelta(hours=3, minutes=50), kind="transition", action="status_change"))
    await writer.flush()
    cutoff = NOW - timedelta(hours=3, minutes=45)  # 20:35: mid-hour
    async with sessions() as s:
        rows_before = await s.scalar(select(func.count()).select_from(IntegrationLog))
        older = await s.scalar(select(func.count()).select_from(IntegrationLog).where(IntegrationLog.created_at < cutoff))
    async with sessions.begin() as s:
        assert await prune(s, cutoff) == older > 0
    kept = await assert_both_levels_exact(sessions)
    assert min(k[1] for k in kept) == datetime(2026, 3, 9, 20, tzinfo=timezone.utc)  # earlier hours gone, 20:00 reduced
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ActivityHour).where(ActivityHour.hour < rollup_module.hour_of(cutoff))) == 0
        assert await s.scalar(select(func.count()).select_from(IntegrationLog)) == rows_before - older
        for iid in ids:
            assert await stats(s, iid, 1, now=NOW) == expected_stats(await calls_of(sessions, iid), 1, NOW)
    await engine.dispose()


async def test_deleting_an_integration_deletes_its_rollup(db_url: str) -> None:
    engine, sessions, ids = await make_db(db_url, integrations=2)
    writer = ActivityWriter(sessions)
    for iid in ids:
        await writer.record(call(iid, NOW))
    await writer.flush()
    async with sessions.begin() as s:
        await s.execute(delete(Integration).where(Integration.id == ids[0]))
    assert {k[0] for k in await rollup(sessions)} == {ids[1]}
    assert {k[0] for k in await rollup(sessions, ActivityDay)} == {ids[1]}
    await engine.dispose()


async def test_two_writers_on_one_database_lose_no_counts(db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Two writers (as two hub processes would have) write the same hour and keys at once,
    in opposite orders; every row is counted, none twice, and neither deadlocks the other."""
    engine, sessions, ids = await make_db(db_url, integrations=2)

    async def interleaved(conn: Any, changes: Any) -> None:
        # One rollup row at a time with a pause between, so the two transactions hold
        # some rows each while they ask for more: the order they lock rows in decides
        # whether PostgreSQL has to break a deadlock.
        for stmt, params in rollup_module.rollup_statements(conn.dialect.name, changes):
            for one in params:
                await conn.execute(stmt, [one])
                await asyncio.sleep(0.001)  # the behaviour under test: hand the loop to the other writer mid-transaction

    monkeypatch.setattr(writer_module, "apply_changes", interleaved)
    second = create_engine(db_url)
    writers = [ActivityWriter(sessions, flush_interval=0.001, batch_size=20), ActivityWriter(sessionmaker(second), flush_interval=0.001, batch_size=20)]
    actions = ["a", "b", "c", "d"]
    per_writer = 600

    async def drive(writer: ActivityWriter, order: list[str]) -> None:
        await writer.start()
        for n in range(per_writer):
            await writer.record(call(ids[n // 4 % 2], NOW - timedelta(seconds=n), action=order[n % 4], ms=n % 50))
        await writer.stop()

    await asyncio.gather(drive(writers[0], actions), drive(writers[1], actions[::-1]))
    assert [r.getMessage() for r in caplog.records if r.name == "hub.activity"] == []  # no write failed, none retried
    kept = await assert_both_levels_exact(sessions)
    assert sum(sum(v[:3]) for v in kept.values()) == 2 * per_writer
    await second.dispose()
    await engine.dispose()


# --- the migration -------------------------------------------------------------------


@pytest.fixture
async def blank_db_url(tmp_path: Any, _pg_url: str | None) -> AsyncIterator[str]:
    """An empty database: a file on SQLite, a database of its own on PostgreSQL."""
    if not _pg_url:
        yield f"sqlite+aiosqlite:///{tmp_path}/blank.db"
        return
    url = make_url(_pg_url)
    blank = url.set(database=f"{url.database}_blank")
    admin = create_async_engine(_pg_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{blank.database}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{blank.database}"'))
    except DBAPIError:
        await admin.dispose()
        pytest.skip("this PostgreSQL role may not create databases")
    yield blank.render_as_string(hide_password=False)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{blank.database}" WITH (FORCE)'))
    await admin.dispose()


INTEGRATIONS_0001 = table(
    "integrations", column("id", BigInteger), column("user_id", String), column("provider", String), column("status", String),
    column("scopes", JSON), column("metadata", JSON), column("version", Integer), column("created_at", DateTime(timezone=True)),
    column("updated_at", DateTime(timezone=True)),
)


async def test_upgrade_backfills_the_rollup_from_existing_rows(blank_db_url: str) -> None:
    engine = create_engine(blank_db_url)
    await upgrade(engine, "0001")
    rng = random.Random(3)
    sessions = sessionmaker(engine)
    async with engine.begin() as conn:
        # The table as revision 0001 made it: the ORM model has columns of later revisions.
        await conn.execute(insert(INTEGRATIONS_0001), [
            {"id": i, "user_id": f"u{i}", "provider": "slack", "status": "ACTIVE", "scopes": [], "metadata": {}, "version": 1,
             "created_at": NOW, "updated_at": NOW} for i in (1, 2)
        ])
        rows = [
            {"integration_id": 1 + n % 2, "kind": "transition" if n % 50 == 0 else "call", "action": rng.choice("xyz"),
             "status": rng.choice(["SUCCESS", "SUCCESS", "FAILED", "PENDING"]), "duration_ms": rng.randrange(0, 5000),
             "created_at": NOW - timedelta(minutes=rng.randrange(0, 40 * 24 * 60)), "request_data": None, "response_data": None,
             "error_message": None}
            for n in range(3000)
        ]
        await conn.execute(insert(IntegrationLog.__table__), rows)

    await upgrade(engine)
    await assert_both_levels_exact(sessions)
    # Rows written after the upgrade land on the days the backfill made, not beside them.
    days_before = await rollup(sessions, ActivityDay)
    writer = ActivityWriter(sessions)
    for r in rows[:200]:
        await writer.record(r)
    await writer.flush()
    days_after = await rollup(sessions, ActivityDay)
    assert set(days_after) >= set(days_before) and len(days_after) == len(days_before)
    await assert_both_levels_exact(sessions)
    for iid in (1, 2):
        calls = await calls_of(sessions, iid)
        for days in (1, 7, 30, 90, 365):
            async with sessions() as s:
                assert await stats(s, iid, days, now=NOW) == expected_stats(calls, days, NOW)
    await engine.dispose()


async def test_postgresql_plans_no_parallel_workers_for_the_rollup(db_url: str) -> None:
    """A statistics query reads about a millisecond's worth of rollup rows; starting
    parallel workers for it would cost several times that (bench/p3scale.py's plans)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL planner setting")
    engine, _, _ = await make_db(db_url, integrations=1)
    async with engine.connect() as conn:
        options = dict((await conn.execute(text(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('activity_hourly', 'activity_daily')"))).all())
    assert options == {"activity_hourly": ["parallel_workers=0"], "activity_daily": ["parallel_workers=0"]}
    await engine.dispose()

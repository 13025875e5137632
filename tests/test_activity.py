"""Activity rows: the buffered writer loses nothing, and stats and logs are computed right."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, insert, select

from hub.activity import ActivityWriter, LogQuery, list_logs, rebuild_rollups, stats
from hub.store.models import Integration, IntegrationLog, utcnow
from hub.store.engine import create_engine, sessionmaker, upgrade


async def make_db(db_url):
    engine = create_engine(db_url)
    await upgrade(engine)
    sessions = sessionmaker(engine)
    async with sessions.begin() as s:
        s.add(Integration(user_id="u", provider="slack", status="ACTIVE", scopes=[], meta={}, version=1))
        s.add(Integration(user_id="v", provider="slack", status="ACTIVE", scopes=[], meta={}, version=1))
    return engine, sessions


def row(integration_id=1, action="post_message", status="SUCCESS", duration=10, age=timedelta(0), kind="call"):
    return {
        "integration_id": integration_id, "action": action, "status": status, "duration_ms": duration,
        "created_at": utcnow() - age, "kind": kind,
    }


async def insert_rows(sessions, rows) -> None:
    """Rows written around the activity writer, as a bulk load would: the rollup is rebuilt."""
    async with sessions.begin() as s:
        await s.execute(insert(IntegrationLog), rows)
        await rebuild_rollups(s)


async def count(sessions) -> int:
    async with sessions() as s:
        return await s.scalar(select(func.count()).select_from(IntegrationLog))


async def test_writer_buffers_then_writes_everything(db_url):
    engine, sessions = await make_db(db_url)
    writer = ActivityWriter(sessions, flush_interval=0.05, batch_size=100, buffer_limit=50)
    await writer.start()
    # more rows than the buffer holds: record() must wait for room, never drop
    await asyncio.gather(*(writer.record(row(duration=i)) for i in range(1000)))
    await writer.stop()
    assert await count(sessions) == 1000
    assert writer.written == 1000
    await engine.dispose()


async def test_writer_keeps_rows_while_the_database_fails(db_url, monkeypatch):
    engine, sessions = await make_db(db_url)
    writer = ActivityWriter(sessions, flush_interval=0.01, batch_size=10, buffer_limit=100)
    real = writer._sessions
    failures = {"left": 3}

    class Flaky:
        def begin(self):
            if failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("database away")
            return real.begin()

    writer._sessions = Flaky()
    await writer.start()
    for i in range(25):
        await writer.record(row())
    await writer.stop()
    assert await count(sessions) == 25
    await engine.dispose()


async def test_a_deadlock_victim_batch_is_retried_whole_not_split(db_url):
    """PostgreSQL reports a deadlock (SQLSTATE 40P01) as a plain DBAPIError; the batch is
    fine and must be retried as it is, not taken for bad rows and written one by one."""
    from sqlalchemy.exc import DBAPIError

    class Deadlock(Exception):
        sqlstate = "40P01"

    engine, sessions = await make_db(db_url)
    writer = ActivityWriter(sessions, flush_interval=0.01, batch_size=50, buffer_limit=100)
    real = writer._insert
    sizes: list[int] = []

    async def insert_once_deadlocked(rows):
        sizes.append(len(rows))
        if len(sizes) == 1:
            raise DBAPIError("INSERT ...", None, Deadlock("deadlock detected"))
        await real(rows)

    writer._insert = insert_once_deadlocked
    await writer.start()
    await asyncio.gather(*(writer.record(row(duration=i)) for i in range(20)))
    await writer.stop()
    assert await count(sessions) == 20
    assert sizes[0] == sizes[1] and 1 not in sizes, sizes
    await engine.dispose()


async def test_stats_shape_and_numbers(db_url):
    engine, sessions = await make_db(db_url)
    rows = [row(action="post_message", duration=d) for d in range(1, 31)]  # 30 successes, 1..30 ms
    rows += [row(action="list_channels", duration=100) for _ in range(4)]
    rows += [row(action="list_channels", status="FAILED", duration=200)]
    rows += [row(age=timedelta(days=8))]  # outside the window
    rows += [row(integration_id=2)]  # another integration
    rows += [row(kind="transition", action="status_change")]  # not a request
    await insert_rows(sessions, rows)
    async with sessions() as s:
        result = await stats(s, 1, 7)
    assert result == {
        "period": "Last 7 days",
        "totalRequests": 35,
        "successfulRequests": 34,
        "failedRequests": 1,
        "successRate": "97.14%",
        "averageDuration": round((sum(range(1, 31)) + 400 + 200) / 35),
        "p50Duration": 18,
        "p95Duration": 100,
        "percentilesEstimated": False,
        "actionBreakdown": [{"action": "post_message", "count": 30}, {"action": "list_channels", "count": 5}],
    }
    async with sessions() as s:
        assert (await stats(s, 1, 1))["period"] == "Last 1 day"
        empty = await stats(s, 99, 30)
    assert empty["totalRequests"] == 0 and empty["successRate"] == "0.00%" and empty["actionBreakdown"] == []
    await engine.dispose()


async def test_logs_filters_and_keyset_pages(db_url):
    engine, sessions = await make_db(db_url)
    rows = [row(action="a" if i % 2 else "b", status="FAILED" if i % 3 == 0 else "SUCCESS", age=timedelta(hours=i)) for i in range(25)]
    await insert_rows(sessions, rows)
    async with sessions() as s:
        seen = []
        cursor = None
        while True:
            page = await list_logs(s, 1, LogQuery(limit=10, cursor=cursor))
            seen += [i["id"] for i in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and len(seen) == 25 == len(set(seen))
        failed = await list_logs(s, 1, LogQuery(status="FAILED", limit=200))
        assert len(failed["items"]) == 9 and {i["status"] for i in failed["items"]} == {"FAILED"}
        only_a = await list_logs(s, 1, LogQuery(action="a", limit=200))
        assert {i["action"] for i in only_a["items"]} == {"a"} and len(only_a["items"]) == 12
        recent = await list_logs(s, 1, LogQuery(since=utcnow() - timedelta(hours=4, minutes=30), limit=200))
        assert len(recent["items"]) == 5
    await engine.dispose()


async def test_daily_series_has_every_day(db_url):
    from hub.activity import daily

    engine, sessions = await make_db(db_url)
    now = utcnow()
    rows = [row(age=timedelta(days=1)), row(age=timedelta(days=1), status="FAILED"), row(), row(), row(age=timedelta(days=9))]
    await insert_rows(sessions, rows)
    async with sessions() as s:
        result = await daily(s, 1, 7, now=now)
    assert result["period"] == "Last 7 days" and len(result["days"]) == 7
    assert result["days"][-1] == {"date": now.date().isoformat(), "successful": 2, "failed": 0}
    assert result["days"][-2] == {"date": (now - timedelta(days=1)).date().isoformat(), "successful": 1, "failed": 1}
    assert sum(d["successful"] + d["failed"] for d in result["days"][:-2]) == 0
    await engine.dispose()


async def test_payloads_encoded_once_are_stored_as_the_values_they_encode(db_url):
    """The recorder encodes each payload once (to measure it) and the writer stores that
    text as it is: what is read back is the value, never a JSON string holding it, on a
    batch insert and on a PENDING row's completion alike."""
    from hub.activity.recorder import Recorder

    engine, sessions = await make_db(db_url)
    writer = ActivityWriter(sessions, flush_interval=0.01, batch_size=10, buffer_limit=100)
    recorder = Recorder(writer, max_payload_bytes=1000, secrets=list)
    async with sessions() as s:
        integration = await s.get(Integration, 1)
    await writer.start()
    request = {"text": "héllo €", "n": [1, 2.5, None, True], "lone": "\ud800"}
    started = asyncio.get_running_loop().time()
    await recorder.record(integration, "post_message", started, request=request, response={"ok": True, "big": "x" * 2000})
    pending = await recorder.start_pending(integration, "export", {"from": "ü"}, ())
    await recorder.record(integration, "export", started, request={"from": "ü"}, response=["done"], pending_id=pending)
    await writer.stop()
    async with sessions() as s:
        rows = {r.action: r for r in (await s.scalars(select(IntegrationLog))).all()}
    assert rows["post_message"].request_data == request
    cut = rows["post_message"].response_data
    assert cut["truncated"] is True and cut["preview"].startswith('{"ok": true')
    assert rows["export"].request_data == {"from": "ü"} and rows["export"].response_data == ["done"]
    await engine.dispose()

"""What one action call costs inside the hub, step by step.

Builds a real :class:`hub.core.hub.Hub` in this process (SQLite in a temporary directory,
or a private PostgreSQL database with ``--pg``), connects Slack through the hub's own
connect code against the fake Slack (bench/upstream.py, in a process of its own), and
times each step ``POST /api/integrations/slack/message`` goes through, one call at a
time with nothing else running: no concurrency, no contention, so each figure is the
step's own cost in microseconds of this process. Beside some of them, the least the same
job can cost (the "minimum" column): the bare driver query, a bare aiohttp request.

    .venv/bin/python bench/hotpath.py [--pg] [-n 2000]

Nothing in hub/ is changed; where a step is timed apart from its neighbours (the
activity buffer, the access log) the bench calls the same functions the hub calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import bench as B  # noqa: E402  (bench/bench.py)

USER = "hotpath-user"


class Cost(float):
    """Wall-clock microseconds per call, carrying the CPU microseconds of this process
    (every thread of it: aiosqlite's included) per call as ``.cpu``."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> "Cost":
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj


async def timed(n: int, fn: Any, *, is_async: bool = True) -> Cost:
    """Median of 5 rounds of n/5 calls, in microseconds per call (wall and CPU)."""
    rounds = []
    per = max(1, n // 5)
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        if is_async:
            for _ in range(per):
                await fn()
        else:
            for _ in range(per):
                fn()
        rounds.append(((time.perf_counter() - t0) / per * 1e6, (time.process_time() - c0) / per * 1e6))
    rounds.sort()
    return Cost(*rounds[len(rounds) // 2])


async def connect(hub: Any, upstream_url: str) -> None:
    from hub.infra.auth import Caller

    begun = await hub.connect.begin(Caller(USER, {}), "slack")
    parts = urlsplit(begun["authUrl"])
    form = dict(parse_qsl(parts.query))
    form["decision"] = "allow"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{upstream_url}/oauth/v2/authorize", data=form, allow_redirects=False) as r:
            query = dict(parse_qsl(urlsplit(r.headers["Location"]).query))
    outcome = await hub.connect.complete_callback("slack", query)
    assert outcome.ok, outcome.message


async def run(args: argparse.Namespace, db_url: str, upstream: B.Upstream) -> list[tuple[str, float, str, str]]:
    from hub.infra.config import config_from_dict
    from hub.infra.serverlog import setup as log_setup
    from hub.core.hub import Hub
    from hub.core.manage import require
    from hub.store.integrations import decrypt_token
    from hub.types import CallContext
    from hub.web import responses
    from hub.web import inputs as webinputs
    from hub.infra import metrics
    from hub.infra.secrets import Secrets
    from hub.registry import Registry

    n = args.n
    work = Path(tempfile.mkdtemp(prefix="hub-hotpath-"))
    cfg_path = work / "hub.json"
    B.hub_config(cfg_path, port=9, db_url=db_url, slack=upstream, keys=args.keys)
    config = config_from_dict(json.loads(cfg_path.read_text()), env={})
    registry = Registry()
    registry.load_entry_points()
    hub = Hub(config, registry, Secrets(B.JWT_SECRET, args.keys))
    await hub.start()
    out: list[tuple[str, float, str, str]] = []
    try:
        await connect(hub, upstream.url)
        header = f"Bearer {B.jwt_for(USER)}"
        rt, action, _ = hub.actions.resolve("slack", "POST", "message")
        raw = B.BODY.encode()
        data = {"channel": "general", "text": "Hello from the bench"}
        caller = hub.authenticate(header)

        # 1. the request id and the access-log line the middleware writes for every request
        out.append(("request id (uuid4)", await timed(n, lambda: uuid.uuid4().hex, is_async=False), "", "web/middleware.py request_context"))
        devnull = open(os.devnull, "w")
        redactor = log_setup("INFO")
        logging.getLogger().handlers[0].stream = devnull  # type: ignore[attr-defined]
        redactor.secrets = hub.secret_values()
        access = logging.getLogger("hub.access")
        out.append(("access-log line (INFO, redacting formatter)", await timed(n, lambda: access.info(
            "%s %s %s %.1fms [request %s]", "POST", "/api/integrations/slack/message", 200, 3.2, "0" * 32), is_async=False),
            "", "web/middleware.py request_context -> infra/serverlog.RedactingFormatter"))
        out.append(("request counter (prometheus)", await timed(n, lambda: metrics.REQUESTS.labels(
            "POST", "/api/integrations/{provider}/{action}", "200").inc(), is_async=False), "", "web/middleware.py"))

        # 2. the caller
        out.append(("JWT verify (HS256)", await timed(n, lambda: hub.authenticate(header), is_async=False), "", "infra/auth.py JWTVerifier.verify"))
        # 3. the body: strict JSON, then the action's JSON Schema
        strict = getattr(webinputs, "_no_duplicates", None)
        if strict is not None:
            out.append(("JSON body, strict parse", await timed(n, lambda: json.loads(
                raw, object_pairs_hook=webinputs._no_duplicates, parse_constant=webinputs._no_constants), is_async=False),
                f"{await timed(n, lambda: json.loads(raw), is_async=False):.1f} (plain json.loads)", "web/inputs.py json_object"))
        out.append(("route match + input validation (jsonschema)", await timed(n, lambda: (hub.actions.resolve("slack", "POST", "message"),
                    rt.validators[action.name].validate(data)), is_async=False), "", "core/actions.py resolve, core/validation.py"))

        # 4. the integration row
        async def read_row() -> Any:
            return await require(hub.store, caller.user_id, rt, allow_deleted=False)

        row = await read_row()
        out.append(("integration row read", await timed(n, read_row), f"{await raw_row_read(db_url, row.id, n):.1f} (bare async driver)",
                    "store/rowread.py IntegrationReader: one SELECT (sqlite3 on the loop, or asyncpg fetchrow)"))

        # 4b. the same read through an ORM session, as the hub did it before hub/store/rowread.py
        out.append(("  for comparison: the same read through an ORM session", await timed(n, lambda: orm_row_read(hub)), "",
                    "bench/hotpath.py orm_row_read"))

        # 5. the token
        out.append(("token decrypt (AES-GCM, 1 field)", await timed(n, lambda: decrypt_token(hub.keyring, row), is_async=False), "",
                    "store/integrations.py decrypt_token"))
        out.append(("token session: usable()", await timed(n, lambda: hub.tokens.usable(rt, row)), "", "core/tokens.py usable: decrypt + expiry"))
        snap = await hub.tokens.usable(rt, row)

        # 6. hook dispatch and the call context
        async def context() -> Any:
            headers = await hub.registry.call(rt.name, "hub_auth_headers", provider=rt.provider, token=snap.token)
            return CallContext(provider=rt.provider, action=action, input=dict(data), user_id=caller.user_id,
                               http=rt.provider.http.with_headers(headers), access_token=snap.token.access_token, metadata={}, state={})

        out.append(("hook dispatch + CallContext", await timed(n, context), "", "registry.py Registry.call, core/actions.py attempt"))
        ctx = await context()

        # 7. the upstream call (the fake Slack in its own process) and the plugin's handler
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as bare:
            target = upstream.url + "/api/chat.postMessage"
            hdrs = {"Authorization": f"Bearer {snap.token.access_token}", "Content-Type": "application/json"}

            async def bare_post() -> None:
                async with bare.post(target, data=raw, headers=hdrs) as r:
                    await r.read()

            bare_us = await timed(n, bare_post)
            bare_txt = f"{bare_us:.1f} (bare aiohttp; CPU {bare_us.cpu:.1f})"
        out.append(("upstream call + response check + handler", await timed(n, lambda: action.handler(ctx)), bare_txt,
                    "upstream.py ProviderHTTP.request, hub_slack.post_message"))
        result = await action.handler(ctx)

        # 8. the activity row: prepared (redaction, size cap, metrics) and handed to the buffer
        secrets_ = (snap.token.access_token,)
        real_record = hub.activity.record

        async def no_buffer(_row: Any) -> None:
            return None

        hub.activity.record = no_buffer  # type: ignore[method-assign]
        started = time.perf_counter()
        out.append(("activity row prepared (redact, cap, metrics)", await timed(n, lambda: hub.recorder.record(
            row, action.name, started, request=data, response=result, secrets_=secrets_)), "", "activity/recorder.py Recorder.record"))
        hub.activity.record = real_record  # type: ignore[method-assign]

        # 9. the response
        out.append(("response envelope (JSON)", await timed(n, lambda: responses.ok(result, "post_message succeeded"), is_async=False), "",
                    "web/responses.py ok"))

        # 10. the buffered writer: moving rows through its queue, and the insert itself
        out.append(("activity writer: queue handling per row", await writer_queue_cost(n * 5), "", "activity/writer.py ActivityWriter._run"))
        ins, bare_ins = await insert_cost(hub, row.id, db_url)
        out.append(("activity writer: insert per row (batches of 500)", ins, f"{bare_ins:.1f} (bare driver executemany)",
                    "activity/writer.py ActivityWriter._insert: Core executemany + hourly rollup upsert"))

        # 11. everything in run_action together, one call at a time; first without the
        # activity buffer (rows prepared, then dropped), then as the hub runs it
        await hub.activity.flush()
        hub.activity.record = no_buffer  # type: ignore[method-assign]
        out.append(("run_action, whole, activity rows dropped", await timed(n, lambda: hub.actions.run(caller, rt, action, dict(data))),
                    bare_txt, "core/actions.py ActionRunner.run"))
        hub.activity.record = real_record  # type: ignore[method-assign]
        out.append(("run_action, whole (sequential)", await timed(n, lambda: hub.actions.run(caller, rt, action, dict(data))),
                    bare_txt, "core/actions.py ActionRunner.run"))
        await hub.activity.flush()
        devnull.close()
    finally:
        await hub.stop()
    return out


async def orm_row_read(hub: Any) -> Any:
    """An AsyncSession, a SELECT, instance loading and a rollback: the old read."""
    from sqlalchemy import select

    from hub.store.models import Integration

    async with hub.sessions() as session:
        return await session.scalar(select(Integration).where(Integration.user_id == USER, Integration.provider == "slack"))


async def raw_row_read(db_url: str, integration_id: int, n: int) -> float:
    """The same row by primary key through the bare async driver, one statement."""
    sql = "SELECT * FROM integrations WHERE user_id = {p1} AND provider = {p2}"
    if db_url.startswith("sqlite"):
        import aiosqlite

        async with aiosqlite.connect(db_url.split(":///", 1)[1]) as db:
            async def one() -> None:
                async with db.execute(sql.format(p1="?", p2="?"), (USER, "slack")) as cur:
                    await cur.fetchone()
            return await timed(n, one)
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        stmt = await conn.prepare(sql.format(p1="$1", p2="$2"))

        async def one_pg() -> None:
            await stmt.fetchrow(USER, "slack")
        return await timed(n, one_pg)
    finally:
        await conn.close()


async def writer_queue_cost(rows: int) -> Cost:
    """The writer's loop with the database write replaced by nothing: what taking rows off
    its queue costs (one asyncio.wait_for per row)."""
    from hub.activity import ActivityWriter

    writer = ActivityWriter(None, flush_interval=0.2, batch_size=500, buffer_limit=10_000)  # type: ignore[arg-type]

    async def nothing(batch: list[Any]) -> None:
        return None

    writer._write = nothing  # type: ignore[method-assign]
    await writer.start()
    row = {"integration_id": 1, "action": "x", "status": "SUCCESS"}
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(rows):
        await writer.record(row)
    await writer.flush()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    await writer.stop()
    # the producer's own share (dict copy, timestamp, put) measured apart and taken out
    q: asyncio.Queue[Any] = asyncio.Queue()
    from hub.store.models import utcnow

    t1 = time.perf_counter()
    for _ in range(rows):
        item = dict(row)
        item.setdefault("created_at", utcnow())
        item.setdefault("kind", "call")
        q.put_nowait(item)
    producer = time.perf_counter() - t1
    return Cost((elapsed - producer) / rows * 1e6, (cpu - producer) / rows * 1e6)


async def insert_cost(hub: Any, integration_id: int, db_url: str, rows: int = 5000) -> tuple[Cost, float]:
    batch = [B._p4_row(integration_id, i) for i in range(500)]
    from hub.store.models import utcnow

    for r in batch:
        r["created_at"] = utcnow()
        r["kind"] = "call"
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(rows // 500):
        await hub.activity._write([dict(r) for r in batch])
    orm = Cost((time.perf_counter() - t0) / rows * 1e6, (time.process_time() - c0) / rows * 1e6)
    secs, _ = await B._driver_insert(db_url, integration_id, rows, 500)
    return orm, secs / rows * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=2000, help="calls per step (default 2000)")
    p.add_argument("--pg", action="store_true", help="PostgreSQL (a private database) instead of SQLite")
    p.add_argument("--pg-url", default=os.environ.get("HUB_BENCH_PG_URL", B.DEFAULT_PG))
    args = p.parse_args()
    from hub.infra.crypto import generate_key

    args.keys = generate_key("hot1")
    work = Path(tempfile.mkdtemp(prefix="hub-hotpath-"))
    procs = B.Procs(work)
    pg = None
    try:
        upstream = B.start_upstream(procs, "upstream")
        if args.pg:
            pg = B.PgDatabases(args.pg_url)
            db_url = asyncio.run(pg.create("hotpath"))
        else:
            db_url = f"sqlite+aiosqlite:///{work}/hub.db"
        asyncio.run(B.migrate(db_url))
        steps = asyncio.run(run(args, db_url, upstream))
    finally:
        procs.stop_all()
        if pg is not None:
            asyncio.run(pg.drop_all())
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"\nHot path of POST /api/integrations/slack/message, {backend}, one call at a time, median of 5 rounds of {args.n // 5}:\n")
    print("| step | wall µs | CPU µs | minimum for the same job, wall µs | where |")
    print("|---|---:|---:|---:|---|")
    for name, us, minimum, where in steps:
        cpu = getattr(us, "cpu", None)
        print(f"| {name} | {us:,.1f} | {'' if cpu is None else f'{cpu:,.1f}'} | {minimum} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

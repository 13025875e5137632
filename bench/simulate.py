"""A scaled-down day of docs/scaling.md on the local PostgreSQL, checked against the model.

Run through ``bench/simulate`` (see bench/README.md). What it does:

1. creates a private PostgreSQL database and migrates it;
2. starts the fakes of the three provider plugins in one process (bench/simupstream.py),
   each answering after ``--delay-ms``;
3. stores ``integrations / scale`` integrations of ``users / scale`` users, a third per
   provider, with tokens the fakes issued and expiry times spread as they are in the steady
   state (so the background sweep has a steady stream of tokens falling due, as it would
   after months of running);
4. starts ``--processes`` ``hub serve`` processes on that database;
5. sends calls at the scaled peak rate (Poisson arrivals, users picked at random,
   providers in the model's mix, ``--failures`` of them refused by the provider), spread
   over the processes as a load balancer would;
6. stops the hubs (which write what they buffered), then measures the rows, bytes,
   refreshes, latencies, connections and CPU, and prints them beside bench/model.py's
   predictions. The exit status is 1 when a checked prediction misses by more than its
   tolerance, 0 otherwise.

Nothing here is a test (it never runs in CI); the figures go to docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import model
from bench import HUB_CMD, JWT_SECRET, PY, Procs, cpu_seconds, free_port, hub_env, log, migrate, system_busy, wait_ready

BENCH = Path(__file__).resolve().parent
# The hub's own share of a call's p99 when it is far from busy: P2's added p99 is 1.9 ms over a
# passthrough, whose p99 is 3.4 ms over nothing (docs/performance.md); a PostgreSQL row read adds
# about half a millisecond more.
HUB_P99_MS = 6.0
P99_TOLERANCE_MS = 15.0
# The p99 is judged only when the whole machine was less busy than this share of its cores.
SATURATED = 0.8
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# A call the provider refuses, per provider (each is an ordinary error answer and an activity row).
CALLS = {
    "slack": (("POST", "/api/integrations/slack/message", {"channel": "general", "text": "Hello from the simulation"}),
              ("POST", "/api/integrations/slack/message", {"channel": "no-such-channel", "text": "Lost"})),
    "google_calendar": (("GET", "/api/integrations/google_calendar/calendars", None),
                        ("GET", "/api/integrations/google_calendar/events?calendarId=nobody%40example.com", None)),
    "trello": (("GET", "/api/integrations/trello/boards", None),
               ("GET", "/api/integrations/trello/boards/000000000000000000000000", None)),
}


# --- setting up ------------------------------------------------------------------------------------


def start_fakes(procs: Procs, delay_ms: float) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen([PY, str(BENCH / "simupstream.py"), "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE,
                            stderr=open(procs.logdir / "fakes.log", "ab"), stdin=subprocess.DEVNULL)
    procs.live[proc.pid] = ("fakes", proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the fakes did not start (see {procs.logdir / 'fakes.log'})")
    return proc, json.loads(line)


async def seed(db_url: str, fakes: dict[str, Any], keys: str, load: model.Load, config: model.Config) -> dict[str, int]:
    """Store ``load.integrations`` ACTIVE integrations with the fakes' tokens, encrypted as the
    hub stores them; a token falls due for the sweep at a moment spread evenly over its period."""
    from hub.infra.crypto import KeyRing, token_context
    from hub.store.engine import create_engine
    from hub.store.models import Integration, utcnow

    ring = KeyRing.parse(keys)
    rng = random.Random(17)
    users = load.integrations // len(load.providers)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        for p in load.providers:
            async with http.post(f"{fakes[p.name]['base']}/_sim/mint", params={"count": str(users)}) as r:
                pairs = await r.json()
            counts[p.name] = len(pairs)
            for i, pair in enumerate(pairs):
                user = f"sim-user-{i:07d}"
                expiry = updated = None
                if p.token_life_s:
                    period = model.refresh_period_s(p.token_life_s, config.refresh_ahead_s)
                    ahead = p.token_life_s - period
                    expiry = now + timedelta(seconds=ahead + rng.uniform(5, period))
                    updated = expiry - timedelta(seconds=p.token_life_s)
                refresh = pair["refresh_token"]
                rows.append({
                    "user_id": user, "provider": p.name, "status": "ACTIVE", "status_reason": None,
                    "access_token": ring.encrypt(pair["access_token"], token_context(user, p.name, "access_token")),
                    "refresh_token": ring.encrypt(refresh, token_context(user, p.name, "refresh_token")) if refresh else None,
                    "token_expiry": expiry, "scopes": [], "meta": {}, "created_at": now, "updated_at": updated or now,
                    "last_sync_at": None, "version": 1, "refresh_lease_until": None,
                })
    engine = create_engine(db_url)
    try:
        table = Integration.__table__
        async with engine.begin() as conn:
            for start in range(0, len(rows), 5_000):
                await conn.execute(table.insert(), [{("metadata" if k == "meta" else k): v for k, v in r.items()} for r in rows[start:start + 5_000]])
    finally:
        await engine.dispose()
    return counts


def write_config(path: Path, *, port: int, db_url: str, fakes: dict[str, Any], keys: str, config: model.Config, refresh: bool = True) -> None:
    section = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        "database": {"url": db_url, "pool_size": config.pool_size},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": keys},
        "refresh": {"ahead_seconds": int(config.refresh_ahead_s), "interval_seconds": config.refresh_interval_s if refresh else 0,
                    "batch_size": config.refresh_batch, "concurrency": config.refresh_concurrency},
        "providers": {name: info["settings"] for name, info in fakes.items()},
    }
    path.write_text(json.dumps(section, indent=2))  # JSON is YAML


async def admin(server_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def database_url(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# --- the load ------------------------------------------------------------------------------------------


class Load:
    """Open-loop Poisson arrivals: a call starts on time whether or not earlier ones are done."""

    def __init__(self, hubs: list[str], users: int, mix: tuple[model.Provider, ...], failures: float, fakes: dict[str, str],
                 seed: int = 5) -> None:
        from hub.infra.auth import issue_token

        self.hubs, self.users, self.failures, self.fakes = hubs, users, failures, fakes
        self.direct: list[float] = []  # the same fakes asked directly: this machine's floor, measured alongside
        self.names = [p.name for p in mix]
        self.weights = [p.call_share for p in mix]
        self.rng = random.Random(seed)
        self.jwts: dict[str, str] = {}
        self.issue = lambda user: issue_token(JWT_SECRET, user, ttl_seconds=24 * 3600)
        self.latencies: list[float] = []  # of the calls started after the warm-up
        self.by_provider: dict[str, list[float]] = {}
        self.measuring = False
        self.measured_sent = 0
        self.statuses: dict[int, int] = {}
        self.sent = 0
        self.errors = 0

    def _jwt(self, user: str) -> str:
        if user not in self.jwts:
            self.jwts[user] = self.issue(user)
        return self.jwts[user]

    async def one(self, http: aiohttp.ClientSession, hub: str, user: str, provider: str, failing: bool, counted: bool) -> None:
        method, path, body = CALLS[provider][1 if failing else 0]
        started = time.perf_counter()
        try:
            async with http.request(method, hub + path, json=body, headers={"Authorization": f"Bearer {self._jwt(user)}"}) as r:
                await r.read()
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.errors += 1
            return
        if counted:
            took = time.perf_counter() - started
            self.latencies.append(took)
            self.by_provider.setdefault(provider, []).append(took)

    async def floor(self, http: aiohttp.ClientSession, provider: str) -> None:
        """One request straight to a fake (it answers after the same delay as its API)."""
        started = time.perf_counter()
        try:
            async with http.get(self.fakes[provider] + "/_sim/counts") as r:
                await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return
        self.direct.append(time.perf_counter() - started)

    async def run(self, rate: float, warmup: float, duration: float, mark: Any) -> float:
        """Calls for ``warmup`` seconds (not measured), then calls ``mark()`` and goes on for
        ``duration`` seconds; the seconds measured (from the mark to the last answer)."""
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
            tasks: set[asyncio.Task[None]] = set()
            loop = asyncio.get_running_loop()
            start = loop.time()
            due = start
            measured_from = start + warmup
            while True:
                due += self.rng.expovariate(rate)
                if due >= measured_from + duration:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not self.measuring and due >= measured_from:
                    await mark()
                    self.measuring = True
                    measured_from = loop.time()
                user = f"sim-user-{self.rng.randrange(self.users):07d}"
                provider = self.rng.choices(self.names, self.weights)[0]
                failing = self.rng.random() < self.failures
                hub = self.hubs[self.sent % len(self.hubs)]
                self.sent += 1
                self.measured_sent += self.measuring
                task = asyncio.create_task(self.one(http, hub, user, provider, failing, self.measuring))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if self.measuring and self.rng.random() < 0.25:
                    extra = asyncio.create_task(self.floor(http, provider))
                    tasks.add(extra)
                    extra.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
            return loop.time() - measured_from


# --- measuring ------------------------------------------------------------------------------------------


async def backend_pids(db_url: str, dbname: str) -> list[int]:
    rows = await (_fetch(db_url, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", dbname))
    return [r[0] for r in rows]


async def _fetch(db_url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except OSError:
            pass
    return out


# Summed over the table's partitions and itself: the parent of a partitioned table holds no
# rows or index pages of its own, and a plain table has no partition tree.
SIZES = """
WITH parts AS (SELECT relid FROM pg_partition_tree('{t}') UNION SELECT '{t}'::regclass)
SELECT (SELECT count(*) FROM {t}) AS n,
       (SELECT sum(pg_relation_size(p.relid) + coalesce(pg_total_relation_size(c.reltoastrelid), 0))
          FROM parts p JOIN pg_class c ON c.oid = p.relid)::bigint AS heap,
       (SELECT sum(pg_indexes_size(p.relid)) FROM parts p)::bigint AS indexes,
       (SELECT avg(pg_column_size(x.*)) FROM {t} x) AS tuple
"""


async def measure_db(db_url: str, t0: float, t1: float, sample_rows: int) -> dict[str, Any]:
    """Counts of the run's rows; then its rows copied to ``sample_rows`` (each copy for a
    random integration and moment of the last 30 days, as calls arrive) with their rollup
    keys, and the bytes a row of each table takes at that size."""
    out: dict[str, Any] = {}
    window = "created_at >= to_timestamp($1) AND created_at < to_timestamp($2)"
    by_action = await _fetch(db_url, f"SELECT action, status, count(*) FROM integration_logs WHERE {window} GROUP BY 1, 2", t0, t1)
    out["window"] = {f"{r[0]}/{r[1]}": r[2] for r in by_action}
    all_rows = await _fetch(db_url, "SELECT action, count(*) FROM integration_logs GROUP BY 1")
    out["all"] = {r[0]: r[1] for r in all_rows}
    n = sum(out["all"].values())
    out["run_rows"], out["run_rollup_rows"] = n, (await _fetch(db_url, "SELECT count(*) FROM activity_hourly"))[0][0]
    plan = await _fetch(db_url, """EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM integrations WHERE status = 'ACTIVE'
        AND refresh_token IS NOT NULL AND token_expiry < now() + interval '300 seconds'
        AND (refresh_lease_until IS NULL OR refresh_lease_until <= now()) ORDER BY token_expiry LIMIT 100""")
    top = json.loads(plan[0][0])[0]
    out["sweep_query_ms"] = top["Execution Time"]
    node = top["Plan"]
    while node.get("Plans"):
        node = node["Plans"][0]
    out["sweep_plan"] = node["Node Type"]
    copies = max(0, math.ceil(sample_rows / max(n, 1)) - 1)
    first, count = (await _fetch(db_url, "SELECT min(id), count(*) FROM integrations"))[0]
    if copies:
        await _fetch(db_url, f"""INSERT INTO integration_logs (integration_id, kind, action, status, request_data, response_data,
                error_message, duration_ms, created_at)
            SELECT i.id, l.kind, l.action, l.status, l.request_data, l.response_data, l.error_message, l.duration_ms,
                   now() - random() * interval '30 days'
            FROM integration_logs l CROSS JOIN generate_series(1, {copies}) g
            JOIN integrations i ON i.id = {first} + ((l.id * 7919 + g * 104729) % {count})
            ORDER BY random()""")
        await _fetch(db_url, """INSERT INTO activity_hourly (integration_id, hour, action, bucket, succeeded, failed, pending, total_ms)
            SELECT integration_id, date_trunc('hour', created_at), action, duration_ms, 1, 0, 0, duration_ms
            FROM integration_logs ON CONFLICT DO NOTHING""")
    for table in ("integration_logs", "activity_hourly", "integrations"):
        await _fetch(db_url, f"VACUUM ANALYZE {table}")
        rows = await _fetch(db_url, SIZES.format(t=table))
        out[table] = dict(rows[0]) if rows else {"n": 0, "heap": 0, "indexes": 0, "tuple": 0}
    return out


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] if s else float("nan")


# --- the run -----------------------------------------------------------------------------------------------


class Check:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str, str, str]] = []
        self.failed = 0

    def add(self, what: str, predicted: float, measured: float, tolerance: float | None, *, unit: str = "", absolute: bool = False,
            fmt: str = "{:,.1f}", unjudged: str = "") -> None:
        """``tolerance``: the fraction of the prediction (or, ``absolute``, the amount) by which
        the measure may differ; None is for information only. ``unjudged`` names why a
        prediction is shown but not judged this time."""
        if unjudged and tolerance is not None:
            verdict = "SKIP"
            tol = (f"±{fmt.format(tolerance)}{unit}" if absolute else f"±{tolerance:.0%}") + f" ({unjudged})"
        elif tolerance is None:
            verdict = "INFO"
            tol = "-"
        else:
            miss = abs(measured - predicted) if absolute else abs(measured - predicted) / max(abs(predicted), 1e-9)
            verdict = "PASS" if miss <= tolerance else "MISS"
            self.failed += verdict == "MISS"
            tol = f"±{fmt.format(tolerance)}{unit}" if absolute else f"±{tolerance:.0%}"
        self.lines.append((what, fmt.format(predicted) + unit, fmt.format(measured) + unit, tol, verdict))

    def info(self, what: str, measured: str) -> None:
        self.lines.append((what, "-", measured, "-", "INFO"))

    def table(self) -> str:
        head = ("measure", "predicted", "measured", "tolerance", "")
        rows = [head, *self.lines]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        def line(r: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
        return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows[1:])])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    p.add_argument("--scale", type=float, default=100, help="1/scale of docs/scaling.md's load (default 100)")
    p.add_argument("--processes", type=int, default=3, help="hub serve processes (default 3)")
    p.add_argument("--warmup", type=float, default=15, help="seconds of load before measuring (default 15)")
    p.add_argument("--idle", type=float, default=5, help="seconds the hubs are watched idle before the load (default 5)")
    p.add_argument("--sample-rows", type=int, default=200_000, help="rows the byte sizes are measured on (default 200,000)")
    p.add_argument("--rate", type=float, default=None, help="calls a second (default: the scaled peak)")
    p.add_argument("--delay-ms", type=float, default=50, help="how long each fake takes to answer (default 50)")
    p.add_argument("--failures", type=float, default=0.05, help="share of calls the provider refuses (default 0.05)")
    p.add_argument("--pg", default=os.environ.get("HUB_SIM_DATABASE_URL", DEFAULT_PG),
                   help="a PostgreSQL server (any database on it) where the run creates and drops scaling_sim_<pid> (default %(default)s)")
    p.add_argument("--no-refresh", action="store_true", help="turn the background refresh off (to tell its cost from the calls')")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    a = p.parse_args()

    load = model.Load(failure_share=a.failures).scaled(a.scale)
    config = model.Config()
    costs = model.Costs()
    rate = a.rate or load.peak_rate
    logdir = Path(tempfile.mkdtemp(prefix="hub-simulate-"))
    procs = Procs(logdir)
    dbname = f"scaling_sim_{os.getpid()}"
    from hub.infra.crypto import generate_key

    keys = generate_key("sim")
    started_all = time.perf_counter()
    try:
        asyncio.run(admin(a.pg, f'CREATE DATABASE "{dbname}"'))
        db_url = database_url(a.pg, dbname)
        asyncio.run(migrate(db_url))
        _fakes_proc, fakes = start_fakes(procs, a.delay_ms)
        seeded = asyncio.run(seed(db_url, fakes, keys, load, config))
        log(f"seeded {sum(seeded.values()):,} integrations of {load.integrations // 3:,} users; logs in {logdir}")
        hubs = []
        for i in range(a.processes):
            port = free_port()
            cfg = logdir / f"hub{i}.yaml"
            write_config(cfg, port=port, db_url=db_url, fakes=fakes, keys=keys, config=config, refresh=not a.no_refresh)
            t = time.perf_counter()
            proc = procs.spawn(f"hub{i}", [*HUB_CMD, "serve", "--config", str(cfg)], cwd=logdir, env=hub_env())
            url = f"http://127.0.0.1:{port}"
            wait_ready(url + "/healthz", proc, t)
            hubs.append((proc, url))
        log(f"{a.processes} hub processes ready; {rate:.1f} calls/s for {a.duration:.0f}s")
        driver = Load([u for _, u in hubs], load.integrations // 3, load.providers, a.failures, {k: v["base"] for k, v in fakes.items()})
        hub_pids = [pr.pid for pr, _ in hubs]
        # What the processes spend doing nothing (sweeps, timers), to tell it from the calls' cost.
        idle0, idle_t = cpu_of(hub_pids), time.perf_counter()
        time.sleep(a.idle)
        idle_rate = (sum(cpu_of(hub_pids).values()) - sum(idle0.values())) / (time.perf_counter() - idle_t)
        at_mark: dict[str, Any] = {}

        async def mark() -> None:
            at_mark["hub"] = cpu_of(hub_pids)
            at_mark["pg"] = cpu_of(await backend_pids(a.pg, dbname))
            at_mark["busy"] = system_busy()
            at_mark["t0"] = time.time()

        elapsed = asyncio.run(driver.run(rate, a.warmup, a.duration, mark))
        t0, t1 = at_mark["t0"], time.time()
        busy = (system_busy() - at_mark["busy"]) / elapsed
        hub_cpu = sum(cpu_of(hub_pids).values()) - sum(at_mark["hub"].values())
        pids = asyncio.run(backend_pids(a.pg, dbname))
        pg_cpu1 = cpu_of(pids)
        pg_cpu = sum(v - at_mark["pg"].get(pid, 0.0) for pid, v in pg_cpu1.items())
        connections = len(pids)
        for proc, _ in hubs:
            code, _took = procs.stop(proc)
            if code != 0:
                log(f"hub process {proc.pid} exited with {code}")
        db = asyncio.run(measure_db(db_url, t0, t1, a.sample_rows))
    finally:
        procs.stop_all()
        asyncio.run(admin(a.pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))

    pred = model.predict_run(load, config, costs, rate=rate, duration_s=elapsed, processes=a.processes)
    refresh_rows = sum(v for k, v in db["window"].items() if k.startswith("refresh_token/"))
    rows_window = sum(db["window"].values())
    call_rows_all = sum(v for k, v in db["all"].items() if k != "refresh_token")
    hub_cpu_calls = hub_cpu - idle_rate * elapsed
    logs = db["integration_logs"]
    hourly = db["activity_hourly"]
    minutes = elapsed / 60
    ck = Check()
    ck.add("calls a second (offered, Poisson)", rate, driver.measured_sent / elapsed, 0.10)
    ck.add("activity rows written a second", pred["rows_per_s"], rows_window / elapsed, 0.15)
    ck.add("call rows = calls made (every call, failed or not)", driver.sent, call_rows_all, 0, absolute=True, fmt="{:,.0f}")
    ck.add("background refreshes a minute", pred["refreshes_per_min"], refresh_rows / minutes, 0.30)
    ck.add("rows - calls, a minute (= refreshes)", pred["rows_minus_calls_per_min"], (rows_window - sum(
        v for k, v in db["window"].items() if not k.startswith("refresh_token/"))) / minutes, 0.30)
    floor_p99 = pct(driver.direct, 0.99) * 1000
    p99_pred = floor_p99 + HUB_P99_MS
    # A latency says something about the hub only when the hub could get a core: on a machine
    # kept busy by other work, every hop waits for the scheduler and the tail is the machine's.
    saturated = busy >= SATURATED * (os.cpu_count() or 1)
    ck.add(f"p99 latency (the fakes' own p99, asked directly, + {HUB_P99_MS:g} ms)", p99_pred, pct(driver.latencies, 0.99) * 1000,
           P99_TOLERANCE_MS, absolute=True, unit=" ms", unjudged=f"not judged: machine {busy:.0%} busy" if saturated else "")
    ck.info("  the fakes asked directly: calls, p50 / p99", f"{len(driver.direct):,}, {pct(driver.direct, 0.5) * 1000:.1f} / {floor_p99:.1f} ms")
    ck.info("p50 / p95 latency", f"{pct(driver.latencies, 0.5) * 1000:.1f} / {pct(driver.latencies, 0.95) * 1000:.1f} ms")
    for name, lat in sorted(driver.by_provider.items()):
        ck.info(f"  {name}: calls, p50 / p99", f"{len(lat):,}, {pct(lat, 0.5) * 1000:.1f} / {pct(lat, 0.99) * 1000:.1f} ms")
    ck.info("answers by status", ", ".join(f"{k}: {v:,}" for k, v in sorted(driver.statuses.items())) + f"; transport errors {driver.errors}")
    n = max(int(logs["n"]), 1)
    ck.add("integration_logs bytes a row: heap + TOAST", costs.log_heap_bytes, logs["heap"] / n, 0.30, fmt="{:,.0f}")
    ck.add("integration_logs bytes a row: 6 indexes", costs.log_index_bytes, logs["indexes"] / n, 0.30, fmt="{:,.0f}")
    ck.info("integration_logs average tuple (pg_column_size)", f"{float(logs['tuple'] or 0):,.0f} B over {n:,} rows")
    hn = max(int(hourly["n"]), 1)
    ck.add("activity_hourly bytes a row (heap + key)", costs.rollup_row_bytes, (hourly["heap"] + hourly["indexes"]) / hn, 0.30, fmt="{:,.0f}")
    ck.info("activity_hourly rows per activity row, in the run", f"{db['run_rollup_rows'] / max(db['run_rows'], 1):.2f} (model {costs.rollup_rows_per_call})")
    integ = db["integrations"]
    ck.info("integrations bytes a row (heap + indexes)", f"{(integ['heap'] + integ['indexes']) / max(int(integ['n']), 1):,.0f} B")
    ck.info("refresh sweep query over all integrations", f"{db['sweep_query_ms']:.1f} ms, {db['sweep_plan']} ({int(integ['n']):,} rows)")
    work = max(driver.measured_sent + refresh_rows, 1)
    ck.info("hub CPU per call + refresh, all processes, idle work taken off",
            f"{hub_cpu_calls / work * 1e6:,.0f} µs (with it {hub_cpu / work * 1e6:,.0f}; idle {idle_rate:.1%} of a core; model {costs.hub_cpu_per_call_s * 1e6:,.0f})")
    ck.info("PostgreSQL backend CPU per call + refresh", f"{pg_cpu / work * 1e6:,.0f} µs (the hub's connections only)")
    ck.info("DB connections open at the end of the load", f"{connections} for {a.processes} processes ({connections / a.processes:.1f} each; "
            f"model: at most {model.connections_per_process(config)['total']})")
    ck.info("machine busy during the load (all processes)", f"{busy:.0%} of one core, of 2")
    header = (f"bench/simulate: 1/{a.scale:g} of docs/scaling.md: {load.integrations:,} integrations, {load.integrations // 3:,} users, "
              f"{rate:.1f} calls/s for {elapsed:.0f}s on {a.processes} hub processes, fakes answering in {a.delay_ms:g} ms; "
              f"{os.cpu_count()} cores; run took {time.perf_counter() - started_all:.0f}s")
    print(header)
    print(ck.table())
    if a.json:
        a.json.write_text(json.dumps({"header": header, "lines": ck.lines, "db": db, "prediction": pred,
                                      "statuses": driver.statuses}, indent=2, default=str))
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())

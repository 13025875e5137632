"""The hub's benchmarks, P1–P6, each beside a baseline measured in the same run.

Run through ``bench/run`` (which installs what is needed first); see bench/README.md for
what each figure means. Everything runs on 127.0.0.1 in processes this script starts and
stops: the fake Slack (bench/upstream.py), the bare passthrough (bench/passthrough.py),
real ``hub serve`` processes on temporary SQLite files and on private PostgreSQL
databases, and ``wrk`` as the one load generator for every HTTP throughput and latency
figure (bench/load.lua). Nothing here is a test: no figure decides a test's outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.client
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
HUB_CMD = [str(Path(PY).with_name("hub"))] if Path(PY).with_name("hub").exists() else [PY, "-m", "hub"]
JWT_SECRET = "bench-jwt-secret-" + "b" * 40
SLACK_CLIENT_ID = "bench-slack-client"
SLACK_CLIENT_SECRET = "bench-slack-secret-value"
SLACK_SCOPES = ["channels:read", "chat:write", "users:read"]
BODY = '{"channel":"general","text":"Hello from the bench"}'
ACTION_PATH = "/api/integrations/slack/message"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------


class Procs:
    """Every process this run starts; each is stopped by its own pid, never by name."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.live: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}

    def spawn(self, name: str, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        logfile = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
        logfile.close()
        self.live[proc.pid] = (name, proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int | None, float]:
        """Signal ``proc`` and wait; returns (exit code, seconds it took to exit)."""
        started = time.perf_counter()
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.live.pop(proc.pid, None)
        return proc.returncode, time.perf_counter() - started

    def stop_all(self) -> None:
        for _pid, (_name, proc) in list(self.live.items()):
            self.stop(proc, timeout=15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], started: float, timeout: float = 30.0) -> float:
    """Poll ``url`` every 5 ms until it answers 200; the seconds since ``started``."""
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before it was ready")
        try:
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def buffered_rows(url: str) -> int | None:
    """The hub's own gauge of activity rows waiting in its buffer (GET /metrics)."""
    try:
        body = http_get(url + "/metrics", timeout=5)[1].decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("hub_activity_rows_buffered "):
            return int(float(line.split()[1]))
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, all its threads included."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def system_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def children(pid: int, wait: float = 10.0) -> list[int]:
    """The child processes of ``pid`` (a ``hub serve --workers`` supervisor's workers)."""
    deadline = time.perf_counter() + wait
    kids: list[int] = []
    while time.perf_counter() < deadline:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            kids = []
        if kids:
            return kids
        time.sleep(0.05)
    return kids


def child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --- the load generator ----------------------------------------------------------------------


@dataclass
class WrkResult:
    ok: int
    bad: int
    sent: int
    span_s: float
    errors: dict[str, int]
    lat_us: dict[str, float]
    wall_s: float
    cpu: dict[str, float]  # process name -> share of one core over the run

    @property
    def rate(self) -> float:
        return self.ok / self.span_s if self.span_s > 0 else 0.0

    def cpu_us(self, name: str) -> float:
        """CPU microseconds process ``name`` spent per answered request: unlike req/s,
        hardly moved by other processes competing for the cores."""
        return self.cpu.get(name, 0.0) * self.wall_s / self.ok * 1e6 if self.ok else 0.0

    def brief(self) -> str:
        cpu = ", ".join(f"{k} {v:.0%}" for k, v in self.cpu.items())
        return (f"{self.ok} ok, {self.bad} bad in {self.span_s:.1f}s = {self.rate:,.0f} req/s; "
                f"p50 {self.lat_us['p50'] / 1000:.2f} ms, p99 {self.lat_us['p99'] / 1000:.2f} ms; CPU {cpu}")


class Wrk:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "wrk"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.template = (BENCH / "load.lua").read_text()
        self.n = 0
        self.others: list[float] = []  # other processes' CPU (cores) during each run

    def run(
        self,
        url: str,
        *,
        connections: int,
        seconds: float,
        drain: bool = True,
        limit: int = 0,
        pace_ms: int = 0,
        method: str = "POST",
        body: str | None = BODY,
        headers: tuple[str, ...] = (),
        threads: int = 1,
        watch: dict[str, int] | None = None,
        max_drain_s: float = 30.0,
    ) -> WrkResult:
        """One wrk run. ``watch`` names processes (name -> pid) whose CPU use is reported;
        wrk's own is measured too."""
        self.n += 1
        marker = self.dir / f"run{self.n}.done"
        values = {
            "@SECONDS@": f"{seconds:.3f}",
            "@LIMIT@": str(math.ceil(limit / threads) if limit else 0),
            "@DRAIN@": "1" if drain else "0",
            "@PACE_MS@": str(pace_ms),
            "@MARKER@": str(marker),
            "@METHOD@": method,
            "@BODY@": "nil" if body is None else f"[==[{body}]==]",
        }
        lines = []
        for line in self.template.splitlines():
            if not line.lstrip().startswith("--"):
                for key, value in values.items():
                    line = line.replace(key, value)
            lines.append(line)
        script = self.dir / f"run{self.n}.lua"
        script.write_text("\n".join(lines) + "\n")
        # wrk's -d is whole seconds; with DRAIN the driver stops it (SIGINT) as soon as
        # every thread has its answers, so -d is only the upper bound.
        duration = math.ceil(seconds + (max_drain_s if drain else 0))
        argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s", str(script)]
        for h in headers:
            argv += ["-H", h]
        argv.append(url)
        watch = dict(watch or {})
        before = {name: cpu_seconds(pid) for name, pid in watch.items()}
        wrk_cpu0 = child_cpu()
        busy0 = system_busy()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if drain:
            while proc.poll() is None:
                if all((self.dir / f"run{self.n}.done.{i}").exists() for i in range(threads)):
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.02)
        out, err = proc.communicate()
        wall = time.perf_counter() - t0
        after = {name: cpu_seconds(pid) for name, pid in watch.items()}
        cpu = {name: (after[name] - before[name]) / wall for name in watch}
        cpu["wrk"] = (child_cpu() - wrk_cpu0) / wall
        # Whatever else ran on the machine meanwhile (another test suite, say): noise.
        cpu["others"] = max(0.0, (system_busy() - busy0) / wall - sum(cpu.values()))
        self.others.append(cpu["others"])
        text = out.decode(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {text[-2000:]} {err.decode(errors='replace')[-2000:]}")
        data = json.loads(line[6:])
        return WrkResult(data["ok"], data["bad"], data["sent"], data["span_s"], data["errors"], data["lat_us"], wall, cpu)


# --- the pieces of a run -----------------------------------------------------------------


@dataclass
class Upstream:
    proc: subprocess.Popen[bytes]
    url: str

    def counts(self) -> dict[str, Any]:
        return json.loads(http_get(self.url + "/_bench/counts")[1])


def start_upstream(procs: Procs, name: str, *, rotation: bool = False, delay_ms: float = 0) -> Upstream:
    port = free_port()
    argv = [PY, str(BENCH / "upstream.py"), "--port", str(port), "--client-id", SLACK_CLIENT_ID, "--client-secret", SLACK_CLIENT_SECRET]
    if rotation:
        argv.append("--rotation")
    if delay_ms:
        argv += ["--delay-ms", str(delay_ms)]
    started = time.perf_counter()
    proc = procs.spawn(name, argv)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/_bench/counts", proc, started)
    return Upstream(proc, url)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    ready_s: float
    name: str


def start_passthrough(procs: Procs, upstream: Upstream, token: str, name: str = "passthrough") -> Server:
    port = free_port()
    started = time.perf_counter()
    proc = procs.spawn(name, [PY, str(BENCH / "passthrough.py"), "--port", str(port), "--upstream", upstream.url, "--token", token])
    url = f"http://127.0.0.1:{port}"
    return Server(proc, url, wait_ready(url + "/healthz", proc, started), name)


def hub_config(path: Path, *, port: int, db_url: str, slack: Upstream, keys: str) -> None:
    """A production-like config: the defaults, all three provider plugins configured (Slack
    against the fake; Trello and Google with credentials but never called)."""
    dead = "http://127.0.0.1:9"
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        "database": {"url": db_url},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": keys},
        "providers": {
            "slack": {
                "client_id": SLACK_CLIENT_ID,
                "client_secret": SLACK_CLIENT_SECRET,
                "scopes": SLACK_SCOPES,
                "urls": {
                    "authorize": f"{slack.url}/oauth/v2/authorize",
                    "token": f"{slack.url}/api/oauth.v2.access",
                    "api": f"{slack.url}/api",
                },
            },
            "trello": {"api_key": "bench-trello-key", "urls": {"authorize": f"{dead}/1/authorize", "api": f"{dead}/1"}},
            "google_calendar": {
                "client_id": "bench-google-client",
                "client_secret": "bench-google-secret",
                "urls": {"authorize": f"{dead}/auth", "token": f"{dead}/token", "revoke": f"{dead}/revoke",
                         "userinfo": f"{dead}/userinfo", "api": f"{dead}/calendar/v3"},
            },
        },
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


def hub_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_CONFIG", "PROMETHEUS_MULTIPROC_DIR")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_hub(procs: Procs, name: str, config: Path, cwd: Path, *, extra: tuple[str, ...] = ()) -> Server:
    """``hub serve`` on ``config``."""
    port = json.loads(config.read_text())["server"]["port"]
    started = time.perf_counter()
    proc = procs.spawn(name, [*HUB_CMD, "serve", "--config", str(config), *extra], cwd=cwd, env=hub_env())
    url = f"http://127.0.0.1:{port}"
    return Server(proc, url, wait_ready(url + "/healthz", proc, started), name)


def jwt_for(user: str) -> str:
    from hub.infra.auth import issue_token

    return issue_token(JWT_SECRET, user, ttl_seconds=24 * 3600)


def auth_header(user: str) -> str:
    return f"Authorization: Bearer {jwt_for(user)}"


async def connect_flow(hub_url: str, user: str) -> dict[str, Any]:
    """The real connect flow: connect -> the fake's consent (allow) -> the hub's callback."""
    headers = {"Authorization": f"Bearer {jwt_for(user)}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{hub_url}/api/integrations/slack/connect", headers=headers) as r:
            body = await r.json()
            assert r.status == 200, body
            auth_url = body["data"]["authUrl"]
        parts = urlsplit(auth_url)
        form = dict(parse_qsl(parts.query))
        form["decision"] = "allow"
        async with s.post(f"{parts.scheme}://{parts.netloc}/oauth/v2/authorize", data=form, allow_redirects=False) as r:
            assert r.status == 302, await r.text()
            location = r.headers["Location"]
        async with s.get(location, headers={"Accept": "application/json"}) as r:
            body = await r.json()
            assert r.status == 200 and body["data"]["status"] == "ACTIVE", body
        return body["data"]


async def fake_token(upstream: Upstream) -> str:
    """A bot token for the passthrough, by the same OAuth exchange, straight with the fake."""
    redirect = "http://127.0.0.1:9/callback"
    async with aiohttp.ClientSession() as s:
        form = {"client_id": SLACK_CLIENT_ID, "scope": ",".join(SLACK_SCOPES), "redirect_uri": redirect, "state": "bench", "decision": "allow"}
        async with s.post(upstream.url + "/oauth/v2/authorize", data=form, allow_redirects=False) as r:
            code = dict(parse_qsl(urlsplit(r.headers["Location"]).query))["code"]
        data = {"client_id": SLACK_CLIENT_ID, "client_secret": SLACK_CLIENT_SECRET, "code": code, "redirect_uri": redirect}
        async with s.post(upstream.url + "/api/oauth.v2.access", data=data) as r:
            body = await r.json()
            assert body.get("ok"), body
            return body["access_token"]


# --- databases ---------------------------------------------------------------------------------


class PgDatabases:
    """Private PostgreSQL databases for this run, created through the configured one and
    dropped at the end (as tests/conftest.py's _pg_url does)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.base = make_url(url)
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    async def create(self, suffix: str) -> str:
        name = f"{self.base.database}_bench{os.getpid()}_{suffix}"
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


async def pg_reachable(url: str) -> bool:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    from hub.store.engine import create_engine, upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def month_partitions(url: str, span_days: float) -> None:
    from datetime import datetime, timedelta, timezone

    from hub.activity import ensure_partitions
    from hub.store.engine import create_engine

    engine = create_engine(url)
    now = datetime.now(timezone.utc)
    try:
        async with engine.begin() as conn:
            await ensure_partitions(conn, now, since=now - timedelta(days=span_days))
    finally:
        await engine.dispose()


async def db_scalar(url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import text

    from hub.store.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def count_rows(url: str, action: str) -> int:
    return int(await db_scalar(url, "SELECT count(*) FROM integration_logs WHERE kind = 'call' AND action = :a", a=action))


async def expire_token(url: str, user: str) -> None:
    """Move the stored token's expiry into the past, with the hub's own model."""
    from sqlalchemy import update

    from hub.store.engine import create_engine, sessionmaker
    from hub.store.models import Integration, utcnow

    engine = create_engine(url)
    try:
        async with sessionmaker(engine).begin() as session:
            result = await session.execute(
                update(Integration)
                .where(Integration.user_id == user, Integration.provider == "slack")
                .values(token_expiry=utcnow() - timedelta(hours=1))
            )
            assert result.rowcount == 1
    finally:
        await engine.dispose()


# --- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    pid: str
    what: str
    hub: str
    baseline: str
    ratio: str
    target: str
    verdict: str  # PASS, MISS, INFO, CHECK-OK, CHECK-FAIL


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, pid: str, what: str, hub: str, baseline: str, ratio: str, target: str, verdict: str) -> None:
        self.rows.append(Row(pid, what, hub, baseline, ratio, target, verdict))
        log(f"{pid} {what}: hub {hub} | baseline {baseline} | {ratio} | target {target} -> {verdict}")

    def table(self) -> str:
        head = ("", "measure", "hub", "baseline", "hub vs baseline", "target", "")
        order = ["G", "P1", "P2", "P3", "P4", "P5", "P6"]
        ordered = sorted(self.rows, key=lambda r: order.index(r.pid) if r.pid in order else len(order))
        rows = [head] + [(r.pid, r.what, r.hub, r.baseline, r.ratio, r.target, r.verdict) for r in ordered]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(rows[0])) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        for r in rows[1:]:
            lines.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --- the run ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir()
        self.procs = Procs(self.work / "logs")
        self.wrk = Wrk(self.work)
        self.report = Report()
        self.pg: PgDatabases | None = None
        from hub.infra.crypto import generate_key

        self.keys = generate_key("bench1")
        self.only = {p.strip().upper() for p in args.only.split(",")} if args.only else None
        self.upstream: Upstream | None = None
        self.passthrough: Server | None = None
        self.p1_baseline: WrkResult | None = None
        self.p1_cpu_us = 0.0
        self.users = 0

    def wants(self, part: str) -> bool:
        return self.only is None or part in self.only

    def hub_dir(self, name: str) -> Path:
        d = self.work / name
        d.mkdir(exist_ok=True)
        return d

    def sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{self.hub_dir(name)}/hub.db"

    # --- setup ---

    def setup(self) -> None:
        log(f"work directory {self.work}")
        busy0, t0 = system_busy(), time.perf_counter()
        time.sleep(2)
        idle_load = (system_busy() - busy0) / (time.perf_counter() - t0)
        self.report.details["busy_before_start_cores"] = idle_load
        if idle_load > 0.2:
            log(f"WARNING: before starting, other processes keep {idle_load:.0%} of a core busy; the figures will be disturbed")
        self.upstream = start_upstream(self.procs, "upstream")
        token = asyncio.run(fake_token(self.upstream))
        self.passthrough = start_passthrough(self.procs, self.upstream, token)
        if not self.args.no_pg:
            if asyncio.run(pg_reachable(self.args.pg_url)):
                self.pg = PgDatabases(self.args.pg_url)
            else:
                log(f"PostgreSQL at {self.args.pg_url} is unreachable: its figures are skipped")

    def generator_check(self) -> None:
        """The load generator against the cheapest server there is, and against the fake
        Slack directly: both far above what the hub reaches, so neither limits P1."""
        assert self.passthrough and self.upstream
        secs = self.args.check_seconds
        hello = self.wrk.run(self.passthrough.url + "/hello", connections=self.args.connections, seconds=secs, drain=False,
                             method="GET", body=None, watch={"server": self.passthrough.proc.pid})
        fake_token_hdr = None
        with contextlib.suppress(Exception):
            fake_token_hdr = asyncio.run(fake_token(self.upstream))
        direct = self.wrk.run(self.upstream.url + "/api/chat.postMessage", connections=self.args.connections, seconds=secs,
                              drain=False, headers=(f"Authorization: Bearer {fake_token_hdr}",), watch={"fake": self.upstream.proc.pid})
        self.report.details["generator"] = {"hello": hello.__dict__, "fake_direct": direct.__dict__}
        log(f"generator check: wrk -> /hello: {hello.brief()}")
        log(f"generator check: wrk -> fake chat.postMessage directly: {direct.brief()}")
        self.report.add("G", "wrk vs a hello server / vs the fake directly (req/s)", "-",
                        f"{hello.rate:,.0f} / {direct.rate:,.0f}", "-", "far above P1", "INFO")

    # --- P1, P6 ready, P2, P6 memory on SQLite ---

    def p1_p2_p6_sqlite(self) -> None:
        assert self.passthrough and self.upstream
        a = self.args
        hdr = (auth_header("bench-user"),)
        d = self.hub_dir("hub-sqlite")
        db_url = self.sqlite_url("hub-sqlite")
        cfg = d / "hub.json"
        hub_config(cfg, port=free_port(), db_url=db_url, slack=self.upstream, keys=self.keys)

        # First start: an empty database, migrations included.
        hub = start_hub(self.procs, "hub-sqlite-1", cfg, d)
        first_ready = hub.ready_s
        asyncio.run(connect_flow(hub.url, "bench-user"))
        watch_hub = {"hub": hub.proc.pid, "fake": self.upstream.proc.pid}
        watch_pt = {"passthrough": self.passthrough.proc.pid, "fake": self.upstream.proc.pid}

        answered = 0
        if self.wants("P1"):
            log("P1: warming up both")
            self.wrk.run(self.passthrough.url + ACTION_PATH, connections=a.connections, seconds=a.warmup, headers=hdr)
            w = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.warmup, headers=hdr)
            answered += w.ok
            base = self.wrk.run(self.passthrough.url + ACTION_PATH, connections=a.connections, seconds=a.duration, headers=hdr, watch=watch_pt)
            log(f"P1 passthrough: {base.brief()}")
            res = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.duration, headers=hdr, watch=watch_hub)
            backlog = buffered_rows(hub.url)
            log(f"P1 hub (SQLite): {res.brief()}; activity rows still buffered: {backlog}")
            answered += res.ok
            self.p1_baseline = base
            ratio = res.rate / base.rate if base.rate else 0
            self.report.details["P1_sqlite"] = {"hub": res.__dict__, "passthrough": base.__dict__, "ratio": ratio}
            self.report.add("P1", f"proxied action, {a.connections} conns, SQLite (req/s)", f"{res.rate:,.0f}", f"{base.rate:,.0f}",
                            f"{ratio:.2f}x", ">= 0.50x", verdict(ratio >= 0.5 and res.bad == 0))
            self.report.add("P1", "  p50 / p99 latency at that load", f"{res.lat_us['p50'] / 1000:.1f} / {res.lat_us['p99'] / 1000:.1f} ms",
                            f"{base.lat_us['p50'] / 1000:.1f} / {base.lat_us['p99'] / 1000:.1f} ms", "-", "-", "INFO")
            self.report.add("P1", "  CPU, share of one core (hub|passthrough / fake / wrk)",
                            f"{res.cpu['hub']:.0%} / {res.cpu['fake']:.0%} / {res.cpu['wrk']:.0%}",
                            f"{base.cpu['passthrough']:.0%} / {base.cpu['fake']:.0%} / {base.cpu['wrk']:.0%}", "-", "-", "INFO")
            self.p1_cpu_us = res.cpu_us("hub")
            cpu_ratio = self.p1_cpu_us / base.cpu_us("passthrough") if base.cpu_us("passthrough") else 0
            self.report.add("P1", "  CPU time per request, server process", f"{self.p1_cpu_us:,.0f} µs", f"{base.cpu_us('passthrough'):,.0f} µs",
                            f"{cpu_ratio:.1f}x", "<= 2.0x", verdict(0 < cpu_ratio <= 2.0))
            self.report.add("P1", "  activity rows still in the buffer when the run ends", f"{backlog:,} rows" if backlog is not None else "?",
                            "-", f"after {answered:,} requests (warm-up + run)", "-", "INFO")
            if a.profile:
                answered += self.profile(hub, hdr)

        code, took = self.procs.stop(hub.proc)
        rows = asyncio.run(count_rows(db_url, "post_message"))
        self.report.details["P1_rows"] = {"rows": rows, "answered": answered, "exit": code, "exit_s": took}
        if self.wants("P1"):
            self.report.add("P1", "  activity rows = requests answered (after SIGTERM)", f"{rows:,} rows", f"{answered:,} answered",
                            f"exit {code} in {took:.1f}s", "equal", "PASS" if rows == answered and code == 0 else "MISS")

        # Restarts on the migrated database: the ready time an operator sees.
        readies = []
        for i in range(a.restarts):
            hub = start_hub(self.procs, f"hub-sqlite-r{i}", cfg, d)
            readies.append(hub.ready_s)
            if i < a.restarts - 1:
                self.procs.stop(hub.proc)
        base_readies = [self.passthrough.ready_s]
        for i in range(a.restarts - 1):
            p = start_passthrough(self.procs, self.upstream, "x", name=f"passthrough-r{i}")
            base_readies.append(p.ready_s)
            self.procs.stop(p.proc)
        ready = statistics.median(readies)
        base_ready = statistics.median(base_readies)
        self.report.details["P6_ready"] = {"first_start_s": first_ready, "restarts_s": readies, "passthrough_s": base_readies}
        if self.wants("P6"):
            self.report.add("P6", "ready: spawn to first 200 on /healthz (3 plugins)", f"{ready:.2f} s", f"{base_ready:.2f} s",
                            f"+{ready - base_ready:.2f} s", "<= 1 s", verdict(ready <= 1.0))
            self.report.add("P6", "  first start, empty database (migrations run)", f"{first_ready:.2f} s", "-", "-", "-", "INFO")

        if self.wants("P2"):
            self.p2(hub, hdr)
        if self.wants("P6"):
            self.p6_memory(hub, hdr)
        self.procs.stop(hub.proc)

    def p2(self, hub: Server, hdr: tuple[str, ...]) -> None:
        assert self.passthrough
        a = self.args
        conns, pace, secs = a.latency_connections, a.latency_pace_ms, a.latency_duration
        log(f"P2: {conns} connections, each waiting {pace} ms between requests")
        runs = {}
        for name, url in (("passthrough", self.passthrough.url), ("hub", hub.url)):
            self.wrk.run(url + ACTION_PATH, connections=conns, seconds=2, drain=False, pace_ms=pace, headers=hdr)
            runs[name] = self.wrk.run(url + ACTION_PATH, connections=conns, seconds=secs, drain=False, pace_ms=pace, headers=hdr,
                                      watch={"server": (self.passthrough if name == "passthrough" else hub).proc.pid})
            log(f"P2 {name}: {runs[name].brief()}")
        h, b = runs["hub"], runs["passthrough"]
        self.report.details["P2"] = {"hub": h.__dict__, "passthrough": b.__dict__}
        rate = h.sent / secs
        for q, target in (("p50", 1.0), ("p99", 5.0)):
            added = (h.lat_us[q] - b.lat_us[q]) / 1000
            self.report.add("P2", f"added latency {q}, {conns} conns paced (~{rate:,.0f} req/s)", f"{h.lat_us[q] / 1000:.2f} ms",
                            f"{b.lat_us[q] / 1000:.2f} ms", f"+{added:.2f} ms", f"<= +{target:g} ms", verdict(added <= target and h.bad == 0))

    def p6_memory(self, hub: Server, hdr: tuple[str, ...]) -> None:
        """RSS before and after ``--p6-requests`` requests at P1's concurrency, sampled
        after every fifth of them (with the hub's activity-buffer gauge) to tell a
        plateau from a leak."""
        assert self.passthrough
        a = self.args
        n = a.p6_requests
        chunks = 5
        for name, server in (("passthrough", self.passthrough), ("hub", hub)):
            self.wrk.run(server.url + ACTION_PATH, connections=a.connections, seconds=a.warmup * 2, headers=hdr)
            time.sleep(0.5)
            before = rss_kib(server.proc.pid)
            series = []
            done = 0
            t0 = time.perf_counter()
            for _ in range(chunks):
                res = self.wrk.run(server.url + ACTION_PATH, connections=a.connections, seconds=3600, limit=n // chunks, headers=hdr)
                done += res.ok
                series.append({"requests": done, "vmrss_kib": rss_kib(server.proc.pid)["VmRSS"],
                               "buffered": buffered_rows(server.url) if name == "hub" else None})
            rate = done / (time.perf_counter() - t0)
            time.sleep(0.5)
            after = rss_kib(server.proc.pid)
            log(f"P6 memory {name}: {done:,} requests at {rate:,.0f}/s, VmRSS {before['VmRSS'] / 1024:.1f} -> {after['VmRSS'] / 1024:.1f} MiB "
                f"(anon {before['RssAnon'] / 1024:.1f} -> {after['RssAnon'] / 1024:.1f}); series {series}")
            self.report.details[f"P6_rss_{name}"] = {"requests": done, "before_kib": before, "after_kib": after, "rate": rate, "series": series}
        h = self.report.details["P6_rss_hub"]
        b = self.report.details["P6_rss_passthrough"]
        growth = (h["after_kib"]["VmRSS"] - h["before_kib"]["VmRSS"]) / 1024
        base_growth = (b["after_kib"]["VmRSS"] - b["before_kib"]["VmRSS"]) / 1024
        self.report.add("P6", f"RSS growth over {h['requests']:,} requests (after warm-up)", f"{growth:+.1f} MiB", f"{base_growth:+.1f} MiB",
                        f"{h['after_kib']['VmRSS'] / 1024:.0f} vs {b['after_kib']['VmRSS'] / 1024:.0f} MiB total", "<= 10 MB",
                        verdict(growth * 1.048576 <= 10 and h["requests"] >= n))
        steps = " / ".join(f"{(s['vmrss_kib'] - h['before_kib']['VmRSS']) / 1024:+.0f}" for s in h["series"])
        bufs = " / ".join(str(s["buffered"]) for s in h["series"])
        self.report.add("P6", "  growth after each fifth (MiB) / activity rows buffered", steps, bufs, f"at {h['rate']:,.0f} req/s", "-", "INFO")

    def profile(self, hub: Server, hdr: tuple[str, ...]) -> int:
        """py-spy on the hub under P1's load: a flame graph of every thread, and the
        samples of whichever thread holds the GIL (the event loop's real cost), summarised.
        Returns the requests answered meanwhile."""
        spy = Path(PY).with_name("py-spy")
        if not spy.exists():
            log("--profile: py-spy is not installed in the venv (bench/run --profile installs it); skipped")
            return 0
        a = self.args
        secs = a.duration
        outputs = []
        answered = 0
        for fmt, suffix, extra in (("flamegraph", "svg", []), ("raw", "gil.folded", ["--gil"])):
            target = self.out / f"profile-p1.{suffix}"
            spy_proc = subprocess.Popen(
                [str(spy), "record", "--pid", str(hub.proc.pid), "--duration", str(int(secs)), "--rate", "200", "--nonblocking",
                 "--format", fmt, "-o", str(target), *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            time.sleep(0.3)
            res = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=secs + 0.5, headers=hdr)
            _, err = spy_proc.communicate(timeout=60)
            log(f"profile ({suffix}) under P1 load: {res.brief()}; {err.decode(errors='replace').strip().splitlines()[-1:]}")
            outputs.append(target)
            answered += res.ok
            self.report.details[f"profile_{suffix}"] = res.__dict__
        summary = summarize_profile(self.out / "profile-p1.gil.folded")
        (self.out / "profile-p1.txt").write_text(summary)
        log(f"profile written: {', '.join(str(p) for p in outputs)} and {self.out / 'profile-p1.txt'}")
        return answered

    # --- P1 on PostgreSQL ---

    def p1_pg(self) -> None:
        if self.pg is None or not self.wants("P1"):
            return
        assert self.passthrough and self.upstream
        a = self.args
        hdr = (auth_header("bench-user"),)
        db_url = asyncio.run(self.pg.create("p1"))
        d = self.hub_dir("hub-pg")
        cfg = d / "hub.json"
        hub_config(cfg, port=free_port(), db_url=db_url, slack=self.upstream, keys=self.keys)
        hub = start_hub(self.procs, "hub-pg", cfg, d)
        asyncio.run(connect_flow(hub.url, "bench-user"))
        w = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.warmup, headers=hdr)
        res = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.duration, headers=hdr,
                           watch={"hub": hub.proc.pid, "fake": self.upstream.proc.pid})
        backlog = buffered_rows(hub.url)
        log(f"P1 hub (PostgreSQL): {res.brief()}; activity rows still buffered: {backlog}")
        code, took = self.procs.stop(hub.proc)
        rows = asyncio.run(count_rows(db_url, "post_message"))
        base = self.p1_baseline
        ratio = res.rate / base.rate if base and base.rate else 0
        self.report.details["P1_pg"] = {"hub": res.__dict__, "ratio": ratio, "rows": rows, "answered": w.ok + res.ok}
        self.report.add("P1", f"proxied action, {a.connections} conns, PostgreSQL (req/s)", f"{res.rate:,.0f}",
                        f"{base.rate:,.0f}" if base else "-", f"{ratio:.2f}x", "-", "INFO" if res.bad == 0 else "MISS")
        sqlite_cpu = self.p1_cpu_us
        self.report.add("P1", "  PostgreSQL: CPU time per request, server process", f"{res.cpu_us('hub'):,.0f} µs",
                        f"{sqlite_cpu:,.0f} µs (SQLite)" if sqlite_cpu else "-",
                        f"{res.cpu_us('hub') / sqlite_cpu:.2f}x" if sqlite_cpu else "-", "<= 1.25x",
                        verdict(res.cpu_us("hub") <= 1.25 * sqlite_cpu) if sqlite_cpu else "INFO")
        self.report.add("P1", "  PostgreSQL: activity rows still in the buffer when the run ends", f"{backlog:,} rows" if backlog is not None else "?",
                        "-", f"after {w.ok + res.ok:,} requests (warm-up + run)", "-", "INFO")
        self.report.add("P1", "  PostgreSQL: activity rows = requests answered", f"{rows:,} rows", f"{w.ok + res.ok:,} answered",
                        f"exit {code} in {took:.1f}s", "equal", "PASS" if rows == w.ok + res.ok and code == 0 else "MISS")
        if a.workers > 1:
            self.p1_workers(cfg, d, db_url, rows)

    def p1_workers(self, cfg: Path, d: Path, db_url: str, rows_before: int) -> None:
        """P1 against ``hub serve --workers N`` on the same PostgreSQL database: every core
        of the machine for the hub (the baseline stays one process)."""
        assert self.upstream
        a = self.args
        hdr = (auth_header("bench-user"),)
        hub = start_hub(self.procs, "hub-pg-workers", cfg, d, extra=("--workers", str(a.workers)))
        kids = children(hub.proc.pid)
        watch = {f"worker{i}": pid for i, pid in enumerate(kids)}
        w = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.warmup, headers=hdr)
        res = self.wrk.run(hub.url + ACTION_PATH, connections=a.connections, seconds=a.duration, headers=hdr,
                           watch={**watch, "fake": self.upstream.proc.pid})
        code, took = self.procs.stop(hub.proc)
        rows = asyncio.run(count_rows(db_url, "post_message")) - rows_before
        base = self.p1_baseline
        ratio = res.rate / base.rate if base and base.rate else 0
        hub_cpu = sum(res.cpu.get(k, 0) for k in watch)
        log(f"P1 hub (PostgreSQL, --workers {a.workers}): {res.brief()}")
        self.report.details["P1_pg_workers"] = {"hub": res.__dict__, "ratio": ratio, "rows": rows, "answered": w.ok + res.ok, "workers": kids}
        self.report.add("P1", f"proxied action, PostgreSQL, hub serve --workers {a.workers} (req/s)", f"{res.rate:,.0f}",
                        f"{base.rate:,.0f} (1 process)" if base else "-", f"{ratio:.2f}x", ">= 0.80x", "INFO")
        self.report.add("P1", f"  --workers {a.workers}: CPU of all workers; rows = answered after SIGTERM",
                        f"{hub_cpu:.0%} of a core; {rows:,} rows", f"{w.ok + res.ok:,} answered", f"exit {code} in {took:.1f}s", "equal",
                        "PASS" if rows == w.ok + res.ok and code == 0 else "MISS")

    # --- P1 with an upstream as slow as a real provider ---

    def p1_slow_upstream(self) -> None:
        """P1 again with the fake answering each API call ``--upstream-delay-ms`` late, as
        a real provider across the internet does: then the hub's own cost is hidden
        behind the wait, as long as it has the CPU to spare."""
        a = self.args
        if not self.wants("P1") or a.upstream_delay_ms <= 0:
            return
        hdr = (auth_header("bench-user"),)
        slow = start_upstream(self.procs, "upstream-slow", delay_ms=a.upstream_delay_ms)
        try:
            pt = start_passthrough(self.procs, slow, asyncio.run(fake_token(slow)), name="passthrough-slow")
            d = self.hub_dir("hub-slow")
            cfg = d / "hub.json"
            hub_config(cfg, port=free_port(), db_url=self.sqlite_url("hub-slow"), slack=slow, keys=self.keys)
            hub = start_hub(self.procs, "hub-slow", cfg, d)
            asyncio.run(connect_flow(hub.url, "bench-user"))
            runs = {}
            for name, server in (("passthrough", pt), ("hub", hub)):
                self.wrk.run(server.url + ACTION_PATH, connections=a.connections, seconds=a.warmup, headers=hdr)
                runs[name] = self.wrk.run(server.url + ACTION_PATH, connections=a.connections, seconds=a.duration, headers=hdr,
                                          watch={"server": server.proc.pid})
                log(f"P1 with a {a.upstream_delay_ms:g} ms upstream, {name}: {runs[name].brief()}")
            self.procs.stop(hub.proc)
            self.procs.stop(pt.proc)
        finally:
            self.procs.stop(slow.proc)
        h, b = runs["hub"], runs["passthrough"]
        self.report.details["P1_slow_upstream"] = {"hub": h.__dict__, "passthrough": b.__dict__}
        self.report.add("P1", f"same, SQLite, upstream answering in {a.upstream_delay_ms:g} ms (req/s)", f"{h.rate:,.0f}", f"{b.rate:,.0f}",
                        f"{h.rate / b.rate:.2f}x", "-", "INFO")
        self.report.add("P1", "  p50 / p99 latency, and the server's CPU share, at that load",
                        f"{h.lat_us['p50'] / 1000:.1f} / {h.lat_us['p99'] / 1000:.1f} ms, {h.cpu['server']:.0%}",
                        f"{b.lat_us['p50'] / 1000:.1f} / {b.lat_us['p99'] / 1000:.1f} ms, {b.cpu['server']:.0%}", "-", "-", "INFO")

    # --- P3 ---

    def p3(self) -> None:
        if not self.wants("P3"):
            return
        self.p3_one("SQLite", self.sqlite_url("p3-sqlite"), "p3-sqlite")
        if self.pg is not None:
            self.p3_one("PostgreSQL", asyncio.run(self.pg.create("p3")), "p3-pg")

    def p3_one(self, label: str, db_url: str, name: str) -> None:
        assert self.passthrough and self.upstream
        a = self.args
        asyncio.run(migrate(db_url))
        # On PostgreSQL, the month partitions a hub running through the span would have made.
        asyncio.run(month_partitions(db_url, a.p3_span_days))
        t0 = time.perf_counter()
        target_id, middle_id, total = asyncio.run(fill_activity(db_url, a.p3_rows, a.p3_others, a.p3_other_rows, a.p3_span_days, a.p3_layout))
        fill_s = time.perf_counter() - t0
        log(f"P3 {label}: {total:,} activity rows written in {fill_s:.1f}s ({total / fill_s:,.0f} rows/s)")
        rollup_s, rollup_rows = asyncio.run(build_rollups(db_url))
        log(f"P3 {label}: hourly and daily rollup built from them in {rollup_s:.1f}s ({rollup_rows:,} rollup rows)")
        d = self.hub_dir(name)
        cfg = d / "hub.json"
        hub_config(cfg, port=free_port(), db_url=db_url, slack=self.upstream, keys=self.keys)
        hub = start_hub(self.procs, name, cfg, d)
        from hub.activity import encode_cursor

        timings = asyncio.run(time_queries(hub.url, self.passthrough.url, jwt_for("p3-user-0"), {
            "stats?days=7": "/api/integrations/slack/stats?days=7",
            "logs, first page": "/api/integrations/slack/logs?limit=50",
            "logs, page at the middle (cursor)": f"/api/integrations/slack/logs?limit=50&cursor={encode_cursor(middle_id)}",
            "logs, status=FAILED": "/api/integrations/slack/logs?limit=50&status=FAILED",
            "logs, action=get_user": "/api/integrations/slack/logs?limit=50&action=get_user",
            "logs, action=get_user&status=FAILED": "/api/integrations/slack/logs?limit=50&action=get_user&status=FAILED",
        }, a.p3_repeat))
        self.procs.stop(hub.proc)
        sql = asyncio.run(time_sql(db_url, target_id, a.p3_repeat))
        plans = asyncio.run(explain(db_url, target_id))
        (self.out / f"p3-plans-{name}.txt").write_text(plans)
        floor = timings.pop("floor")
        self.report.details[f"P3_{name}"] = {"rows": total, "fill_s": fill_s, "rollup_s": rollup_s, "rollup_rows": rollup_rows,
                                             "timings": timings, "floor": floor, "sql_only": sql}
        st = timings["stats?days=7"]
        self.report.add("P3", f"{label}: stats?days=7 over {a.p3_rows:,} rows (median)", ms(st["median"]), ms(floor["median"]) + " (HTTP floor)",
                        f"SQL alone {ms(sql['median'])}; first call {ms(st['first'])}", "<= 30 ms", verdict(st["median"] <= 0.030))
        for key in [k for k in timings if k.startswith("logs")]:
            t = timings[key]
            self.report.add("P3", f"{label}: {key} (median)", ms(t["median"]), ms(floor["median"]) + " (HTTP floor)",
                            f"p95 {ms(t['p95'])}", "<= 5 ms", verdict(t["median"] <= 0.005))

    # --- P4 ---

    def p4(self) -> None:
        if not self.wants("P4"):
            return
        a = self.args
        targets = [("SQLite", self.sqlite_url("p4-sqlite"))]
        if self.pg is not None:
            targets.append(("PostgreSQL", asyncio.run(self.pg.create("p4"))))
        for label, url in targets:
            asyncio.run(migrate(url))
            res = asyncio.run(ingest(url, a.p4_rows))
            self.report.details[f"P4_{label}"] = res
            log(f"P4 {label}: {res}")
            self.report.add("P4", f"{label}: activity rows/s via ActivityWriter ({a.p4_rows:,} rows)", f"{res['writer_rate']:,.0f}",
                            f"{res['driver_rate']:,.0f} (driver executemany)", f"{res['writer_rate'] / res['driver_rate']:.2f}x",
                            ">= 20,000/s, none lost",
                            verdict(res["writer_rate"] >= 20000 and res["writer_rows"] == a.p4_rows))

    # --- P5 ---

    def p5(self) -> None:
        if not self.wants("P5"):
            return
        a = self.args
        rot = start_upstream(self.procs, "upstream-rotation", rotation=True)
        try:
            d = self.hub_dir("p5-sqlite")
            url = self.sqlite_url("p5-sqlite")
            cfg = d / "hub.json"
            hub_config(cfg, port=free_port(), db_url=url, slack=rot, keys=self.keys)
            hub = start_hub(self.procs, "p5-sqlite", cfg, d)
            self.p5_storm("one process, SQLite", [hub], url, rot, a.p5_calls)
            self.procs.stop(hub.proc)
            if self.pg is not None:
                url = asyncio.run(self.pg.create("p5"))
                hubs = []
                for i in range(2):
                    d = self.hub_dir(f"p5-pg-{i}")
                    cfg = d / "hub.json"
                    hub_config(cfg, port=free_port(), db_url=url, slack=rot, keys=self.keys)
                    hubs.append(start_hub(self.procs, f"p5-pg-{i}", cfg, d))
                self.p5_storm("two processes, PostgreSQL", hubs, url, rot, a.p5_calls)
                for h in hubs:
                    self.procs.stop(h.proc)
        finally:
            self.procs.stop(rot.proc)

    def p5_storm(self, label: str, hubs: list[Server], db_url: str, rot: Upstream, calls: int) -> None:
        self.users += 1
        user = f"p5-user-{self.users}"
        asyncio.run(connect_flow(hubs[0].url, user))
        urls = [h.url for h in hubs]
        # Baseline: the same storm on a token that needs no refresh.
        base = asyncio.run(storm(urls, jwt_for(user), calls))
        asyncio.run(expire_token(db_url, user))
        before = rot.counts()["refresh_grants"]
        res = asyncio.run(storm(urls, jwt_for(user), calls))
        refreshes = rot.counts()["refresh_grants"] - before
        after = asyncio.run(storm(urls, jwt_for(user), calls))  # and the refreshed token works for everyone
        self.report.details[f"P5_{label}"] = {"storm": res, "baseline": base, "after": after, "refresh_grants": refreshes}
        log(f"P5 {label}: storm {res}, baseline {base}, refreshes {refreshes}")
        ok = res["ok"] == calls and refreshes == 1 and after["ok"] == calls
        self.report.add("P5", f"refresh storm, {label}: {calls} calls, expired token", f"{ms(res['all_answered_s'])}, {refreshes} refresh",
                        f"{ms(base['all_answered_s'])} (fresh token)", f"{res['ok']}/{calls} answered 200",
                        "exactly 1 refresh", verdict(ok))

    # --- the whole run ---

    def run(self) -> int:
        started = time.perf_counter()
        try:
            self.setup()
            if self.wants("G"):
                self.generator_check()
            if self.wants("P1") or self.wants("P2") or self.wants("P6"):
                self.p1_p2_p6_sqlite()
            self.p1_pg()
            self.p1_slow_upstream()
            self.p3()
            self.p4()
            self.p5()
        finally:
            self.procs.stop_all()
            if self.pg is not None:
                asyncio.run(self.pg.drop_all())
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            else:
                log(f"kept {self.work}")
        elapsed = time.perf_counter() - started
        header = machine_header(elapsed, self.args)
        if self.wrk.others:
            header += (f"\nOther processes on the machine during the load runs: {statistics.mean(self.wrk.others):.0%} of a core on average, "
                       f"{max(self.wrk.others):.0%} at most (0% = a quiet machine).")
        table = self.report.table()
        print()
        print(header)
        print()
        print(table)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (self.out / f"results-{stamp}.md").write_text(header + "\n\n" + table + "\n")
        (self.out / f"results-{stamp}.json").write_text(json.dumps(
            {"header": header, "rows": [r.__dict__ for r in self.report.rows], "details": self.report.details}, indent=1, default=str))
        print(f"\n(written to {self.out}/results-{stamp}.md and .json)")
        return 0


# --- P3 helpers ------------------------------------------------------------------------------------

ACTIONS = (("post_message", 0.70), ("list_channels", 0.20), ("get_user", 0.10))


def _payloads(rng: random.Random) -> list[tuple[str, str, str]]:
    """(action, request JSON, response JSON) variants shaped like what the hub records."""
    out = []
    for i in range(64):
        ts = f"17956{i:05d}.{rng.randrange(10**6):06d}"
        text = f"Deploy {i} finished: all checks green"
        out.append(("post_message", json.dumps({"channel": "general", "text": text}),
                    json.dumps({"channel": "C0000000001", "ts": ts, "message": {"type": "message", "text": text, "user": "U0FAKEBOT01",
                                                                                "ts": ts, "team": "T0000000001", "bot_id": "B0FAKEBOT01"}})))
        out.append(("list_channels", json.dumps({"limit": 100, "types": ["public_channel"]}),
                    json.dumps({"channels": [{"id": f"C{j:010d}", "name": f"channel-{j}"} for j in range(1, 4)], "nextCursor": None})))
        out.append(("get_user", json.dumps({"user_id": "U0000000001"}),
                    json.dumps({"id": "U0000000001", "name": "ada", "real_name": "Ada Lovelace", "tz": "Europe/London"})))
    return out


def _activity_rows(ids: list[int], weights: list[float], total: int, span_days: float, seed: int = 7, layout: str = "interleaved"):
    """Rows in time order, integrations interleaved by weight, as a busy hub writes them; with
    ``layout="after"``, the first integration's rows all come first and the others' after
    them (each part in time order over the whole span), as a restore or a bulk import leaves
    them."""
    if layout == "after":
        first = round(total * weights[0] / sum(weights))
        yield from _activity_rows(ids[:1], weights[:1], first, span_days, seed)
        if len(ids) > 1:
            yield from _activity_rows(ids[1:], weights[1:], total - first, span_days, seed + 1)
        return
    rng = random.Random(seed)
    payloads = _payloads(rng)
    by_action: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    for p in payloads:
        by_action[p[0]].append(p)
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=span_days) + timedelta(minutes=5)
    step = (now - start).total_seconds() / total
    names = [a for a, _ in ACTIONS]
    aw = [w for _, w in ACTIONS]
    for n in range(total):
        iid = rng.choices(ids, weights)[0]
        action = rng.choices(names, aw)[0]
        _, req, resp = rng.choice(by_action[action])
        failed = rng.random() < 0.03
        duration = int(min(30000, rng.lognormvariate(4.8, 0.6)))
        yield (iid, "call", action, "FAILED" if failed else "SUCCESS", req, None if failed else resp,
               "Slack answered with an error: internal_error [internal_error]" if failed else None, duration,
               start + timedelta(seconds=n * step))


async def fill_activity(url: str, rows: int, others: int, other_rows: int, span_days: float, layout: str = "interleaved") -> tuple[int, int, int]:
    """Integrations p3-user-0 (``rows`` rows) and p3-user-1..N (``other_rows`` each), created
    with the hub's model; activity rows by bulk insert (executemany on SQLite, COPY on PG).
    Returns (target integration id, id of a row in the middle of its history, rows written)."""
    from hub.store.engine import create_engine, sessionmaker
    from hub.store.models import Integration, utcnow

    engine = create_engine(url)
    ids = []
    try:
        async with sessionmaker(engine).begin() as session:
            for i in range(others + 1):
                row = Integration(user_id=f"p3-user-{i}", provider="slack", status="ACTIVE", version=1, created_at=utcnow(),
                                  updated_at=utcnow(), scopes=SLACK_SCOPES, meta={"accountId": "U0FAKEBOT01"})
                session.add(row)
                await session.flush()
                ids.append(row.id)
    finally:
        await engine.dispose()
    total = rows + others * other_rows
    weights = [rows] + [other_rows] * others
    gen = _activity_rows(ids, weights, total, span_days, layout=layout)
    cols = ("integration_id", "kind", "action", "status", "request_data", "response_data", "error_message", "duration_ms", "created_at")
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = f"INSERT INTO integration_logs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        batch: list[tuple[Any, ...]] = []
        for r in gen:
            # SQLAlchemy's SQLite DATETIME text form, naive UTC (what hub.models.UTCDateTime stores)
            batch.append((*r[:8], r[8].replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")))
            if len(batch) >= 50_000:
                conn.executemany(sql, batch)
                batch.clear()
        if batch:
            conn.executemany(sql, batch)
        conn.commit()
        conn.close()
    else:
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            chunk: list[tuple[Any, ...]] = []
            for r in gen:
                chunk.append(r)
                if len(chunk) >= 100_000:
                    await conn.copy_records_to_table("integration_logs", records=chunk, columns=cols)
                    chunk = []
            if chunk:
                await conn.copy_records_to_table("integration_logs", records=chunk, columns=cols)
            # What autovacuum does after a bulk load: statistics and the visibility map.
            await conn.execute("VACUUM ANALYZE integration_logs")
        finally:
            await conn.close()
    target = ids[0]
    middle = await db_scalar(url, "SELECT id FROM integration_logs WHERE integration_id = :i ORDER BY id LIMIT 1 OFFSET :o",
                             i=target, o=rows // 2)
    return target, int(middle), total


async def build_rollups(url: str) -> tuple[float, int]:
    """The hourly rollup of rows loaded around the activity writer (as after a restore):
    seconds taken and rollup rows made. Not part of any timed query."""
    from sqlalchemy import text

    from hub.activity import rebuild_rollups
    from hub.store.engine import create_engine

    engine = create_engine(url)
    try:
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            await rebuild_rollups(conn)
        took = time.perf_counter() - t0
        async with engine.begin() as conn:
            if not url.startswith("sqlite"):
                await conn.execute(text("ANALYZE activity_hourly"))
                await conn.execute(text("ANALYZE activity_daily"))
            made = int((await conn.execute(text("SELECT (SELECT count(*) FROM activity_hourly) + (SELECT count(*) FROM activity_daily)"))).scalar_one())
        return took, made
    finally:
        await engine.dispose()


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples[1:]) or samples
    return {"first": samples[0], "median": statistics.median(s), "p95": s[min(len(s) - 1, int(0.95 * len(s)))], "min": s[0], "n": len(samples)}


BUDGET_S = 6.0  # per query: stop repeating a slow one after this long (at least 4 calls)


async def time_queries(hub_url: str, floor_url: str, jwt: str, paths: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    """Each path up to ``repeat`` + 1 times, one at a time, over one keep-alive connection."""
    headers = {"Authorization": f"Bearer {jwt}"}
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        for _ in range(5):  # a fresh process: let it compile its statements and fill its pools first
            async with s.get(hub_url + "/api/integrations/slack/logs?limit=1", headers=headers) as r:
                await r.read()
        for name, path in paths.items():
            samples: list[float] = []
            while len(samples) < repeat + 1 and (len(samples) < 4 or sum(samples) < BUDGET_S):
                t0 = time.perf_counter()
                async with s.get(hub_url + path, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, (path, r.status, await r.text())
                samples.append(time.perf_counter() - t0)
            out[name] = _summary(samples)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        samples = []
        for _ in range(repeat * 3 + 1):
            t0 = time.perf_counter()
            async with s.get(floor_url + "/hello") as r:
                await r.read()
            samples.append(time.perf_counter() - t0)
        out["floor"] = _summary(samples)
    return out


async def time_sql(url: str, integration_id: int, repeat: int) -> dict[str, float]:
    """hub.activity.stats alone, in this process: the database's share of the stats call."""
    from hub import activity
    from hub.store.engine import create_engine, sessionmaker

    engine = create_engine(url)
    try:
        sessions = sessionmaker(engine)
        samples: list[float] = []
        while len(samples) < repeat + 1 and (len(samples) < 4 or sum(samples) < BUDGET_S):
            async with sessions() as session:
                t0 = time.perf_counter()
                await activity.stats(session, integration_id, 7)
                samples.append(time.perf_counter() - t0)
        return _summary(samples)
    finally:
        await engine.dispose()


async def explain(url: str, integration_id: int) -> str:
    """The plans of the statistics queries (for docs/performance.md): the rollup's whole
    hours and days, the raw rows of the window's first partial hour, and two log pages."""
    from sqlalchemy import text

    from hub.store.engine import create_engine

    since = datetime.now(timezone.utc) - timedelta(days=7)
    first_hour = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    engine = create_engine(url)
    pg = not url.startswith("sqlite")
    queries = {
        "first partial hour": "SELECT action, status, duration_ms, count(*) FROM integration_logs WHERE integration_id = :i AND kind = 'call' "
                              "AND created_at >= :s AND created_at < :h GROUP BY action, status, duration_ms",
    }
    from hub.activity.queries import LogQuery, logs_statement, rollup_sums_statement
    from hub.store.engine import sessionmaker

    # The statement stats runs over the rollup: whole hours to the first midnight, then days.
    queries["rollup hours and days"] = str(rollup_sums_statement(integration_id, since).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))

    pages = {"logs page": LogQuery(), "logs FAILED": LogQuery(status="FAILED"),
             "logs get_user FAILED": LogQuery(action="get_user", status="FAILED")}
    async with sessionmaker(engine)() as session:
        for name, query in pages.items():
            # The statement the hub runs for that page, values written in.
            statement = logs_statement(session, integration_id, query)
            queries[name] = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))

    def stamp(t: datetime) -> Any:
        return t if pg else t.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    lines = []
    try:
        async with engine.connect() as conn:
            for name, sql in queries.items():
                params = {"i": integration_id, "s": stamp(since), "h": stamp(first_hour)}
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
                rows = (await conn.execute(text(prefix + sql), params)).all()
                lines.append(f"-- {name}\n{sql}")
                lines.extend("   " + " | ".join(str(c) for c in r) for r in rows)
                lines.append("")
    finally:
        await engine.dispose()
    return "\n".join(lines)


def _p4_row(integration_id: int, n: int) -> dict[str, Any]:
    """A row as Hub.record hands it to the writer (already redacted and capped)."""
    ts = f"1795602492.{n % 1000000:06d}"
    text = f"Hello from the bench {n}"
    return {
        "integration_id": integration_id,
        "action": "post_message",
        "status": "SUCCESS",
        "request_data": {"channel": "general", "text": text},
        "response_data": {"channel": "C0000000001", "ts": ts, "message": {"type": "message", "text": text, "user": "U0FAKEBOT01",
                                                                          "ts": ts, "team": "T0000000001", "bot_id": "B0FAKEBOT01"}},
        "error_message": None,
        "duration_ms": 3,
    }


async def ingest(url: str, n: int) -> dict[str, Any]:
    """P4: N rows through hub.activity.ActivityWriter with the hub's default settings, as
    fast as one producer can hand them over; then the same rows through the bare driver."""
    from sqlalchemy import func, select

    from hub.activity import ActivityWriter
    from hub.infra.config import ActivityConfig
    from hub.store.engine import create_engine, sessionmaker
    from hub.store.models import Integration, IntegrationLog, utcnow

    cfg = ActivityConfig()
    engine = create_engine(url)
    try:
        sessions = sessionmaker(engine)
        async with sessions.begin() as session:
            ids = []
            for i in range(2):
                row = Integration(user_id=f"p4-user-{i}", provider="slack", status="ACTIVE", version=1, created_at=utcnow(),
                                  updated_at=utcnow(), scopes=[], meta={})
                session.add(row)
                await session.flush()
                ids.append(row.id)
        writer = ActivityWriter(sessions, flush_interval=cfg.flush_interval_ms / 1000, batch_size=cfg.batch_size, buffer_limit=cfg.buffer_limit)
        await writer.start()
        rows = [_p4_row(ids[0], i) for i in range(n)]
        t0 = time.perf_counter()
        for row in rows:
            await writer.record(row)
        enqueued = time.perf_counter() - t0
        await writer.flush()
        elapsed = time.perf_counter() - t0
        await writer.stop()
        async with sessions() as session:
            written = int(await session.scalar(select(func.count()).select_from(IntegrationLog).where(IntegrationLog.integration_id == ids[0])))
    finally:
        await engine.dispose()
    driver_s, driver_rows = await _driver_insert(url, ids[1], n, cfg.batch_size)
    return {"writer_rows": written, "writer_s": elapsed, "writer_rate": n / elapsed, "enqueue_s": enqueued,
            "driver_rows": driver_rows, "driver_s": driver_s, "driver_rate": n / driver_s, "batch": cfg.batch_size}


async def _driver_insert(url: str, integration_id: int, n: int, batch_size: int) -> tuple[float, int]:
    """The minimum: the same rows, JSON-encoded and time-stamped, by the bare async driver
    in batches of the writer's size, one transaction per batch."""
    cols = "integration_id, kind, action, status, request_data, response_data, error_message, duration_ms, created_at"
    rows = [_p4_row(integration_id, i) for i in range(n)]
    if url.startswith("sqlite"):
        import aiosqlite

        async with aiosqlite.connect(url.split(":///", 1)[1]) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            sql = f"INSERT INTO integration_logs ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            t0 = time.perf_counter()
            for i in range(0, n, batch_size):
                now = datetime.now(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
                batch = [(r["integration_id"], "call", r["action"], r["status"], json.dumps(r["request_data"]),
                          json.dumps(r["response_data"]), r["error_message"], r["duration_ms"], now) for r in rows[i:i + batch_size]]
                await db.executemany(sql, batch)
                await db.commit()
            elapsed = time.perf_counter() - t0
            async with db.execute("SELECT count(*) FROM integration_logs WHERE integration_id = ?", (integration_id,)) as cur:
                count = (await cur.fetchone())[0]
    else:
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            sql = f"INSERT INTO integration_logs ({cols}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            t0 = time.perf_counter()
            for i in range(0, n, batch_size):
                now = datetime.now(timezone.utc)
                batch = [(r["integration_id"], "call", r["action"], r["status"], json.dumps(r["request_data"]),
                          json.dumps(r["response_data"]), r["error_message"], r["duration_ms"], now) for r in rows[i:i + batch_size]]
                async with conn.transaction():
                    await conn.executemany(sql, batch)
            elapsed = time.perf_counter() - t0
            count = await conn.fetchval("SELECT count(*) FROM integration_logs WHERE integration_id = $1", integration_id)
        finally:
            await conn.close()
    return elapsed, int(count)


# --- P5 helper ----------------------------------------------------------------------------------------


async def storm(urls: list[str], jwt: str, calls: int) -> dict[str, Any]:
    """``calls`` concurrent action calls, spread evenly over ``urls``, each on its own
    connection; the time from the first send until every one is answered."""
    headers = {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"}
    statuses: collections.Counter[int] = collections.Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as s:
        gate = asyncio.Event()

        async def one(i: int) -> float:
            await gate.wait()
            async with s.post(urls[i % len(urls)] + ACTION_PATH, data=BODY, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
            return time.perf_counter()

        tasks = [asyncio.create_task(one(i)) for i in range(calls)]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        gate.set()
        ends = await asyncio.gather(*tasks)
    return {"ok": statuses.get(200, 0), "statuses": dict(statuses), "all_answered_s": max(ends) - t0,
            "median_s": statistics.median(ends) - t0}


# --- profile summary ----------------------------------------------------------------------------------


# Where a sample's time goes, by the outermost frame of the hot path it falls in (first
# match wins, in this order); samples in none of them fall back on GENERIC by any frame.
STAGES = (
    ("integration row read (hub/store/rowread.py, one SELECT)", ("require (hub/core/manage.py", "IntegrationStore.find", "IntegrationReader.")),
    ("token decrypt and expiry check", ("TokenSessions.usable", "decrypt_token")),
    ("upstream call: plugin handler, aiohttp client, Slack's response check", ("post_message (hub_slack", "ProviderHTTP.")),
    ("hook dispatch for the auth headers, CallContext", ("Registry.call",)),
    ("activity row: redact, size cap, metrics, enqueue", ("Recorder.record",)),
    ("activity writer: queue, Core insert, rollup upsert", ("ActivityWriter.",)),
    ("JWT verify", ("JWTVerifier.verify",)),
    ("input validation (jsonschema) and route match", ("InputValidator.", "ActionRunner.resolve", "ProviderPlugin.find_action")),
    ("JSON body parse (strict)", ("json_object",)),
    ("response envelope (JSON encode)", ("ok (hub/web/responses.py)", "json_response")),
    ("access-log line (logging + redacting filter)", ("Logger.",)),
    ("request metrics (prometheus)", ("MetricWrapperBase", "route_label", "Counter.inc", "Histogram.observe")),
    ("request id (uuid4)", ("uuid4",)),
)
# SQLAlchemy runs its synchronous core in greenlets; py-spy shows those stacks without
# the caller (no ActivityWriter above them), so they are told apart by what they do. In P1
# the action path reads through hub/store/rowread.py, outside SQLAlchemy, so what remains there
# is the activity writer.
GENERIC = (
    ("aiosqlite driver threads running SQLite", ("_connection_worker_thread",)),
    ("activity writer, inside SQLAlchemy's greenlets (insert, rollup upsert, driver hand-offs)", ("sqlalchemy", "aiosqlite", "asyncpg")),
    ("aiohttp server: read, parse, route, write", ("RequestHandler.", "web_protocol", "StreamResponse", "StreamWriter", "http_writer")),
    ("aiohttp client plumbing", ("client_proto", "ClientSession", "client_reqrep", "TCPConnector")),
)


def categorize(names: list[str]) -> str:
    for label, patterns in STAGES:
        if any(p in name for name in names for p in patterns):
            # the outermost matching stage: earlier stages are listed first, and a stage
            # nested inside another (Registry.call inside ProviderHTTP) is the outer's
            outer = min((i for i, name in enumerate(names) for _lab, pats in STAGES for p in pats if p in name), default=None)
            if outer is not None:
                for lab, pats in STAGES:
                    if any(p in names[outer] for p in pats):
                        return lab
            return label
    for label, patterns in GENERIC:
        if any(p in name for name in names for p in patterns):
            return label
    return "event loop and everything else"


def summarize_profile(folded: Path, top: int = 40) -> str:
    """Shares per hot-path stage, and self and inclusive shares per function, from
    py-spy's raw (folded) output."""
    self_n: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        names = [_frame_name(f) for f in stack.split(";")]
        self_n[names[-1]] += n
        stages[categorize(names)] += n
        for name in set(names):
            incl[name] += n
    out = [f"samples: {total} (py-spy --gil: only the thread holding the GIL is sampled)", "", "by stage of the hot path:"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in stages.most_common()]
    out += ["", "self time:"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in self_n.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(top * 3)]
    return "\n".join(out) + "\n"


def _frame_name(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for cut in ("site-packages/", str(ROOT) + "/", "lib/python3"):
        if cut in path:
            path = path.split(cut, 1)[1]
    return f"{name} ({path})"


# --- entry point --------------------------------------------------------------------------------------


def machine_header(elapsed: float, args: argparse.Namespace) -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0].split("Copyright")[0].strip()
    import aiohttp as _aiohttp
    import sqlalchemy

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "hub", "plugins"], capture_output=True, text=True).stdout.strip()
    return (f"Run {time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed / 60:.1f} min on {os.cpu_count()} cores ({cpu}), {mem} RAM, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, aiohttp {_aiohttp.__version__}, "
            f"SQLAlchemy {sqlalchemy.__version__}, {wrk_version}; hub at {commit}{' (+ uncommitted changes)' if dirty else ''}.\n"
            f"Settings: {args.connections} connections for {args.duration:g}s (P1), {args.latency_connections} connections pacing "
            f"{args.latency_pace_ms} ms for {args.latency_duration:g}s (P2), {args.p3_rows:,} + {args.p3_others}x{args.p3_other_rows:,} rows (P3), "
            f"{args.p4_rows:,} rows (P4), {args.p5_calls} calls (P5), {args.p6_requests:,} requests (P6).")


def main() -> int:
    p = argparse.ArgumentParser(description="Benchmarks P1-P6 of the integration hub against a bare aiohttp passthrough.")
    p.add_argument("--only", help="comma-separated parts to run: G,P1,P2,P3,P4,P5,P6 (default: all)")
    p.add_argument("--connections", type=int, default=64, help="P1/P6 concurrent connections (default 64)")
    p.add_argument("--duration", type=float, default=10, help="P1 seconds per measured run (default 10)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before measuring (default 3)")
    p.add_argument("--check-seconds", type=float, default=4, help="generator check seconds per run (default 4)")
    p.add_argument("--latency-connections", type=int, default=8, help="P2 connections (default 8)")
    p.add_argument("--latency-pace-ms", type=int, default=20, help="P2 pause of each connection between requests (default 20 ms)")
    p.add_argument("--latency-duration", type=float, default=10, help="P2 seconds per run (default 10)")
    p.add_argument("--p3-rows", type=int, default=1_000_000, help="P3 rows of the measured integration (default 1,000,000)")
    p.add_argument("--p3-others", type=int, default=10, help="P3 other integrations (default 10)")
    p.add_argument("--p3-other-rows", type=int, default=100_000, help="P3 rows of each other integration (default 100,000)")
    p.add_argument("--p3-span-days", type=float, default=7, help="P3 rows spread over this many days back (default 7: all inside stats?days=7)")
    p.add_argument("--p3-layout", choices=("interleaved", "after"), default="interleaved",
                   help="P3 row order: integrations interleaved in time (default), or the measured one's rows first and the others after them")
    p.add_argument("--p3-repeat", type=int, default=20, help="P3 timed calls per query (default 20; the first call is reported apart)")
    p.add_argument("--p4-rows", type=int, default=200_000, help="P4 rows (default 200,000)")
    p.add_argument("--p5-calls", type=int, default=200, help="P5 concurrent calls (default 200)")
    p.add_argument("--p6-requests", type=int, default=100_000, help="P6 requests for the memory figure (default 100,000)")
    p.add_argument("--upstream-delay-ms", type=float, default=100,
                   help="P1 also with the fake answering this late, like a real provider (default 100; 0: skip)")
    p.add_argument("--workers", type=int, default=2, help="P1 also against hub serve --workers N on PostgreSQL (default 2; 1: skip)")
    p.add_argument("--restarts", type=int, default=3, help="P6 restarts timed for the ready figure (default 3)")
    p.add_argument("--pg-url", default=os.environ.get("HUB_BENCH_PG_URL", DEFAULT_PG), help=f"PostgreSQL to create private databases through (default {DEFAULT_PG})")
    p.add_argument("--no-pg", action="store_true", help="skip every PostgreSQL figure")
    p.add_argument("--profile", action="store_true", help="also record a py-spy profile of the hub under P1 load (into --out)")
    p.add_argument("--out", default=str(BENCH / "out"), help="where results and profiles go (default bench/out)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory (logs, databases)")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk; bench/run does it)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BENCH))
    bench = Bench(args)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    return bench.run()


if __name__ == "__main__":
    sys.exit(main())

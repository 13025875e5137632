"""Operational hardening from the 2026-12 review: activity reads that do not queue behind
another user's load, log lines that cannot be forged and never carry a credential, private
file modes for the embedded database, a CSP on the callback pages, and a bound on how long
a slow client may take to send its request head."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import callback_path, connect_slack, consent
from procs import HubProcess, free_port, write_config
from support import Rows, auth, build_hub, slack_section

from conftest import serve_hub
from hub.infra import serverlog as hub_logs
from hub.activity import stats as stats_of
from hub.infra.secrets import resolve_secrets
from hub.infra.config import config_from_dict
from hub.store.engine import create_engine, upgrade
from hub.web import create_app
from hub.web.routes import DASHBOARD_HEADERS
from hub.store.models import utcnow

SLACK = "/api/integrations/slack"


# --- finding 2: a read waits only for the rows queued before it ---------------------------


async def integration_ids(db: Rows) -> dict[str, int]:
    return {row.user_id: row.id for row in await db.integrations()}


def call_row(integration_id: int, action: str = "post_message", duration: int = 3) -> dict[str, Any]:
    return {"integration_id": integration_id, "action": action, "status": "SUCCESS", "duration_ms": duration, "created_at": utcnow()}


class Flood:
    """One user's calls recorded without pause, so the activity buffer never empties: the
    buffer is full from ``warm`` on, and ``record`` waits for room (back-pressure)."""

    def __init__(self, writer: Any, integration_id: int, warm_after: int) -> None:
        self.writer = writer
        self.integration_id = integration_id
        self.warm_after = warm_after
        self.recorded = 0
        self.warm = asyncio.Event()
        self.stopping = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stopping:
            await self.writer.record(call_row(self.integration_id))
            self.recorded += 1
            if self.recorded >= self.warm_after:
                self.warm.set()
            await asyncio.sleep(0)  # let everything else run between two calls

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def busy_hub(make_config: Any, aiohttp_client: Any, fake_slack: Any) -> Any:
    """Alice and Bob connected; the hub's activity database takes a little while per batch."""
    config = make_config(activity={"flush_interval_ms": 20, "batch_size": 50, "buffer_limit": 400})
    client = await serve_hub(config, aiohttp_client)
    await connect_slack(client, auth("alice"))
    await connect_slack(client, auth("bob"))
    await client.db.settle()
    writer = client.hub.activity
    real = writer._insert

    async def slow_insert(rows: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0.005)  # a database under load: each batch costs a few ms more
        await real(rows)

    writer._insert = slow_insert
    return client


async def test_a_read_is_not_held_up_by_another_users_stream_of_calls(busy_hub: Any) -> None:
    hub = busy_hub.hub
    writer = hub.activity
    # The wait bound is not what lets this read through: only the watermark is.
    writer.read_wait = 600
    ids = await integration_ids(busy_hub.db)
    flood = Flood(writer, ids["alice"], warm_after=800)  # twice the buffer: it has been full
    try:
        await asyncio.wait_for(flood.warm.wait(), 30)
        await writer.record(call_row(ids["bob"], action="bob_marker", duration=7))
        assert writer.buffered > 0

        stats = await asyncio.wait_for(busy_hub.get(f"{SLACK}/stats", params={"days": "1"}, headers=auth("bob")), 20)
        body = await stats.json()
        assert stats.status == 200, body
        assert {"action": "bob_marker", "count": 1} in body["data"]["actionBreakdown"]

        logs = await asyncio.wait_for(busy_hub.get(f"{SLACK}/logs", params={"action": "bob_marker"}, headers=auth("bob")), 20)
        items = (await logs.json())["data"]["items"]
        assert [(i["action"], i["durationMs"]) for i in items] == [("bob_marker", 7)]
        # Alice's stream never paused: the reads came back while her rows kept queueing.
        assert not flood.task.done() and writer.buffered > 0
    finally:
        await flood.stop()
    await writer.flush()
    async with hub.sessions() as s:
        alice = await stats_of(s, ids["alice"], 1)
    assert alice["actionBreakdown"][0]["count"] >= flood.recorded  # nothing of hers was dropped


async def test_a_read_goes_ahead_after_the_bound_when_the_database_takes_no_rows(busy_hub: Any) -> None:
    hub = busy_hub.hub
    writer = hub.activity
    writer.read_wait = 0.3
    ids = await integration_ids(busy_hub.db)
    gate = asyncio.Event()
    slow = writer._insert

    async def stuck_insert(rows: list[dict[str, Any]]) -> None:
        await gate.wait()  # the database accepts nothing until the test lets it
        await slow(rows)

    writer._insert = stuck_insert
    try:
        await writer.record(call_row(ids["bob"], action="held_back"))
        started = time.monotonic()
        resp = await asyncio.wait_for(busy_hub.get(f"{SLACK}/stats", params={"days": "1"}, headers=auth("bob")), 10)
        assert resp.status == 200, await resp.text()
        assert time.monotonic() - started < 5
        assert {"action": "held_back", "count": 1} not in (await resp.json())["data"]["actionBreakdown"]
    finally:
        gate.set()
    # The row was kept, not dropped, and is there once the database takes it.
    assert await asyncio.wait_for(writer.flush(timeout=None), 10)
    resp = await busy_hub.get(f"{SLACK}/stats", params={"days": "1"}, headers=auth("bob"))
    assert {"action": "held_back", "count": 1} in (await resp.json())["data"]["actionBreakdown"]


# --- finding 8: log lines cannot be forged, and carry no credential ----------------------


@pytest.fixture
def server_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The server's own logging set-up (``hub serve``), writing to a buffer instead of stderr."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    for flag in ("_srcfile", "logThreads", "logMultiprocessing"):  # set by setup(), for the server's process
        monkeypatch.setattr(logging, flag, getattr(logging, flag))
    hub_logs.setup("INFO")
    try:
        yield buffer
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_a_forged_newline_in_the_path_stays_on_the_access_line(hub_app: Any, server_log: io.StringIO) -> None:
    forged = "2026-12-01 00:00:00,000 [1] WARNING hub: FORGED"
    resp = await hub_app.get("/healthz%0A" + forged.replace(" ", "%20") + "%0D%E2%80%A8%1B[31m")
    assert resp.status == 404
    lines = server_log.getvalue().splitlines()
    mine = [line for line in lines if "FORGED" in line]
    assert len(mine) == 1, lines
    assert " INFO    hub.access: GET /healthz\\n2026-12-01 00:00:00,000 [1] WARNING hub: FORGED\\r\\u2028\\x1b[31m 404 " in mine[0]
    assert not any(line.startswith("2026-12-01") for line in lines)


def test_the_log_masks_the_secrets_it_holds_now_whenever_they_change(server_log: io.StringIO) -> None:
    """The formatter keeps its secrets sorted between records; a new list, or one changed
    in place, is masked from the next record on."""
    formatter = logging.getLogger().handlers[0].formatter
    assert isinstance(formatter, hub_logs.RedactingFormatter)
    log = logging.getLogger("hub.test")
    formatter.secrets = ["first-secret-1"]
    log.warning("a first-secret-1 b")
    formatter.secrets = ["second-secret-2"]
    log.warning("c second-secret-2 d first-secret-1")
    formatter.secrets.append("third-secret-3")
    log.warning("e third-secret-3 f")
    lines = server_log.getvalue().splitlines()
    assert "first-secret-1" not in lines[0] and "second-secret-2" not in lines[1] and "third-secret-3" not in lines[2]
    assert "first-secret-1" in lines[1]  # no longer a secret: shown


def test_each_line_carries_the_time_of_its_own_second(server_log: io.StringIO) -> None:
    formatter = logging.getLogger().handlers[0].formatter
    assert isinstance(formatter, hub_logs.RedactingFormatter)
    first = logging.LogRecord("hub", logging.INFO, "", 0, "x", None, None)
    later = logging.LogRecord("hub", logging.INFO, "", 0, "x", None, None)
    first.created, first.msecs = 1_700_000_000.25, 250.0
    later.created, later.msecs = 1_700_000_001.5, 500.0
    plain = logging.Formatter(hub_logs.FORMAT)
    for record in (first, later, first):
        assert formatter.formatTime(record) == plain.formatTime(record)


def test_exception_text_is_redacted_and_cannot_start_a_line(server_log: io.StringIO) -> None:
    token = auth("alice")["Authorization"].split()[1]
    try:
        raise ValueError(
            f"bad line b'GET {SLACK}/callback?code=SECRETCODE1&state=SECRETSTATE2 HTTP/1.1'\n"
            f"Authorization: Bearer {token}\n2026-12-01 00:00:00,000 [1] WARNING hub: FORGED"
        )
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    logging.getLogger("hub").warning("stack follows", stack_info=True, extra={})
    out = server_log.getvalue()
    for secret in ("SECRETCODE1", "SECRETSTATE2", token, token.split(".")[2]):
        assert secret not in out
    assert "callback?code=[REDACTED]&state=[REDACTED]" in out
    lines = out.splitlines()
    starts = [line for line in lines if not line.startswith(" ")]
    # Each record begins a line of its own; everything it adds (traceback, stack) is indented.
    assert len(starts) == 2 and "ERROR   aiohttp.server: Error handling request from 127.0.0.1" in starts[0], lines
    assert "WARNING hub: stack follows" in starts[1]
    assert any("WARNING hub: FORGED" in line for line in lines)  # still readable, indented


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_malformed_request_leaves_no_secret_in_the_servers_log(
    tmp_path: Path, db_url: str, encryption_keys: str, fake_slack: Any
) -> None:
    port = free_port()
    config = write_config(tmp_path / "hub.json", db_url=db_url, encryption_keys=encryption_keys, port=port,
                          providers={"slack": slack_section(fake_slack)})
    token = auth("alice")["Authorization"].split()[1]
    async with HubProcess(config, port, workdir=tmp_path) as hub:
        await hub.start()
        bad_line = (f"GET {SLACK}/callback?code=SECRETCODE1&state=SECRETSTATE2 HTTP/1.1 junk\r\n"
                    f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
        bad_header = (f"GET {SLACK}/callback?code=SECRETCODE1&state=SECRETSTATE2 HTTP/1.1\r\n"
                      f"Host: x\r\nAuthorization: Bearer {token}\x01\r\n\r\n").encode()
        for request in (bad_line, bad_header):
            answer = await raw_exchange(port, request)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], answer
        assert await hub.stop() == 0
    out = hub.output()
    assert out.count("Error handling request") == 2, out  # both were logged, with their tracebacks
    for secret in ("SECRETCODE1", "SECRETSTATE2", token, token.split(".")[2]):
        assert secret not in out, out


# --- finding 12: file modes, CSP on the callback pages, slow clients ---------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_fresh_sqlite_database_is_private(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "new" / "data" / "hub.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await upgrade(engine)
        async with engine.connect() as conn:  # an open connection keeps the WAL files there
            await conn.exec_driver_sql("SELECT count(*) FROM integrations")
            assert mode(tmp_path / "new") == 0o700 and mode(db.parent) == 0o700
            assert mode(db) == 0o600
            for extra in ("-wal", "-shm"):
                assert mode(db.with_name(db.name + extra)) == 0o600
    finally:
        await engine.dispose()


def test_the_generated_secrets_folder_is_private_and_an_existing_one_is_left_alone(tmp_path: Path, umask_022: None) -> None:
    fresh = tmp_path / "fresh" / "data"
    resolve_secrets(config_from_dict({"database": {"url": f"sqlite+aiosqlite:///{fresh}/hub.db"}}, env={}))
    assert mode(fresh) == 0o700 and mode(fresh.parent) == 0o700

    own = tmp_path / "operators"
    own.mkdir(mode=0o750)
    os.chmod(own, 0o750)
    resolve_secrets(config_from_dict({"database": {"url": f"sqlite+aiosqlite:///{own}/hub.db"}}, env={}))
    assert mode(own) == 0o750  # the operator's choice, not the hub's


async def test_callback_result_pages_carry_the_dashboards_csp(hub_app: Any) -> None:
    csp = DASHBOARD_HEADERS["Content-Security-Policy"]
    refused = await hub_app.get(f"{SLACK}/callback", params={"code": "x", "state": "not-a-state"})
    assert refused.status == 400 and refused.content_type == "text/html"
    resp = await hub_app.get(f"{SLACK}/connect", headers=auth("alice"))
    location = await consent((await resp.json())["data"]["authUrl"])
    connected = await hub_app.get(callback_path(location))
    assert connected.status == 200 and connected.content_type == "text/html"
    for page in (refused, connected):
        assert page.headers.get("Content-Security-Policy") == csp
        assert page.headers.get("Referrer-Policy") == "no-referrer"
        html = await page.text()
        # Nothing inline that the policy would block: the page's look comes from a stylesheet.
        assert "<style" not in html and "<script" not in html and ' style="' not in html
        sheet = html.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
        css = await hub_app.get(sheet)
        assert css.status == 200 and css.content_type == "text/css"


async def test_a_client_that_trickles_its_request_head_is_cut_off(make_config: Any, aiohttp_client: Any) -> None:
    client = await serve_hub(make_config(server={"header_timeout": 1}), aiohttp_client)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 2000 + b"\r\n\r\n"
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.02)  # the attacker's pace: a byte every 20 ms, 40 s in all

    sender = asyncio.create_task(trickle())
    started = time.monotonic()
    try:
        # The server closing the connection is the event waited on; 15 s is far above the
        # configured second and far below the minute and more the old default allowed.
        try:
            closed = await asyncio.wait_for(reader.read(), 15)
        except ConnectionResetError:
            closed = b""
        elapsed = time.monotonic() - started
    finally:
        sender.cancel()
        writer.close()
    assert closed == b"" and elapsed < 10
    assert 0 < sent < len(head)  # cut off mid-head, not after it


def test_the_header_timeout_reaches_the_server(make_config: Any) -> None:
    app = create_app(build_hub(make_config(server={"header_timeout": 7})))
    assert app._handler_args["keepalive_timeout"] == 7  # noqa: SLF001 - what aiohttp's handler reads
    assert make_config().server.header_timeout == 20

"""Issue 6, item 6: the database goes away, and comes back.

While it is away, ``/readyz`` answers 503 saying the database is unreachable, and API
requests answer 503 ``database_unavailable`` with a message a client can act on (never a
500, never a stack trace). When it is back, the same hub process serves again: no
restart, nothing lost that it had already answered for.

How the database is taken away depends on the backend, and each way is real:

* **PostgreSQL**: the hub reaches the server through a small TCP proxy of this module's
  own. Cutting the proxy closes its listener and aborts every connection through it, so
  the hub's pooled connections die mid-stream and new ones are refused, exactly as when a
  database host or the network to it fails. Restoring it listens on the same port again.
* **SQLite** has no network to cut, and a file that is already open stays readable
  through its descriptor whatever happens to its name, so a pooled connection never
  notices the file going away; the outage only shows when the pool has to open a new
  connection. The test makes both halves of that real: the database's directory is
  moved away and a plain file put in its place (so "unable to open database file" is what
  SQLite itself answers, also for a directory re-creation attempt), and the hub's
  connection pool is emptied with SQLAlchemy's public ``engine.dispose()``, which is the
  moment every pool reaches after an overflow connection is closed or a connection is
  invalidated (the action path's one-row reader is reset likewise). Moving the directory back restores the database. No error is injected
  into the hub's code: every 503 below comes from a real failure of the driver.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from helpers import connect_slack
from hub.web import HUB_KEY, create_app
from procs import until
from support import auth, build_hub

UNAVAILABLE_MESSAGE = "the hub's database is unavailable right now; try again shortly"


class TcpProxy:
    """A loopback TCP relay to ``target`` that can be cut and restored on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while this connection was being relayed upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pumps = [asyncio.create_task(self._pump(reader, up_writer)), asyncio.create_task(self._pump(up_reader, writer))]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)
        self._writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            dst.transport.abort()

    async def cut(self) -> None:
        """Stop listening and abort every relayed connection, both ends; returns once
        every relay has ended."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        # Each relay's pumps end when their reads fail on the aborted sockets.
        if self._tasks:
            _, running = await asyncio.wait(list(self._tasks), timeout=10)
            assert not running, "relays still running 10 s after the cut"

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()


class PostgresOutage:
    down = False

    def __init__(self, db_url: str) -> None:
        self.real = make_url(db_url)
        self.proxy = TcpProxy(self.real.host or "127.0.0.1", self.real.port or 5432)

    async def setup(self) -> str:
        await self.proxy.start()
        return self.real.set(host="127.0.0.1", port=self.proxy.port).render_as_string(hide_password=False)

    async def cut(self, hub: Any) -> None:
        self.down = True
        await self.proxy.cut()

    async def restore(self) -> None:
        await self.proxy.start()
        self.down = False

    async def teardown(self) -> None:
        await self.proxy.close()


class SqliteOutage:
    down = False

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.away = tmp_path / "data.away"

    async def setup(self) -> str:
        return f"sqlite+aiosqlite:///{self.data}/hub.db"

    async def cut(self, hub: Any) -> None:
        self.down = True
        # Both of the hub's connection holders let go of their open files (see the module
        # docstring): the engine's pool, and the one-row reader of the action path.
        await hub.engine.dispose()
        hub.reader.reset()
        self.data.rename(self.away)
        self.data.write_text("not a directory: the database volume is gone\n")

    async def restore(self) -> None:
        self.data.unlink()
        self.away.rename(self.data)
        self.down = False

    async def teardown(self) -> None:
        if self.down:
            await self.restore()


@pytest.fixture
async def outage(db_url: str, tmp_path: Path) -> Any:
    """(database URL for the hub, controller with cut(hub) / restore())."""
    control = SqliteOutage(tmp_path) if db_url.startswith("sqlite") else PostgresOutage(db_url)
    url = await control.setup()
    yield url, control
    await control.teardown()


@pytest.fixture
async def client(outage: Any, make_config: Any, aiohttp_client: Any, fake_slack: Any) -> Any:
    url, control = outage
    config = make_config(database={"url": url}, server={"shutdown_timeout": 3})
    client = await aiohttp_client(create_app(build_hub(config)))
    await connect_slack(client, auth("alice"))
    yield client
    if control.down:
        # A test that failed mid-outage: bring the database back before the app's own
        # shutdown, which would otherwise wait for it (see the last test of this module).
        await control.restore()


async def timed(coro: Any, limit: float = 10.0) -> Any:
    """A request that must be answered, one way or the other, before ``limit`` seconds: the
    bound turns a hub hanging on the lost database into a failure. How long the answer took
    is returned for a failure's message only; it decides nothing, since a busy machine
    stretches it (speed belongs in bench/)."""
    started = time.monotonic()
    result = await asyncio.wait_for(coro, limit)
    return result, time.monotonic() - started


async def post(client: Any, text: str = "hi") -> Any:
    return await client.post("/api/integrations/slack/message", json={"channel": "general", "text": text}, headers=auth("alice"))


async def in_flight_upstream(client: Any, fake_slack: Any, text: str) -> asyncio.Task[Any]:
    """An action started and held upstream: returns once Slack has received its call
    (``fake_slack.delay`` decides how long Slack then holds it)."""
    before = len(fake_slack.calls_to("/api/chat.postMessage"))
    task = asyncio.create_task(post(client, text))
    await until(lambda: len(fake_slack.calls_to("/api/chat.postMessage")) > before, 10, "the action to reach Slack")
    return task


async def test_readyz_says_the_database_is_unreachable_and_recovers(client: Any, outage: Any) -> None:
    _, control = outage
    hub = client.app[HUB_KEY]
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["data"] == {"status": "ready", "database": "ok"}

    await control.cut(hub)
    for _ in range(3):  # not once by luck: every probe during the outage says so
        resp, _ = await timed(client.get("/readyz"))
        body = await resp.json()
        assert resp.status == 503, body
        assert body["success"] is False and body["error"]["code"] == "database_unavailable"
        assert "database is unreachable" in body["error"]["message"]

    await control.restore()
    resp, _ = await timed(client.get("/readyz"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["database"] == "ok"


ROUTES = [
    ("GET", "/api/integrations", None),
    ("GET", "/api/integrations/slack", None),
    ("POST", "/api/integrations/slack/message", {"channel": "general", "text": "during the outage"}),
    ("GET", "/api/integrations/slack/channels", None),
    ("GET", "/api/integrations/slack/logs", None),
    ("GET", "/api/integrations/slack/stats", None),
    ("GET", "/api/integrations/slack/connect", None),
    ("PATCH", "/api/integrations/slack/status", {"status": "INACTIVE"}),
]


async def test_api_requests_get_503_database_unavailable_during_the_outage(client: Any, outage: Any) -> None:
    _, control = outage
    await control.cut(client.app[HUB_KEY])
    for method, path, body in ROUTES:
        resp, took = await timed(client.request(method, path, json=body, headers=auth("alice")))
        raw = await resp.text()
        assert resp.status == 503, (method, path, resp.status, took, raw[:300])
        assert resp.content_type == "application/json", (path, raw[:300])
        answer = await resp.json()
        assert answer == {"success": False, "error": {"code": "database_unavailable", "message": UNAVAILABLE_MESSAGE}}
        assert resp.headers.get("Retry-After") == "5"
        assert resp.headers.get("X-Request-Id")
        assert "Traceback" not in raw and "sqlalchemy" not in raw.lower() and "asyncpg" not in raw.lower()
    await control.restore()


async def test_the_same_hub_recovers_without_a_restart(client: Any, outage: Any, fake_slack: Any) -> None:
    """Cut while an action is in flight upstream: the action (which needs no database
    after it started) is answered, its activity row waits in the buffer through the
    outage and is written once the database is back; meanwhile nothing succeeds that needs
    the database; afterwards everything works in the very same process."""
    _, control = outage
    hub = client.app[HUB_KEY]
    assert (await post(client, "before")).status == 200

    fake_slack.delay = 1.0
    in_flight = await in_flight_upstream(client, fake_slack, "in flight while the database went away")
    await control.cut(hub)
    answer, _ = await timed(in_flight)
    assert answer.status == 200, await answer.text()
    fake_slack.delay = 0

    for method, path, body in ROUTES[:3]:
        resp, took = await timed(client.request(method, path, json=body, headers=auth("alice")))
        assert resp.status == 503, (path, resp.status, took)  # the outage is real: nothing gets through
    assert len(fake_slack.messages) == 2  # the action attempted during the outage never reached Slack

    await control.restore()
    resp, _ = await timed(client.get("/api/integrations/slack", headers=auth("alice")))
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "ACTIVE"
    resp, _ = await timed(post(client, "after"))
    assert resp.status == 200, await resp.text()
    resp, _ = await timed(client.get("/api/integrations/slack/logs?action=post_message", headers=auth("alice")), 20)
    assert resp.status == 200
    texts = [item["requestData"]["text"] for item in (await resp.json())["data"]["items"]]
    assert texts == ["after", "in flight while the database went away", "before"]
    assert {item["status"] for item in (await resp.json())["data"]["items"]} == {"SUCCESS"}
    resp = await client.get("/readyz")
    assert resp.status == 200


async def test_shutdown_during_an_outage_ends_in_bounded_time(client: Any, outage: Any, fake_slack: Any) -> None:
    """An answered action's row is in the buffer when the database goes away; the operator
    stops the hub. It must stop within its shutdown budget (saying what it could not
    write), not hang until it is killed."""
    _, control = outage
    hub = client.app[HUB_KEY]
    fake_slack.delay = 1.0
    in_flight = await in_flight_upstream(client, fake_slack, "answered as the database went away")
    await control.cut(hub)
    try:
        assert (await in_flight).status == 200
        bound = hub.config.server.shutdown_timeout + 5
        try:
            await asyncio.wait_for(hub.stop(), bound)
        except asyncio.TimeoutError:
            pytest.fail(f"Hub.stop() was still waiting {bound:.0f} s into an outage")
    finally:
        await control.restore()  # lets the fixture's own shutdown finish

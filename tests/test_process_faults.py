"""Issue 6, item 7: the hub process itself stopping under load.

* SIGTERM while 150 actions are in flight: each of them finishes with 200, requests
  made after the signal are refused at the TCP level (no HTTP answer at all, so no 5xx),
  the process exits 0 in bounded time, and every answered request has its own activity
  row (the buffered writer is drained on the way out).
* kill -9 during the same kind of load, with token refreshes and new connections in
  flight too: after a restart on the same database every integration row is whole (its
  tokens decrypt under their own user/provider/field binding, its status is a real
  state), the restarted hub serves every user, and no token the provider ever issued is
  stored in clear anywhere in the database.

Each test runs ``hub serve`` as a real process against a fake Slack served from the
test's own event loop, on the suite's database (SQLite file or PostgreSQL).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text

from helpers import consent
from hub.infra.crypto import KeyRing
from hub.store.engine import create_engine, sessionmaker
from hub.core.lifecycle import Status
from hub.activity import LOG_STATUSES
from hub.store.models import Integration, IntegrationLog, OAuthState, utcnow
from hub.core.tokens import LEASE_SECONDS
from hub.store.integrations import decrypt_token
from hub_slack.fake import FakeSlack
from procs import HubProcess, connect_slack_via, free_port, port_is_open, until, write_config
from support import auth, slack_section

CLIENT_SECRET = "slack-secret-value-123"


@pytest.fixture
async def fake() -> Any:
    fake = FakeSlack(client_id="slack-client", client_secret=CLIENT_SECRET)
    await fake.start()
    yield fake
    await fake.stop()


def slack_config(fake: FakeSlack) -> dict[str, Any]:
    # Every call in flight at once: the per-provider cap must not queue the load.
    return {**slack_section(fake), "max_concurrency": 400}


async def post(session: aiohttp.ClientSession, url: str, user: str, text_: str) -> Any:
    """One action; returns the HTTP status, or the class of the connection-level failure."""
    try:
        async with session.post(
            f"{url}/api/integrations/slack/message", json={"channel": "general", "text": text_}, headers=auth(user)
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body
    except aiohttp.ClientConnectorError:
        return "refused", None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return "disconnected", None


async def orm(db_url: str, *stmts: Any) -> list[list[Any]]:
    engine = create_engine(db_url)
    try:
        async with sessionmaker(engine)() as session:
            return [list((await session.scalars(s)).all()) for s in stmts]
    finally:
        await engine.dispose()


async def test_sigterm_under_load_finishes_in_flight_refuses_new_and_records_every_answer(
    tmp_path: Path, db_url: str, encryption_keys: str, fake: FakeSlack
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "hub.yaml", db_url=db_url, encryption_keys=encryption_keys, port=port,
        providers={"slack": slack_config(fake)},
        # Rows wait a full second in the buffer: only the drain at shutdown writes the last ones.
        activity={"flush_interval_ms": 1000},
        server={"shutdown_timeout": 20},
    )
    async with HubProcess(config, port, workdir=tmp_path / "run") as hub:
        await hub.start()
        await connect_slack_via(hub.url, "alice")

        fake.delay = 3.0  # every chat.postMessage stays in flight for three seconds
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=40)) as load:
            first = [asyncio.create_task(post(load, hub.url, "alice", f"first-{i}")) for i in range(150)]
            await until(lambda: len(fake.calls_to("/api/chat.postMessage")) >= 150, 20, "150 calls to reach the fake")
            in_flight = sum(not task.done() for task in first)  # reached Slack, whose answers are held
            assert in_flight >= 100, f"only {in_flight} calls were in flight when the signal was sent"

            hub.send(signal.SIGTERM)
            await until(lambda: not port_is_open(port), 5, "the hub to stop listening after SIGTERM")
            second = await asyncio.gather(*(post(load, hub.url, "alice", f"second-{i}") for i in range(50)))
            answers = await asyncio.gather(*first)

        code = await hub.wait_exit(30)
        output = hub.output()

    # In-flight requests finished, and successfully.
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 150, {s: statuses.count(s) for s in set(statuses)}
    # New ones were refused cleanly: no HTTP answer at all, so no 5xx and no half-answer.
    assert [status for status, _ in second] == ["refused"] * 50, second
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "activity write" not in output, output  # no failed or retried activity writes

    # Every answered request has its own activity row, read from the database after exit.
    (logs,) = await orm(db_url, select(IntegrationLog).where(IntegrationLog.kind == "call", IntegrationLog.action == "post_message"))
    answered = {f"first-{i}" for i, (status, _) in enumerate(answers) if status == 200}
    recorded = [row.request_data["text"] for row in logs if row.status == "SUCCESS"]
    assert len(recorded) == len(answered) == 150
    assert set(recorded) == answered
    assert [row for row in logs if row.status != "SUCCESS"] == []
    assert len(fake.messages) == 150  # and nothing of the refused wave reached Slack


async def test_kill_9_under_load_then_restart_finds_a_consistent_encrypted_database(
    tmp_path: Path, db_url: str, encryption_keys: str, fake: FakeSlack
) -> None:
    fake.rotation = True  # refresh tokens exist, so refreshes rewrite token pairs under load
    port = free_port()
    config = write_config(
        tmp_path / "hub.yaml", db_url=db_url, encryption_keys=encryption_keys, port=port,
        providers={"slack": slack_config(fake)}, activity={"flush_interval_ms": 200},
    )
    users = [f"user{i}" for i in range(8)]
    newcomers = [f"new{i}" for i in range(8)]
    states: list[str] = []
    async with HubProcess(config, port, workdir=tmp_path / "run1", name="hub1") as hub:
        await hub.start()
        for user in users:
            await connect_slack_via(hub.url, user)
        # Newcomers get as far as the provider's consent; their callbacks are part of the load.
        callbacks = []
        async with aiohttp.ClientSession(base_url=hub.url) as s:
            for user in newcomers:
                async with s.get("/api/integrations/slack/connect", headers=auth(user)) as resp:
                    auth_url = (await resp.json())["data"]["authUrl"]
                states.append(dict(p.split("=", 1) for p in auth_url.split("?", 1)[1].split("&"))["state"])
                callbacks.append(await consent(auth_url))

        fake.delay = 0.4  # every upstream call, token endpoint included, stays in flight a while
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as load:

            answered: list[int] = []

            async def request(start: float, method: str, path: str, user: str | None, **kw: Any) -> Any:
                # The load's shape, not a wait: requests arrive as a steady stream over two
                # seconds, and the kill below waits on answers counted, not on time.
                await asyncio.sleep(start)
                headers = {**(auth(user) if user else {}), "Accept": "application/json"}
                try:
                    async with load.request(method, f"{hub.url}{path}", headers=headers, **kw) as resp:
                        await resp.read()
                        answered.append(resp.status)
                        return resp.status
                except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    return "cut"

            jobs = []
            for i in range(200):
                user, start = users[i % len(users)], i * 0.01
                if i % 10 == 3:
                    jobs.append(request(start, "POST", "/api/integrations/slack/refresh", user))
                elif i % 25 == 7 and callbacks:
                    location = callbacks.pop()
                    jobs.append(request(start, "GET", location[location.index("/api/"):], None))
                else:
                    jobs.append(request(start, "POST", "/api/integrations/slack/message", user, json={"channel": "general", "text": f"m{i}"}))
            tasks = [asyncio.create_task(j) for j in jobs]
            await until(lambda: len(answered) >= 60, 20, "the load to be well under way")
            hub.send(signal.SIGKILL)
            assert await hub.wait_exit(10) == -signal.SIGKILL
            outcomes = await asyncio.gather(*tasks)
    assert "cut" in outcomes and 200 in outcomes, "the kill did not land in the middle of the load"
    assert not [o for o in outcomes if isinstance(o, int) and o >= 500], outcomes

    secrets = [*fake.issued, CLIENT_SECRET, *states]
    assert len(fake.issued) > 30
    await assert_nothing_in_clear(db_url, secrets)

    # Restart on the same database.
    port2 = free_port()
    config2 = write_config(
        tmp_path / "hub2.yaml", db_url=db_url, encryption_keys=encryption_keys, port=port2,
        providers={"slack": slack_config(fake)},
    )
    fake.delay = 0
    async with HubProcess(config2, port2, workdir=tmp_path / "run2", name="hub2") as hub2:
        await hub2.start()
        ring = KeyRing.parse(encryption_keys)
        integrations, logs, oauth_states = await orm(db_url, select(Integration), select(IntegrationLog), select(OAuthState))
        assert len(integrations) >= len(users)
        by_user = {row.user_id: row for row in integrations}
        assert set(users) <= set(by_user)
        for row in integrations:
            assert row.provider == "slack"
            assert row.status in {s.value for s in Status}, row.status
            if row.status in (Status.ACTIVE, Status.EXPIRED):
                token = decrypt_token(ring, row)  # raises if any stored value is torn or misplaced
                assert token.access_token.startswith("xoxb-") and token.access_token in fake.issued
                assert token.refresh_token in fake.issued and token.expires_at is not None
                assert row.meta.get("accountId"), row.meta
            if row.refresh_lease_until is not None:  # a refresh cut short: its lease lapses by itself
                assert (row.refresh_lease_until - utcnow()).total_seconds() <= LEASE_SECONDS + 1
        ids = {row.id for row in integrations}
        assert all(log.integration_id in ids and log.status in LOG_STATUSES for log in logs)
        assert not [log for log in logs if log.status == "PENDING"]
        assert all(s.state_hash not in secrets for s in oauth_states)

        # The restarted hub serves every user: no 5xx, and an ACTIVE integration works.
        async with aiohttp.ClientSession(base_url=hub2.url, timeout=aiohttp.ClientTimeout(total=30)) as s:
            async with s.get("/readyz") as resp:
                assert resp.status == 200
            for user, row in sorted(by_user.items()):
                async with s.get("/api/integrations/slack", headers=auth(user)) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["data"]["status"] == row.status
                async with s.post("/api/integrations/slack/message", json={"channel": "general", "text": "after"}, headers=auth(user)) as resp:
                    if row.status == Status.ACTIVE:
                        assert resp.status == 200, (user, await resp.text())
                    else:
                        assert resp.status == 409, (user, await resp.text())
        assert await hub2.stop() == 0
        assert "Traceback" not in hub2.output(), hub2.output()

    await assert_nothing_in_clear(db_url, [*fake.issued, CLIENT_SECRET, *states])


async def assert_nothing_in_clear(db_url: str, secrets: list[str]) -> None:
    """No secret appears anywhere in the database: the raw bytes of every SQLite file
    (main file, write-ahead log, shared memory), or every row of every PostgreSQL table
    rendered as text."""
    assert all(len(s) >= 8 for s in secrets)
    if db_url.startswith("sqlite"):
        path = Path(db_url.split(":///", 1)[1])
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert path in files
        for file in files:
            raw = file.read_bytes()
            found = [s for s in secrets if s.encode() in raw]
            assert not found, f"{len(found)} secret(s) stored in clear in {file.name}"
        return
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = (await conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ))).scalars().all()
            assert {"integrations", "integration_logs", "oauth_states"} <= set(tables)
            for table in tables:
                rendered = "\n".join((await conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" t'))).scalars().all())
                found = [s for s in secrets if s in rendered]
                assert not found, f"{len(found)} secret(s) stored in clear in table {table}"
    finally:
        await engine.dispose()

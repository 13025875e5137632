"""kill -9 of a process in the middle of a delivery loses no event: the outbox is the truth,
and the delivery's lease runs out so another process sends it again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from conftest import serve_hub
from eventsupport import SECRET, SECRET_ENV, Clock, Subscriber, use_clock, with_subscriber
from helpers import connect_slack
from hub.infra.config import HubConfig
from hub.store.models import Event, EventDelivery
from support import auth

BOUND = 60  # seconds: only turns a hang into a failure

# One delivery pass of the outbox, as every hub process runs it, and nothing else.
DELIVER_ONCE = """
import asyncio, sys
from hub.activity import ActivityWriter
from hub.events import EventService
from hub.infra.config import load_config
from hub.store.engine import create_engine, sessionmaker

async def main():
    config = load_config(sys.argv[1])
    engine = create_engine(config.database.url)
    sessions = sessionmaker(engine)
    await EventService(config.events, sessions, ActivityWriter(sessions)).deliverer.run_once()

asyncio.run(main())
"""


async def test_kill_9_mid_delivery_loses_nothing(
    make_config: Callable[..., HubConfig], aiohttp_client: Any, subscriber: Subscriber, db_url: str, tmp_path: Path, fake_slack: Any
) -> None:
    client = await serve_hub(with_subscriber(make_config(), subscriber.url), aiohttp_client)
    clock = Clock()
    use_clock(client.hub, clock)
    await connect_slack(client, auth("alice"))
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": db_url},
        "events": {"subscribers": {"host": {"url": subscriber.url, "secret_env": SECRET_ENV}}},
    }))
    subscriber.hold = True  # the other process's delivery gets no answer
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DELIVER_ONCE, str(config), env={**os.environ, SECRET_ENV: SECRET},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        done = asyncio.ensure_future(proc.wait())
        seen = asyncio.ensure_future(subscriber.seen.wait())
        await asyncio.wait({done, seen}, timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
        assert seen.done(), f"the other process never delivered: {(await proc.stderr.read()).decode()[-2000:]}"  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(done, BOUND)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    async with client.hub.sessions() as session:
        delivery = (await session.scalars(select(EventDelivery))).one()
    assert delivery.state == "PENDING" and delivery.lease_owner is not None  # held by the dead process

    subscriber.hold = False
    assert await client.hub.events.deliverer.run_once() == 0  # its lease still stands
    clock.advance(3600)  # the lease runs out
    assert await client.hub.events.deliverer.run_once() == 1
    async with client.hub.sessions() as session:
        event = (await session.scalars(select(Event))).one()
    assert event.status == "DELIVERED"
    assert [r.id for r in subscriber.received] == [event.event_id, event.event_id]  # at least once: sent again, same id
    subscriber.verified()

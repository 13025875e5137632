"""What the events tests share: a subscriber endpoint on loopback that records what it
receives and answers as told, a clock the outbox runs on, and a hub configured to send to
the subscriber."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

from hub.infra.config import HubConfig
from hub.infra.eventsconfig import EventsConfig, read_secrets
from hub.store.models import utcnow

SECRET = "whsec_" + base64.b64encode(b"events-test-signing-key-32-bytes").decode()
SECRET_ENV = "HUB_TEST_EVENTS_SECRET"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.payload["type"]

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Subscriber:
    """An endpoint that answers ``status`` (and ``headers``) to every request, or holds it
    until ``release`` is set when ``hold`` is on. ``received`` keeps every request; ``seen``
    is set whenever one arrives."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    received: list[Received] = field(default_factory=list)
    server: TestServer | None = None
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        self.seen.set()
        if self.hold:
            await self.release.wait()
        return web.Response(status=self.status, headers=self.headers, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app)
        await self.server.start_server()

    async def stop(self) -> None:
        self.release.set()
        assert self.server is not None
        await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    def verified(self) -> list[Any]:
        """Every request's payload, checked with the Standard Webhooks library (raises if one fails)."""
        hook = Webhook(SECRET)
        return [hook.verify(r.body, r.headers) for r in self.received]

    def types(self) -> list[str]:
        return [r.type for r in self.received]


class Clock:
    """The outbox's "now", moved by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def with_subscriber(config: HubConfig, url: str, **sub: Any) -> HubConfig:
    """``config`` sending every event to ``url``; the delivery loop, the sweep
    and the prune are off unless ``events`` says otherwise (tests drive the passes themselves)."""
    raw: dict[str, Any] = {"delivery_interval_seconds": 0, "expiring_sweep_seconds": 0, "prune_interval_seconds": 0}
    raw.update(sub.pop("events", {}))
    raw["subscribers"] = {"host": {"url": url, "secret_env": SECRET_ENV, "backoff_min_seconds": 10, "backoff_max_seconds": 600, **sub}}
    config.events = EventsConfig.model_validate(raw)
    assert not read_secrets(config.events, {SECRET_ENV: SECRET})
    return config


def use_clock(hub: Any, clock: Callable[[], datetime]) -> None:
    hub.events.outbox.clock = clock

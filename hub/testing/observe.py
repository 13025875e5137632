"""Reading what the hub under test did, and moving time for it: a user's activity once the
writer has caught up, the clock of a fake and the hub's view of when its tokens expire,
and everything the hub stored, as text, for secret scans."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from hub.store.models import Base, Integration, utcnow

from .kit import auth_headers, hub_of


class FakeClock:
    """A clock to give a fake (``fake.clock = FakeClock()``): it stands still until
    :meth:`advance` moves it. Called, it answers like :func:`time.time`."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


async def activity(client: TestClient, user: str = "alice", provider: str | None = None, **query: str) -> list[dict[str, Any]]:
    """``user``'s activity rows for ``provider``, newest first, as ``GET .../logs`` pages
    them (``query`` filters as that route does: ``status``, ``action``, ``since``).

    The hub writes activity rows in the background; this first waits until every row queued
    before the call is written (the writer's own watermark, however long the database takes),
    so a test sees each call it made before, and never sleeps."""
    provider = provider or client.provider  # type: ignore[attr-defined]
    await hub_of(client).activity.flush(timeout=None)
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "200", **query, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(f"/api/integrations/{provider}/logs", params=params, headers=auth_headers(user))
        body = await resp.json()
        assert resp.status == 200, body
        rows.extend(body["data"]["items"])
        cursor = body["data"]["nextCursor"]
        if not cursor:
            return rows


async def advance_time(client: TestClient, seconds: float, *, user: str | None = None) -> None:
    """Let ``seconds`` pass for token lifetimes, on both sides: the fake's clock moves on
    (it is given a :class:`FakeClock` first if it runs on the real one), and the hub's
    stored tokens are as old as they would then be (their expiry and last update move
    back), so an access token past its life is refreshed, or found expired, by the hub's
    own rules. ``user`` limits the hub's side to that user's integration."""
    fake = client.fake  # type: ignore[attr-defined]
    clock: Callable[[], float] | None = getattr(fake, "clock", None)
    if clock is not None:
        if not isinstance(clock, FakeClock):
            fake.clock = clock = FakeClock(clock())
        clock.advance(seconds)
    shift = timedelta(seconds=seconds)
    await _rewrite(client, user, lambda row: {
        "token_expiry": row.token_expiry - shift if row.token_expiry else None,
        "updated_at": row.updated_at - shift,
    })


async def expire_access_tokens(client: TestClient, *, user: str | None = None) -> None:
    """The access tokens end their life now, on both sides: the fake's
    (``fake.expire_tokens()``) and the hub's stored expiry of the provider's integrations
    (of ``user``'s alone if given), tokens without an expiry included. The hub's next use
    refreshes them when it holds a refresh token, else marks the integration EXPIRED."""
    fake = client.fake  # type: ignore[attr-defined]
    fake.expire_tokens()
    past = utcnow() - timedelta(seconds=1)
    await _rewrite(client, user, lambda row: {"token_expiry": past})


async def _rewrite(client: TestClient, user: str | None, change: Callable[[Integration], dict[str, Any]]) -> None:
    """Change stored integrations of the client's provider as another process would: under
    the row's compare-and-swap version, so a hub holding an older copy sees it moved."""
    hub = hub_of(client)
    where = [Integration.provider == client.provider]  # type: ignore[attr-defined]
    if user is not None:
        where.append(Integration.user_id == user)
    async with hub.sessions.begin() as session:
        for row in (await session.scalars(select(Integration).where(*where))).all():
            values = {**change(row), "version": row.version + 1}
            await session.execute(update(Integration).where(Integration.id == row.id).values(**values))


async def stored_text(client: TestClient) -> str:
    """Everything the hub under test stored, as text: every row of every table and, for
    SQLite, the bytes of the database file and its journals. For secret scans."""
    hub = hub_of(client)
    parts: list[str] = []
    async with hub.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                parts.append(repr(tuple(row)))
    url = make_url(hub.config.database.url)
    if url.get_backend_name() == "sqlite" and url.database:
        for suffix in ("", "-wal", "-journal"):
            path = Path(url.database + suffix)
            if path.exists():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def found_secrets(secrets: list[str], *texts: str) -> list[str]:
    """The secrets (issued tokens and codes) that appear in any of ``texts``, shortened so a
    failure message never prints one whole."""
    return [f"{s[:12]}..." for s in dict.fromkeys(secrets) if s and any(s in t for t in texts)]

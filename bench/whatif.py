"""Prototypes of the changes docs/performance.md recommends, to measure their gain.

Nothing in hub/ is edited: this module replaces a few hub functions in its own process,
then runs the ordinary ``hub`` command line. ``bench/bench.py --whatif`` serves the hub
this way and runs P1 (and P4) against each prototype, so the expected gains in the docs
are measured, not guessed. They follow the hub's code as it was when written; if hub/
has moved on, a prototype may no longer apply (it then fails loudly at start-up).

    python bench/whatif.py read,writer -- serve --config hub.yaml

Prototypes:

* ``read``: the integration row of an action call read with one Core ``SELECT`` on an
  engine of its own in AUTOCOMMIT mode without pool pre-ping: no ORM session, no
  BEGIN/ROLLBACK round trips, no SELECT 1 per checkout (Hub._find).
* ``writer``: the activity writer takes queued rows with ``get_nowait`` instead of one
  ``asyncio.wait_for`` per row, and inserts a batch as a Core ``INSERT`` executemany
  instead of an ORM bulk insert (ActivityWriter._run and _write).
* ``jwt``: verified JWTs remembered (bounded LRU, until their ``exp``), so a client that
  reuses its token is not re-verified on every call (JWTVerifier.verify).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from typing import Any

log = logging.getLogger("bench.whatif")


def patch_read() -> None:
    from sqlalchemy import bindparam, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from hub import service
    from hub.models import Integration

    table = Integration.__table__
    stmt = select(table).where(table.c.user_id == bindparam("u"), table.c.provider == bindparam("p"))
    columns = {c.name: c.key for c in Integration.__mapper__.columns}  # "metadata" -> "meta"
    original_start, original_stop = service.Hub.start, service.Hub.stop

    async def start(self: Any, *, migrate: bool = True) -> None:
        await original_start(self, migrate=migrate)
        url = self.config.database.url
        kw: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"timeout": 30}
        else:
            size = self.config.database.pool_size
            kw.update(pool_size=size, max_overflow=size, pool_pre_ping=False, pool_recycle=1800)
        self._bench_reader = create_async_engine(url, **kw)

    async def stop(self: Any) -> None:
        await original_stop(self)
        await self._bench_reader.dispose()

    async def _find(self: Any, user_id: str, provider: str) -> Integration | None:
        async with self._bench_reader.connect() as conn:
            row = (await conn.execute(stmt, {"u": user_id, "p": provider})).first()
        if row is None:
            return None
        return Integration(**{columns[k]: v for k, v in row._mapping.items()})

    service.Hub.start = start  # type: ignore[method-assign]
    service.Hub.stop = stop  # type: ignore[method-assign]
    service.Hub._find = _find  # type: ignore[method-assign]


def patch_writer() -> None:
    from sqlalchemy import insert

    from hub import activity, metrics
    from hub.models import IntegrationLog

    table = IntegrationLog.__table__

    async def _run(self: Any) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self._batch and not queue.empty():
                batch.append(queue.get_nowait())
            if len(batch) < self._batch:
                # Not a full batch yet: give stragglers one interval, then take what came.
                await asyncio.sleep(self._interval)
                while len(batch) < self._batch and not queue.empty():
                    batch.append(queue.get_nowait())
            await self._write(batch)
            for _ in batch:
                queue.task_done()

    async def _write(self: Any, batch: list[dict[str, Any]]) -> None:
        delay = 0.1
        while True:
            try:
                async with self._sessions.begin() as session:
                    await session.execute(insert(table), batch)
                self.written += len(batch)
                metrics.ACTIVITY_WRITTEN.inc(len(batch))
                metrics.ACTIVITY_BUFFERED.set(self._queue.qsize())
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("activity write of %d rows failed (%s); retrying in %.1fs", len(batch), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    activity.ActivityWriter._run = _run  # type: ignore[method-assign]
    activity.ActivityWriter._write = _write  # type: ignore[method-assign]


def patch_jwt(size: int = 4096) -> None:
    from hub import auth

    original = auth.JWTVerifier.verify

    def verify(self: Any, header: str | None) -> Any:
        cache = self.__dict__.setdefault("_bench_cache", collections.OrderedDict())
        hit = cache.get(header)
        if hit is not None and hit[0] > time.time():
            cache.move_to_end(header)
            return hit[1]
        caller = original(self, header)  # raises on anything invalid: only good tokens are kept
        exp = caller.claims.get("exp")
        if isinstance(exp, (int, float)):
            cache[header] = (float(exp), caller)
            if len(cache) > size:
                cache.popitem(last=False)
        return caller

    auth.JWTVerifier.verify = verify  # type: ignore[method-assign]


PATCHES = {"read": patch_read, "writer": patch_writer, "jwt": patch_jwt}


def apply(names: str) -> list[str]:
    applied = []
    for name in [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]:
        PATCHES[name]()
        applied.append(name)
    return applied


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    applied = apply(sys.argv[1])
    print(f"bench/whatif.py: prototypes applied: {', '.join(applied) or 'none'}", file=sys.stderr, flush=True)
    from hub.cli import main as hub_main

    hub_main(args=sys.argv[3:], prog_name="hub")


if __name__ == "__main__":
    main()

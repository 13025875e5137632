"""What bench's helper servers (passthrough.py, upstream.py) share: tell the driver
where they listen, then serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web


async def serve_until_signalled(runner: web.AppRunner, url: str) -> None:
    """Print ``{"url": ...}`` (bench.py reads it from stdout), wait for a signal, clean up."""
    print(json.dumps({"url": url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def run(main: Callable[[], Awaitable[None]]) -> None:
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

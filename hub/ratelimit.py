"""Client-side throttling: stay inside a provider's published request budget so it never
has to refuse. A sliding window per key (an integration, or the whole app) counts
requests as they are sent; a request that would exceed the budget waits for room.

The budget lives in this process. With several processes sharing one token each keeps
its own count, so a provider's 429 (answered with Retry-After) remains the backstop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` per ``seconds``, counted per token or for the whole app."""

    requests: int
    seconds: float
    per: Literal["token", "app"] = "token"


# Arrival at the provider lags sending by a little; widen the window so a burst that
# leaves on the boundary cannot land inside the provider's next window.
_SLACK = 1.02
_PAD = 0.05


class SlidingWindow:
    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self._sent: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._clock, self._sleep = clock, sleep

    async def acquire(self, key: str) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # first come, first served within one key
            sent = self._sent.setdefault(key, deque())
            window = self.limit.seconds * _SLACK + _PAD
            while True:
                now = self._clock()
                while sent and now - sent[0] >= window:
                    sent.popleft()
                if len(sent) < self.limit.requests:
                    sent.append(now)
                    return
                await self._sleep(window - (now - sent[0]))

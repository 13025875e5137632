"""Client-side throttling: stay inside a provider's published request budget so it never
has to refuse. A sliding window per key (an integration, or the whole app) counts
requests as they are sent; a request that would exceed the budget waits for room, but
never longer than the caller allows: past that it is refused at once with
:class:`~hub.errors.Throttled` (429, ``Retry-After``) instead of queueing.

Admission works by reservation: a request is given the earliest moment at which every
window it belongs to has room, and that moment is booked before it waits. So how long a
request would wait is known the moment it arrives (whatever is queued before it), the
order is first come, first served, and a refused request books nothing.

The budget lives in this process. With several processes sharing one token each keeps
its own count, so a provider's 429 (answered with Retry-After) remains the backstop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from .errors import Throttled


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` per ``seconds``, counted per token or for the whole app."""

    requests: int
    seconds: float
    per: Literal["token", "app"] = "token"


@dataclass(frozen=True)
class Budget:
    """What is left of one window's budget once a request has been admitted (or refused):
    the ``RateLimit-*`` headers an answer carries."""

    limit: int
    remaining: int
    # Seconds until every request counted now has left the window (the whole budget back).
    reset: float


# Arrival at the provider lags sending by a little; widen the window so a burst that
# leaves on the boundary cannot land inside the provider's next window.
_SLACK = 1.02
_PAD = 0.05

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class SlidingWindow:
    def __init__(self, limit: RateLimit, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.limit = limit
        self.seconds = limit.seconds * _SLACK + _PAD
        # Per key, the admission moments of the newest ``limit.requests`` requests, in
        # order; some may lie in the future (booked by requests still waiting).
        self._booked: dict[str, deque[float]] = {}
        self._clock, self._sleep = clock, sleep

    def earliest(self, key: str, now: float) -> float:
        """The first moment from ``now`` at which one more request fits in the window."""
        booked = self._booked.get(key)
        if not booked:
            return now
        at = max(now, booked[-1])
        if len(booked) >= self.limit.requests:
            at = max(at, booked[0] + self.seconds)
        return at

    def book(self, key: str, at: float) -> None:
        """Count a request admitted at ``at`` (never earlier than :meth:`earliest`)."""
        booked = self._booked.get(key)
        if booked is None:
            booked = self._booked[key] = deque(maxlen=self.limit.requests)
        booked.append(at)

    def budget(self, key: str, now: float) -> Budget:
        booked = self._booked.get(key) or ()
        counted = [t for t in booked if t > now - self.seconds]
        reset = (counted[-1] + self.seconds - now) if counted else 0.0
        return Budget(self.limit.requests, max(0, self.limit.requests - len(counted)), max(0.0, reset))

    async def acquire(self, key: str, max_wait: float | None = None) -> float:
        """Wait for room in this window alone; the moment of admission (on its clock)."""
        return await admit([(self, key)], max_wait=max_wait, clock=self._clock, sleep=self._sleep)


async def admit(
    windows: Sequence[tuple[SlidingWindow, str]],
    *,
    max_wait: float | None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> float:
    """Admit one request into every ``(window, key)`` at the same moment, the earliest at
    which all of them have room; book it, wait until then, and return it.

    When that moment is more than ``max_wait`` seconds away, nothing is booked and
    :class:`Throttled` is raised with ``retry_after``. Either way, the tightest window's
    :class:`Budget` is noted for the answer's headers (see :func:`observe`)."""
    now = clock()
    at = max((w.earliest(key, now) for w, key in windows), default=now)
    wait = at - now
    if max_wait is not None and wait > max_wait:
        _note(windows, now)
        raise Throttled(
            f"the hub's request budget for this provider is spent for the next {math.ceil(wait)} s "
            f"(waiting is capped at {max_wait:g} s by upstream.max_queue_wait); retry after the time in Retry-After",
            retry_after=wait,
            details={"retryAfterSeconds": math.ceil(wait)},
        )
    for w, key in windows:
        w.book(key, at)
    _note(windows, now)
    if wait > 0:
        await sleep(wait)
    return at


# --- the budget an answer reports ------------------------------------------------------


class Observed:
    """The budget noted by the last admission made while observing (``None`` if the
    request reached no throttled provider)."""

    budget: Budget | None = None


_OBSERVED: ContextVar[Observed | None] = ContextVar("hub_ratelimit_observed", default=None)


@contextmanager
def observe() -> Iterator[Observed]:
    """Collect the budget of whatever throttled calls run inside the block (in this task
    and the tasks it starts), for the ``RateLimit-*`` headers of one answer."""
    seen = Observed()
    token = _OBSERVED.set(seen)
    try:
        yield seen
    finally:
        _OBSERVED.reset(token)


def _note(windows: Sequence[tuple[SlidingWindow, str]], now: float) -> None:
    seen = _OBSERVED.get()
    if seen is None or not windows:
        return
    budgets = [w.budget(key, now) for w, key in windows]
    # The window that will refuse first: the least left, then the longest to refill.
    seen.budget = min(budgets, key=lambda b: (b.remaining, -b.reset))

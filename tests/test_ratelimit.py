"""Client-side throttling, on a clock the test owns: exact, whatever the machine's load."""

from __future__ import annotations

import asyncio

from hub.ratelimit import RateLimit, SlidingWindow


class Clock:
    """Virtual time: sleeping moves it forward, nothing else does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


async def admissions(limiter: SlidingWindow, clock: Clock, key: str, count: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire(key)
        times.append(clock())

    await asyncio.gather(*(one() for _ in range(count)))
    return times


async def test_no_window_ever_holds_more_than_the_budget() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(100, 1.0), clock=clock, sleep=clock.sleep)
    times = await admissions(limiter, clock, "token-a", 350)
    assert len(times) == 350
    assert times[:100] == [1000.0] * 100  # a fresh budget is spent at once
    for i in range(len(times) - 100):
        assert times[i + 100] - times[i] >= 1.0, "101 requests admitted within one window"


async def test_the_budget_is_per_key() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(10, 1.0), clock=clock, sleep=clock.sleep)
    first = await admissions(limiter, clock, "token-a", 10)
    second = await admissions(limiter, clock, "token-b", 10)
    assert first == second == [1000.0] * 10  # another key's spending costs nothing


async def test_room_comes_back_as_the_window_slides() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(2, 1.0), clock=clock, sleep=clock.sleep)
    await admissions(limiter, clock, "k", 2)
    clock.now += 0.5
    third = await admissions(limiter, clock, "k", 1)
    assert third[0] > 1001.0  # waited for the first admission to leave the window

"""Client-side throttling, on a clock the test owns: exact, whatever the machine's load."""

from __future__ import annotations

import asyncio

import pytest

from hub.errors import Throttled
from hub.ratelimit import RateLimit, SlidingWindow, admit, observe


class Clock:
    """Virtual time that only the test moves. A sleep returns at once, having recorded how
    long it was asked for: what a request waits is what the limiter booked for it, and
    every concurrent request is judged at the same moment."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def admissions(limiter: SlidingWindow, clock: Clock, key: str, count: int) -> list[float]:
    """The moments at which ``count`` concurrent requests were admitted, in order."""
    return sorted(await asyncio.gather(*(limiter.acquire(key) for _ in range(count))))


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


# --- the bounded wait (issue 16: 130 concurrent Trello reads, the last waiting 17 s) ------


async def test_past_the_longest_wait_a_request_is_refused_at_once_with_retry_after() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(100, 10.0), clock=clock, sleep=clock.sleep)  # Trello's per-token budget
    outcomes = await asyncio.gather(*(limiter.acquire("token-a", max_wait=3.0) for _ in range(130)), return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, float)]
    refused = [o for o in outcomes if isinstance(o, Throttled)]
    assert admitted == [1000.0] * 100  # the budget, at once
    assert len(refused) == 30 and clock.slept == []  # the rest refused without waiting at all
    window = limiter.seconds
    assert all(r.status == 429 and r.code == "throttled" for r in refused)
    assert {round(r.retry_after, 6) for r in refused} == {round(window, 6)}  # when the first admission leaves


async def test_a_wait_within_the_bound_is_waited() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(2, 1.0), clock=clock, sleep=clock.sleep)
    window = limiter.seconds  # a little over a second
    outcomes = await asyncio.gather(*(limiter.acquire("k", max_wait=2.5) for _ in range(7)), return_exceptions=True)
    admitted = sorted(o for o in outcomes if isinstance(o, float))
    assert admitted == pytest.approx([1000.0, 1000.0, 1000.0 + window, 1000.0 + window, 1000.0 + 2 * window, 1000.0 + 2 * window])
    assert sum(isinstance(o, Throttled) for o in outcomes) == 1  # the seventh would wait 3 windows
    assert sorted(clock.slept) == pytest.approx([window, window, 2 * window, 2 * window])


async def test_a_refused_request_books_nothing() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(1, 1.0), clock=clock, sleep=clock.sleep)
    await limiter.acquire("k", max_wait=0)
    for _ in range(5):
        with pytest.raises(Throttled):
            await limiter.acquire("k", max_wait=0)
    clock.now += limiter.seconds
    assert await limiter.acquire("k", max_wait=0) == clock.now  # room as if the refusals never came


async def test_several_windows_admit_together_at_the_latest_of_their_moments() -> None:
    clock = Clock()
    token = SlidingWindow(RateLimit(1, 1.0), clock=clock, sleep=clock.sleep)
    app = SlidingWindow(RateLimit(3, 10.0), clock=clock, sleep=clock.sleep)
    first = await admit([(token, "a"), (app, "")], max_wait=None, clock=clock, sleep=clock.sleep)
    other_token = await admit([(token, "b"), (app, "")], max_wait=None, clock=clock, sleep=clock.sleep)
    again = await admit([(token, "a"), (app, "")], max_wait=None, clock=clock, sleep=clock.sleep)
    assert first == other_token == 1000.0
    assert again == 1000.0 + token.seconds  # token a's window decides
    with pytest.raises(Throttled):  # the app's three are spent for ten seconds
        await admit([(token, "c"), (app, "")], max_wait=5.0, clock=clock, sleep=clock.sleep)


async def test_the_budget_an_answer_reports() -> None:
    clock = Clock()
    limiter = SlidingWindow(RateLimit(3, 10.0), clock=clock, sleep=clock.sleep)
    with observe() as seen:
        await limiter.acquire("k")
    assert seen.budget is not None
    assert (seen.budget.limit, seen.budget.remaining) == (3, 2)
    assert seen.budget.reset == pytest.approx(limiter.seconds)
    with observe() as seen:
        await limiter.acquire("k")
        await limiter.acquire("k")
        with pytest.raises(Throttled):
            await limiter.acquire("k", max_wait=1.0)
    assert seen.budget is not None and seen.budget.remaining == 0
    clock.now += limiter.seconds  # every request counted has left the window
    with observe() as seen:
        await limiter.acquire("k")
    assert seen.budget is not None and seen.budget.remaining == 2

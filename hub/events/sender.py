"""Delivering the outbox: a loop in every process that claims due deliveries, POSTs each
one signed the Standard Webhooks way, and records the outcome.

* 2xx: delivered.
* timeout, no connection, 5xx, 429: tried again after an exponential backoff with jitter
  (``backoff_min_seconds`` doubling up to ``backoff_max_seconds``), never sooner than the
  answer's ``Retry-After``; after ``max_attempts`` the delivery is dead (``hub events retry``).
* 410 Gone: the subscriber is disabled (stored and logged); its deliveries wait, in order,
  until ``hub events enable NAME``.
* anything else (a 4xx, a redirect): dead at once; the subscriber refused it.

Each attempt is an activity row of its own (``kind`` "delivery") on the event's
integration. Nothing here runs on a request's path: a request only writes the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from ..activity import ActivityWriter
from ..infra import metrics
from ..infra.eventsconfig import EventsConfig, SubscriberConfig
from ..store.models import utcnow
from .deliveries import Claimed, DeliveryStore, Outcome
from .outbox import DEAD, DELIVERED, PENDING

log = logging.getLogger("hub.events")

USER_AGENT = "integration-hub-events/1"
# Longest wait a Retry-After may impose.
MAX_RETRY_AFTER = 86_400.0
# A lease outlives one attempt's timeout by this much, so it never runs out mid-attempt.
LEASE_MARGIN = 30.0
# Rounds of claiming in one pass: each round may free an integration's next event.
MAX_ROUNDS = 20


def backoff(sub: SubscriberConfig, attempts: int, retry_after: float | None, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from the minimum, capped, the upper
    half jittered ("equal jitter"), and at least what the subscriber asked for."""
    base = min(sub.backoff_max_seconds, sub.backoff_min_seconds * 2 ** max(attempts - 1, 0))
    delay = base / 2 + rand(0, base / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def body_of(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Deliverer:
    def __init__(self, config: EventsConfig, store: DeliveryStore, writer: ActivityWriter, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.store = store
        self.writer = writer
        self.clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._signers = {name: Webhook(sub.secret) for name, sub in config.subscribers.items()}
        # Attempts made by this process (tests wait on it).
        self.attempts = 0
        self._progress = asyncio.Condition()

    @property
    def lease(self) -> timedelta:
        longest = max((s.timeout_seconds for s in self.config.subscribers.values()), default=0.0)
        return timedelta(seconds=longest + LEASE_MARGIN)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def run_once(self) -> int:
        """One pass: deliver what is due, round after round while rounds find work (an
        integration's next event becomes due when its previous one is done). The number of
        attempts made."""
        made = 0
        for _ in range(MAX_ROUNDS):
            disabled = await self.store.disabled()
            names = [n for n, s in self.config.subscribers.items() if s.enabled and n not in disabled]
            claimed = await self.store.claim(names, self.clock(), self.lease, self.config.batch_size)
            if not claimed:
                break
            gate = asyncio.Semaphore(self.config.concurrency)

            async def one(item: Claimed) -> None:
                async with gate:
                    await self.deliver(item)

            outcomes = await asyncio.gather(*(one(item) for item in claimed), return_exceptions=True)
            for item, failure in zip(claimed, outcomes):
                if isinstance(failure, Exception):
                    # Its lease stands and runs out: the event is sent again later.
                    log.warning("delivering event %s to %s failed (%s)", item.event_id, item.subscriber, type(failure).__name__)
            made += len(claimed)
        return made

    async def deliver(self, item: Claimed) -> None:
        sub = self.config.subscribers[item.subscriber]
        attempt = item.attempts + 1
        started = time.perf_counter()
        status, error, retry_after = await self._post(item, sub)
        now = self.clock()
        if status is not None and 200 <= status < 300:
            outcome = Outcome(DELIVERED, attempt, now, status, None, delivered_at=now)
        elif status == 410:
            await self.store.set_disabled(item.subscriber, now, f"answered 410 Gone to event {item.event_id}")
            log.warning("event subscriber %s answered 410 Gone: disabled; its events wait (hub events enable %s)", item.subscriber, item.subscriber)
            outcome = Outcome(PENDING, attempt, now, status, "410 Gone: the subscriber is disabled")
        elif status is None or status == 429 or status >= 500:
            wait = backoff(sub, attempt, retry_after_seconds(retry_after, now))
            state = DEAD if attempt >= sub.max_attempts else PENDING
            outcome = Outcome(state, attempt, now + timedelta(seconds=wait), status, error or f"HTTP {status}")
        else:
            outcome = Outcome(DEAD, attempt, now, status, f"HTTP {status}: refused by the subscriber")
        outcome_label = "delivered" if outcome.state == DELIVERED else "dead" if outcome.state == DEAD else "retry"
        metrics.EVENT_DELIVERIES.labels(item.subscriber, "disabled" if status == 410 else outcome_label).inc()
        if not await self.store.finish(item, outcome):
            log.info("event %s to %s: the lease ran out before the outcome was stored", item.event_id, item.subscriber)
        if outcome.state == DEAD:
            log.warning("event %s to %s is dead after %d attempt(s): %s", item.event_id, item.subscriber, attempt, outcome.error)
        await self._record(item, attempt, outcome, started)
        self.attempts += 1
        async with self._progress:
            self._progress.notify_all()

    async def wait_for_attempts(self, count: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.attempts >= count)

    async def _post(self, item: Claimed, sub: SubscriberConfig) -> tuple[int | None, str | None, str | None]:
        """The status, an error description (no status: no answer), and any Retry-After."""
        body = body_of(item.payload)
        # The signature's timestamp is the real time of sending: receivers check it against theirs.
        sent = datetime.now(timezone.utc)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": item.event_id,
            "webhook-timestamp": str(int(sent.timestamp())),
            "webhook-signature": self._signers[item.subscriber].sign(item.event_id, sent, body),
        }
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.post(
                sub.url, data=body, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=sub.timeout_seconds)
            ) as resp:
                await resp.read()
                return resp.status, None, resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            return None, f"no answer within {sub.timeout_seconds:g}s", None
        except aiohttp.ClientError as exc:
            return None, f"could not reach the subscriber ({type(exc).__name__})", None

    async def _record(self, item: Claimed, attempt: int, outcome: Outcome, started: float) -> None:
        if item.integration_id is None:
            return
        await self.writer.record({
            "integration_id": item.integration_id,
            "kind": "delivery",
            "action": "deliver_event",
            "status": "SUCCESS" if outcome.state == DELIVERED else "FAILED",
            "request_data": {"event": item.event_id, "type": item.event_type, "subscriber": item.subscriber, "attempt": attempt},
            "response_data": {"status": outcome.status, "state": outcome.state},
            "error_message": outcome.error,
            "duration_ms": int((time.perf_counter() - started) * 1000),
            "created_at": utcnow(),
        })

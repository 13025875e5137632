"""What an ``Idempotency-Key`` means (the IETF httpapi idempotency-key draft; docs/api.md).

The first request with a key, per user, claims it and runs; its answer is stored for
``idempotency.ttl_seconds`` and replayed to any retry that repeats the request exactly
(method, path and query, body). The same key on a different request is refused with 422,
and a retry while the first is still running with 409. An answer that says nothing was
done and a retry may succeed (429, 503) is not kept: the key is released instead.

Expired answers are deleted by a loop each process runs (``prune_interval_seconds``);
until then an expired row is simply taken over by the next request with its key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import HubError
from ..store.idempotency import Claim, Found, IdempotencyStore, Request
from ..infra.periodic import Periodic

log = logging.getLogger("hub.idempotency")

HEADER = "Idempotency-Key"
# Answers a retry should not get back: nothing was done, and trying again may succeed.
RELEASED_STATUSES = frozenset({429, 503})


class KeyReused(HubError):
    status, code = 422, "idempotency_key_reused"


class KeyInUse(HubError):
    status, code = 409, "idempotency_key_in_use"


class AnswerUnreadable(HubError):
    status, code = 409, "idempotency_answer_unreadable"


@dataclass(frozen=True)
class Replay:
    status: int
    headers: dict[str, str]
    body: bytes


class Idempotency:
    def __init__(self, store: IdempotencyStore, *, prune_interval: float) -> None:
        self.store = store
        self.prune_interval = prune_interval
        self._pruner = Periodic("pruning expired idempotent answers", self._prune, prune_interval)

    async def begin(self, req: Request) -> Claim | Replay:
        """Claim the key for ``req`` (the caller then runs it and calls :meth:`end`), or
        the stored answer to replay; :class:`KeyReused` or :class:`KeyInUse` otherwise."""
        outcome = await self.store.claim(req)
        if isinstance(outcome, Claim):
            return outcome
        return _judge(req, outcome)

    async def end(self, claim: Claim, status: int, headers: dict[str, str], body: bytes | None) -> None:
        """Store the claimed request's answer, or release the key when a retry should run."""
        try:
            if status in RELEASED_STATUSES or body is None or not _is_text(body):
                await self.store.release(claim)
            else:
                await self.store.finish(claim, status, headers, body)
        except Exception as exc:
            # The answer still goes out. The claim stays until its lease ends; a retry
            # meanwhile is told the request is in progress, and runs once it has ended.
            log.error("could not store the answer of an Idempotency-Key request (%s); its claim lapses after the lease",
                      type(exc).__name__)

    # --- pruning ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._pruner.start()

    async def stop(self) -> None:
        await self._pruner.stop()

    @property
    def prune_passes(self) -> int:
        """Passes of the prune loop so far (tests wait on it rather than on the clock)."""
        return self._pruner.passes

    async def wait_for_prune(self, passes: int) -> None:
        """Until the prune loop has made ``passes`` passes in all."""
        await self._pruner.wait_for_passes(passes)

    async def _prune(self) -> None:
        removed = await self.store.prune()
        if removed:
            log.info("pruned %d expired idempotent answer(s)", removed)


def _judge(req: Request, found: Found) -> Replay:
    if (found.method, found.target, found.fingerprint) != (req.method, req.target, req.fingerprint):
        same_target = (found.method, found.target) == (req.method, req.target)
        what = "a different body" if same_target else f"{found.method} {found.target}"
        raise KeyReused(
            f"{HEADER}: this key was first used with {what}; a key stands for one request: send a new key for a new request",
            details={"field": HEADER},
        )
    if found.status is None:
        raise KeyInUse(
            f"{HEADER}: the first request with this key is still being processed; retry after it has answered",
            details={"field": HEADER},
        )
    if found.body is None:
        raise AnswerUnreadable(
            f"{HEADER}: the answer stored for this key can no longer be decrypted (its encryption key was removed); "
            "check the outcome, and send a new key to try again",
            details={"field": HEADER},
        )
    return Replay(found.status, found.headers, found.body)


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

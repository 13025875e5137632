"""Claims and stored answers for ``Idempotency-Key`` requests (table ``idempotency_keys``).

A claim is one ``INSERT ... ON CONFLICT DO NOTHING`` on the (user, key) unique
constraint, so of any number of requests with one key, in any number of processes,
exactly one inserts; the others read the row that won. Taking over a row (its answer has
expired, or its claim was abandoned) is a conditional ``UPDATE`` on the row as it was
read, so that too has one winner. The store only reports what it found; what a finding
means for the request is the core's business (``hub.core.idempotency``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..infra.crypto import DecryptionFailed, KeyRing
from .models import IdempotencyKey, utcnow


@dataclass(frozen=True)
class Request:
    """What identifies a request for its key: who sent it, the key, and what a retry must
    repeat exactly (method, path and query, and the body's SHA-256)."""

    user_id: str
    key: str
    method: str
    target: str
    fingerprint: str

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Claim:
    """This request owns the key: it runs, then :meth:`IdempotencyStore.finish` stores its
    answer (or :meth:`~IdempotencyStore.release` lets a retry run)."""

    row_id: int
    claimed_at: datetime
    context: str


@dataclass(frozen=True)
class Found:
    """Another request holds the key: its method, target and fingerprint, and its answer
    (``status`` None while it is still running)."""

    method: str
    target: str
    fingerprint: str
    status: int | None
    headers: dict[str, str]
    body: bytes | None
    claimed_at: datetime


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, *, ttl_seconds: int, lease_seconds: int) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease = timedelta(seconds=lease_seconds)
        # What "now" is for claiming, expiring and pruning; tests move it.
        self.clock = utcnow

    async def claim(self, req: Request) -> Claim | Found:
        """Claim the key for ``req``, or report the request that holds it."""
        key_hash = req.key_hash
        context = answer_context(req.user_id, key_hash)
        for _ in range(3):  # a takeover lost to another request reads the row again
            now = self.clock()
            values = {"method": req.method, "target": req.target, "fingerprint": req.fingerprint, "claimed_at": now,
                      "expires_at": now + self.ttl, "status": None, "response_headers": None, "response_body": None}
            async with self.sessions.begin() as session:
                table = IdempotencyKey.__table__
                dialect = session.get_bind().dialect.name
                insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
                inserted = await session.execute(
                    insert.values(user_id=req.user_id, key_hash=key_hash, **values)
                    .on_conflict_do_nothing(index_elements=["user_id", "key_hash"])
                    .returning(table.c.id)
                )
                row_id = inserted.scalar_one_or_none()
                if row_id is not None:
                    return Claim(row_id, now, context)
                row = await session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == req.user_id, IdempotencyKey.key_hash == key_hash))
                if row is None:  # deleted between the two statements: try again
                    continue
                # Past its time, the row is as good as absent; a claim that has run for
                # longer than any request may was abandoned by a process that died.
                stale = row.expires_at <= now or (row.status is None and row.claimed_at + self.lease <= now)
                if not stale:
                    return self._found(row, context)
                taken = await session.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.id == row.id, IdempotencyKey.claimed_at == row.claimed_at)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount == 1:
                    return Claim(row.id, now, context)
        raise RuntimeError("could not claim an idempotency key after three attempts")

    def _found(self, row: IdempotencyKey, context: str) -> Found:
        body: bytes | None = None
        if row.status is not None and row.response_body is not None:
            try:
                body = self.keyring.decrypt(row.response_body, context).encode("utf-8")
            except DecryptionFailed:
                body = None  # its key has left the key ring: the core answers without it
        return Found(row.method, row.target, row.fingerprint, row.status, dict(row.response_headers or {}), body, row.claimed_at)

    async def finish(self, claim: Claim, status: int, headers: dict[str, str], body: bytes) -> None:
        """Store the claimed request's answer (unless another request took the key over)."""
        stored = self.keyring.encrypt(body.decode("utf-8"), claim.context)
        async with self.sessions.begin() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim.row_id, IdempotencyKey.claimed_at == claim.claimed_at)
                .values(status=status, response_headers=headers, response_body=stored)
                .execution_options(synchronize_session=False)
            )

    async def release(self, claim: Claim) -> None:
        """Give the key back: the request did nothing a retry could repeat."""
        async with self.sessions.begin() as session:
            await session.execute(
                delete(IdempotencyKey)
                .where(IdempotencyKey.id == claim.row_id, IdempotencyKey.claimed_at == claim.claimed_at)
                .execution_options(synchronize_session=False)
            )

    async def prune(self, *, batch_size: int = 1000) -> int:
        """Delete the answers past their time, in batches; how many went."""
        removed = 0
        while True:
            async with self.sessions.begin() as session:
                expired = select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= self.clock()).limit(batch_size)
                if session.get_bind().dialect.name == "postgresql":
                    # Rows another process is pruning (or taking over) are skipped, not waited for.
                    expired = expired.with_for_update(skip_locked=True)
                result = await session.execute(
                    delete(IdempotencyKey).where(IdempotencyKey.id.in_(expired)).execution_options(synchronize_session=False)
                )
            count = int(result.rowcount or 0)
            removed += count
            if count < batch_size:
                return removed


def answer_context(user_id: str, key_hash: str) -> str:
    """The associated data of a stored answer: it decrypts in its own row only."""
    return "\x1f".join(("idempotency", user_id, key_hash, "response_body"))


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


"""Key rotation: re-encrypt every stored secret under the key ring's primary key.

Works in batches, each its own transaction, and only touches rows whose ciphertext names
another key, so an interrupted run simply continues where it stopped. A row changed by
a request while a batch was being prepared is skipped by the version check and picked up
by the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..infra.crypto import DecryptionFailed, KeyRing, token_context
from .idempotency import answer_context
from .models import IdempotencyKey, Integration, OAuthState

log = logging.getLogger("hub.keys")


@dataclass
class RotationReport:
    rotated: int = 0
    unreadable: int = 0
    states_dropped: int = 0
    answers_rotated: int = 0
    answers_dropped: int = 0


def _not_primary(column: Any, primary: str) -> Any:
    # An exact prefix comparison: LIKE would read '_' in a key id as a wildcard and, on
    # SQLite, ignore case - either could make a row look rotated when it is not.
    prefix = f"v1.{primary}."
    return column.is_not(None) & (func.substr(column, 1, len(prefix)) != prefix)


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    report = RotationReport()
    skip: set[int] = set()  # rows that cannot be decrypted: reported, never retried forever
    batches = 0
    while max_batches is None or batches < max_batches:
        async with sessions() as session:
            stmt = (
                select(Integration)
                .where(or_(_not_primary(Integration.access_token, keyring.primary), _not_primary(Integration.refresh_token, keyring.primary)))
                .order_by(Integration.id)
                .limit(batch_size)
            )
            if skip:
                stmt = stmt.where(Integration.id.not_in(skip))
            rows = list((await session.scalars(stmt)).all())
        if not rows:
            break
        async with sessions.begin() as session:
            for row in rows:
                values = {}
                try:
                    for field in ("access_token", "refresh_token"):
                        stored = getattr(row, field)
                        if keyring.needs_rotation(stored):
                            ctx = token_context(row.user_id, row.provider, field)
                            values[field] = keyring.encrypt(keyring.decrypt(stored, ctx), ctx)
                except DecryptionFailed:
                    skip.add(row.id)
                    report.unreadable += 1
                    log.warning("integration %s: a stored token cannot be decrypted; left as it is", row.id)
                    continue
                result = await session.execute(
                    update(Integration)
                    .where(Integration.id == row.id, Integration.version == row.version)
                    .values(**values, version=row.version + 1)
                )
                report.rotated += int(result.rowcount or 0)
        batches += 1
        if progress:
            progress(report)
    # A pending OAuth state lives ten minutes: re-encrypting its verifier is cheaper than
    # making a user start over, but one that fails to decrypt is simply removed.
    async with sessions.begin() as session:
        states = (await session.scalars(select(OAuthState).where(_not_primary(OAuthState.code_verifier, keyring.primary)))).all()
        for st in states:
            from .states import state_context

            try:
                ctx = state_context(st.state_hash)
                st.code_verifier = keyring.encrypt(keyring.decrypt(st.code_verifier or "", ctx), ctx)
            except DecryptionFailed:
                await session.delete(st)
                report.states_dropped += 1
    await _rotate_answers(sessions, keyring, report, batch_size)
    return report


async def _rotate_answers(sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, report: RotationReport, batch_size: int) -> None:
    """Stored idempotent answers live a day: re-encrypt them so a retry still gets its
    answer once the old key is gone; one that fails to decrypt is removed (a retry then
    runs the request again rather than being refused)."""
    after = 0
    while True:
        async with sessions.begin() as session:
            rows = (await session.scalars(
                select(IdempotencyKey)
                .where(_not_primary(IdempotencyKey.response_body, keyring.primary), IdempotencyKey.id > after)
                .order_by(IdempotencyKey.id)
                .limit(batch_size)
            )).all()
            for row in rows:
                ctx = answer_context(row.user_id, row.key_hash)
                try:
                    row.response_body = keyring.encrypt(keyring.decrypt(row.response_body or "", ctx), ctx)
                    report.answers_rotated += 1
                except DecryptionFailed:
                    await session.delete(row)
                    report.answers_dropped += 1
        if len(rows) < batch_size:
            return
        after = rows[-1].id

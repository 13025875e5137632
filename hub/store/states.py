"""Pending OAuth states: stored hashed, bound to a user and a provider, used once.

The state itself travels through the browser; only its SHA-256 is kept, so a copy of
the table cannot be replayed. The PKCE verifier is encrypted with associated data naming
the state's hash, so it cannot be moved to another state's row.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from typing import Any

from sqlalchemy import Select, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..errors import BadRequest
from ..infra.crypto import DecryptionFailed, KeyRing
from .models import OAuthState, utcnow

STATE_BYTES = 32


@dataclass(frozen=True)
class NewState:
    state: str
    expires_at: datetime


class StateStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, *, ttl_seconds: int, max_per_user: int) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.ttl_seconds = ttl_seconds
        self.max_per_user = max_per_user
        # What "now" is for issuing, expiring and purging states; tests move it.
        self.clock = utcnow

    async def issue(
        self, user_id: str, provider: str, *, verifier: str | None, return_url: str | None, session_id: str | None = None, cookie_hash: str | None = None
    ) -> NewState:
        state = secrets.token_urlsafe(STATE_BYTES)
        state_hash = hash_state(state)
        now = self.clock()
        expires = now + timedelta(seconds=self.ttl_seconds)
        async with self.sessions.begin() as session:
            await _serialise_user_states(session, user_id)
            # Housekeeping on the side: a state past its life is useless from that moment.
            await session.execute(
                delete(OAuthState)
                .where(OAuthState.id.in_(_unlocked(select(OAuthState.id).where(OAuthState.expires_at <= now))))
                .execution_options(synchronize_session=False)
            )
            session.add(
                OAuthState(
                    state_hash=state_hash,
                    user_id=user_id,
                    provider=provider,
                    code_verifier=self.keyring.encrypt(verifier, state_context(state_hash)) if verifier else None,
                    return_url=return_url,
                    session_id=session_id,
                    cookie_hash=cookie_hash,
                    created_at=now,
                    expires_at=expires,
                )
            )
            await session.flush()
            await self._trim(session, user_id)
        return NewState(state, expires)

    async def _trim(self, session: AsyncSession, user_id: str) -> None:
        """Keep only the user's newest ``max_per_user`` states, used or not.

        Dropping the oldest rather than refusing the connect means a user whose earlier
        tabs were abandoned (or a client that loops) is never locked out: the newest
        connect always works, and a dropped one is answered ``invalid_state``."""
        newest = select(OAuthState.id).where(OAuthState.user_id == user_id).order_by(OAuthState.id.desc()).limit(self.max_per_user)
        older = select(OAuthState.id).where(OAuthState.user_id == user_id, OAuthState.id.not_in(newest))
        await session.execute(delete(OAuthState).where(OAuthState.id.in_(_unlocked(older))).execution_options(synchronize_session=False))

    async def peek(self, state: str | None) -> OAuthState | None:
        """The state's row as it is, used or not (to check what it is bound to first)."""
        if not state:
            return None
        async with self.sessions() as session:
            return await session.scalar(select(OAuthState).where(OAuthState.state_hash == hash_state(state)))

    async def consume(self, provider: str, state: str | None, *, consume: bool = True) -> OAuthState:
        """Take a state for use: it must exist, be this provider's, unused and unexpired.

        With ``consume=False`` the checks run but the state stays usable (the token flow's
        page load, which is followed by the POST that really uses it)."""
        if not state:
            raise BadRequest("state: missing from the callback", details={"field": "state"}, code="invalid_state")
        state_hash = hash_state(state)
        now = self.clock()
        async with self.sessions.begin() as session:
            spent = False
            if consume:
                # One conditional UPDATE, so exactly one of any number of concurrent callers
                # wins: SQLite ignores SELECT ... FOR UPDATE, and a read-then-write let every
                # racing request through.
                result = await session.execute(
                    update(OAuthState)
                    .where(
                        OAuthState.state_hash == state_hash,
                        OAuthState.provider == provider,
                        OAuthState.consumed_at.is_(None),
                        OAuthState.expires_at > now,
                    )
                    .values(consumed_at=now)
                    .execution_options(synchronize_session=False)
                )
                spent = result.rowcount == 1
            row = await session.scalar(select(OAuthState).where(OAuthState.state_hash == state_hash))
        problem = _state_problem(row, provider, now)
        if row is not None and (spent or (not consume and problem is None)):
            return row
        # A row with nothing wrong that the UPDATE did not match was spent by another
        # request in between.
        raise problem or _state_replayed()

    def verifier(self, row: OAuthState) -> str | None:
        """The state's PKCE verifier in clear, if it has one."""
        if not row.code_verifier:
            return None
        try:
            return self.keyring.decrypt(row.code_verifier, state_context(row.state_hash))
        except DecryptionFailed:
            raise BadRequest("state: its stored verifier cannot be read; start again with connect", code="invalid_state") from None


def _state_replayed() -> BadRequest:
    return BadRequest(
        "state: already used; a state is good for one callback only (start again with connect)",
        code="state_replayed",
        details={"field": "state"},
    )


def _state_problem(row: OAuthState | None, provider: str, now: datetime) -> BadRequest | None:
    """Why a state cannot be used (``row`` as it is now, or None if there is none); None
    when it can."""
    if row is None:
        return BadRequest(
            "state: unknown; it was never issued by this hub (forged or mistyped), or newer connects replaced it",
            code="invalid_state",
            details={"field": "state"},
        )
    if row.provider != provider:
        return BadRequest(f"state: it was issued for {row.provider}, not {provider}", code="invalid_state", details={"field": "state"})
    if row.consumed_at is not None:
        return _state_replayed()
    if row.expires_at <= now:
        return BadRequest("state: expired; start again with connect", code="state_expired", details={"field": "state"})
    return None


# The two-key form of PostgreSQL's advisory locks, which never collides with the one-key
# lock that serialises migrations; the second key is the user id's hash.
_STATE_LOCK_SPACE = 0x48554202


async def _serialise_user_states(session: AsyncSession, user_id: str) -> None:
    """On PostgreSQL, one connect per user at a time, until the transaction ends, so
    concurrent connects cannot each keep the cap and leave more than it between them.
    SQLite serialises writers anyway."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:user))"), {"space": _STATE_LOCK_SPACE, "user": user_id})


def _unlocked(ids: Select[Any]) -> Select[Any]:
    """Rows another transaction is already deleting are skipped, not waited for: two
    connects purging at once must never wait on each other (or deadlock)."""
    return ids.with_for_update(skip_locked=True)


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def state_context(state_hash: str) -> str:
    return "\x1f".join(("oauth_state", state_hash, "code_verifier"))

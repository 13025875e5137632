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

from sqlalchemy import delete, select
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
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, *, ttl_seconds: int) -> None:
        self.sessions = sessions
        self.keyring = keyring
        self.ttl_seconds = ttl_seconds

    async def issue(self, user_id: str, provider: str, *, verifier: str | None, return_url: str | None) -> NewState:
        state = secrets.token_urlsafe(STATE_BYTES)
        state_hash = hash_state(state)
        now = utcnow()
        expires = now + timedelta(seconds=self.ttl_seconds)
        async with self.sessions.begin() as session:
            # Housekeeping on the side: states past their life are useless to keep.
            await session.execute(delete(OAuthState).where(OAuthState.expires_at < now - timedelta(hours=1)))
            session.add(
                OAuthState(
                    state_hash=state_hash,
                    user_id=user_id,
                    provider=provider,
                    code_verifier=self.keyring.encrypt(verifier, state_context(state_hash)) if verifier else None,
                    return_url=return_url,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return NewState(state, expires)

    async def consume(self, provider: str, state: str | None, *, consume: bool = True) -> OAuthState:
        """Take a state for use: it must exist, be this provider's, unused and unexpired.

        With ``consume=False`` the checks run but the state stays usable (the token flow's
        page load, which is followed by the POST that really uses it)."""
        if not state:
            raise BadRequest("state: missing from the callback", details={"field": "state"}, code="invalid_state")
        state_hash = hash_state(state)
        now = utcnow()
        async with self.sessions.begin() as session:
            row = await session.scalar(select(OAuthState).where(OAuthState.state_hash == state_hash).with_for_update())
            if row is None:
                raise BadRequest("state: unknown; it was never issued by this hub (forged or mistyped)", code="invalid_state", details={"field": "state"})
            if row.provider != provider:
                raise BadRequest(f"state: it was issued for {row.provider}, not {provider}", code="invalid_state", details={"field": "state"})
            if row.consumed_at is not None:
                raise BadRequest("state: already used; a state is good for one callback only (start again with connect)", code="state_replayed", details={"field": "state"})
            if row.expires_at <= now:
                raise BadRequest("state: expired; start again with connect", code="state_expired", details={"field": "state"})
            if consume:
                row.consumed_at = now
        return row

    def verifier(self, row: OAuthState) -> str | None:
        """The state's PKCE verifier in clear, if it has one."""
        if not row.code_verifier:
            return None
        try:
            return self.keyring.decrypt(row.code_verifier, state_context(row.state_hash))
        except DecryptionFailed:
            raise BadRequest("state: its stored verifier cannot be read; start again with connect", code="invalid_state") from None


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def state_context(state_hash: str) -> str:
    return "\x1f".join(("oauth_state", state_hash, "code_verifier"))

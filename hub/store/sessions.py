"""Connect sessions: stored by hashes only, opened once, capped per user.

The link's secret and the cookie its page sets travel through the browser; only their
SHA-256 is kept, so a copy of the table opens nothing. Every change of status is one
conditional UPDATE, so of two racing requests exactly one wins.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .models import ConnectSession, utcnow

TOKEN_BYTES = 32
OPEN = ("pending", "opened")
# Finished and expired sessions stay readable (GET shows why a link failed) this long.
KEPT_AFTER_EXPIRY = timedelta(days=1)
# PostgreSQL advisory lock space for "one session creation per user at a time".
_LOCK_SPACE = 0x48554205


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class ConnectSessionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_seconds: int, max_open_per_user: int) -> None:
        self.sessions = sessions
        self.ttl_seconds = ttl_seconds
        self.max_open_per_user = max_open_per_user
        # What "now" is for creating, opening and expiring sessions; tests move it.
        self.clock = utcnow

    async def create(self, user_id: str, providers: list[str], return_url: str | None, opener_origin: str | None) -> tuple[ConnectSession, str]:
        """A new session and the secret of its link (returned once, stored hashed)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        row = ConnectSession(
            id="cs_" + secrets.token_hex(12),
            user_id=user_id,
            token_hash=secret_hash(token),
            providers=providers,
            return_url=return_url,
            opener_origin=opener_origin,
            status="pending",
            created_at=now,
            expires_at=now + timedelta(seconds=self.ttl_seconds),
        )
        async with self.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Concurrent creations by one user must not each keep the cap.
                await session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:user))"), {"space": _LOCK_SPACE, "user": user_id})
            await session.execute(
                delete(ConnectSession).where(ConnectSession.user_id == user_id, ConnectSession.expires_at <= now - KEPT_AFTER_EXPIRY)
            )
            session.add(row)
            await session.flush()
            await self._cap(session, user_id, now)
        return row, token

    async def prune(self) -> int:
        """Delete every user's sessions more than :data:`KEPT_AFTER_EXPIRY` past expiry."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(ConnectSession).where(ConnectSession.expires_at <= self.clock() - KEPT_AFTER_EXPIRY).execution_options(synchronize_session=False)
            )
        return int(result.rowcount or 0)

    async def _cap(self, session: AsyncSession, user_id: str, now: datetime) -> None:
        """Keep the user's newest ``max_open_per_user`` open sessions; older open ones are
        cancelled (as states are trimmed: the newest request always works)."""
        still_open = (ConnectSession.user_id == user_id, ConnectSession.status.in_(OPEN), ConnectSession.expires_at > now)
        newest = select(ConnectSession.id).where(*still_open).order_by(ConnectSession.created_at.desc(), ConnectSession.id.desc())
        keep = list((await session.scalars(newest.limit(self.max_open_per_user))).all())
        await session.execute(
            update(ConnectSession)
            .where(*still_open, ConnectSession.id.not_in(keep))
            .values(status="cancelled", finished_at=now)
            .execution_options(synchronize_session=False)
        )

    async def get(self, session_id: str) -> ConnectSession | None:
        async with self.sessions() as session:
            return await session.get(ConnectSession, session_id)

    async def by_token(self, token: str) -> ConnectSession | None:
        async with self.sessions() as session:
            return await session.scalar(select(ConnectSession).where(ConnectSession.token_hash == secret_hash(token)))

    async def open(self, token: str, cookie: str) -> bool:
        """Mark the link's session opened and bound to ``cookie``; False if it was not
        pending and unexpired (the caller reads the row to say why)."""
        now = self.clock()
        return await self._move(
            (ConnectSession.token_hash == secret_hash(token), ConnectSession.status == "pending", ConnectSession.expires_at > now),
            status="opened", opened_at=now, cookie_hash=secret_hash(cookie),
        )

    async def cancel(self, session_id: str) -> bool:
        return await self._move((ConnectSession.id == session_id, ConnectSession.status.in_(OPEN)), status="cancelled", finished_at=self.clock())

    async def complete(self, session_id: str, provider: str) -> bool:
        return await self._move(
            (ConnectSession.id == session_id, ConnectSession.status == "opened"),
            status="completed", finished_at=self.clock(), connected_provider=provider,
        )

    async def _move(self, where: tuple[ColumnElement[bool], ...], **values: object) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(update(ConnectSession).where(*where).values(**values).execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)

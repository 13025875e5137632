"""The ``integrations`` table: a user's integration found, locked for a change, and its
token columns encrypted on the way in and decrypted on the way out.

What a change means (which status may follow which) is the core's business; this module
only offers the row, under a row lock where a change needs one, and keeps the layout of
the ``metadata`` column: the account fields beside two internal keys, ``token`` (the
token response's non-secret fields) and ``state`` (a plugin's sync cursors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..errors import StoredTokenUnreadable
from ..infra.crypto import KeyRing, token_context
from ..redact import redact
from ..types import TokenSet
from .models import REFRESH_DUE, Integration
from .rowread import IntegrationReader
from .watchers import StatusWatchers

INTERNAL_META = ("token", "state")


class IntegrationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], reader: IntegrationReader, keyring: KeyRing) -> None:
        self.sessions = sessions
        self.reader = reader
        self.keyring = keyring
        self.watchers = StatusWatchers()

    async def find(self, user_id: str, provider: str) -> Integration | None:
        """The row of a user's integration with a provider, read as cheaply as the backend allows."""

        async def by_session() -> Integration | None:
            async with self.sessions() as session:
                return await session.scalar(select(Integration).where(Integration.user_id == user_id, Integration.provider == provider))

        return await self.reader.by_owner(user_id, provider, by_session)

    async def get(self, integration_id: int) -> Integration | None:
        async def by_session() -> Integration | None:
            async with self.sessions() as session:
                return await session.get(Integration, integration_id)

        return await self.reader.by_id(integration_id, by_session)

    @asynccontextmanager
    async def locked(self, integration_id: int) -> AsyncIterator[tuple[AsyncSession, Integration | None]]:
        """A transaction holding the row's lock; commits when the block ends without error."""
        async with self.sessions() as session:
            async with session.begin():
                row = await session.get(Integration, integration_id, with_for_update=True)
                before = _statuses(session)
                yield session, row
                changed = _status_changes(session, before)
        self.watchers.changed(changed)

    @asynccontextmanager
    async def locked_owner(self, user_id: str, provider: str) -> AsyncIterator[tuple[AsyncSession, Integration | None]]:
        async with self.sessions() as session:
            async with session.begin():
                row = await session.scalar(
                    select(Integration).where(Integration.user_id == user_id, Integration.provider == provider).with_for_update()
                )
                before = _statuses(session)
                yield session, row
                changed = _status_changes(session, before)
        self.watchers.changed(changed)

    async def claim_lease(self, row: Integration, until: datetime) -> bool:
        """Compare-and-swap on ``version``: true when this process now holds the row's
        refresh lease, false when another change got there first."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Integration)
                .where(Integration.id == row.id, Integration.version == row.version)
                .values(refresh_lease_until=until, version=row.version + 1)
            )
        if result.rowcount != 1:
            return False
        row.version += 1
        row.refresh_lease_until = until
        return True

    async def expiring(self, before: datetime, now: datetime, *, limit: int) -> list[Integration]:
        """ACTIVE rows holding a refresh token whose access token expires before ``before``
        and whose refresh lease is free at ``now``, soonest first (at most ``limit``)."""
        async with self.sessions() as session:
            rows = await session.scalars(expiring_statement(before, now, limit))
            return list(rows.all())

    async def due_renewals(self, before: datetime, now: datetime, *, statuses: tuple[str, ...], limit: int) -> list[Integration]:
        """Rows in ``statuses`` whose plugin asked for ``hub_renew`` by ``before`` and whose
        renewal lease is free at ``now``, soonest first (at most ``limit``)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Integration)
                .where(
                    Integration.status.in_(statuses),
                    Integration.renew_by < before,
                    or_(Integration.renew_lease_until.is_(None), Integration.renew_lease_until <= now),
                )
                .order_by(Integration.renew_by)
                .limit(limit)
            )
            return list(rows.all())

    async def claim_renewal(self, integration_id: int, now: datetime, until: datetime) -> bool:
        """True when this process now holds the row's renewal lease (until ``until``); false
        when another holds it. One conditional UPDATE: of two processes, one wins."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Integration)
                .where(Integration.id == integration_id,
                       or_(Integration.renew_lease_until.is_(None), Integration.renew_lease_until <= now))
                .values(renew_lease_until=until)
            )
        return bool(result.rowcount == 1)

    async def of_user(self, user_id: str, *, exclude_status: str) -> list[Integration]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Integration)
                .where(Integration.user_id == user_id, Integration.status != exclude_status)
                .order_by(Integration.provider)
            )
            return list(rows.all())

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Integration.provider, Integration.status, func.count()).group_by(Integration.provider, Integration.status)
            )
            return {(provider, status): int(n) for provider, status, n in rows.all()}

    def decrypt(self, row: Integration) -> TokenSet:
        return decrypt_token(self.keyring, row)

    def encrypt_into(self, row: Integration, token: TokenSet) -> None:
        encrypt_into(self.keyring, row, token)


def expiring_statement(before: datetime, now: datetime, limit: int) -> Select[tuple[Integration]]:
    """The background refresh sweep's query. Its first condition is written exactly as the
    partial index ``ix_integrations_refresh_due`` is (constants, not parameters), so both
    databases walk that index by expiry and stop after about ``limit`` rows, however many
    integrations there are (tests/test_refresh_sweep_plan.py)."""
    return (
        select(Integration)
        .where(
            text(REFRESH_DUE),
            Integration.token_expiry < before,
            or_(Integration.refresh_lease_until.is_(None), Integration.refresh_lease_until <= now),
        )
        .order_by(Integration.token_expiry)
        .limit(limit)
    )


def _statuses(session: AsyncSession) -> dict[int, str | None]:
    """The status of each integration the session holds, by object identity."""
    return {id(o): o.status for o in session.identity_map.values() if isinstance(o, Integration)}


def _status_changes(session: AsyncSession, before: dict[int, str | None]) -> list[str]:
    """The owners of the rows whose status the block changed (a row it added counts)."""
    held = [o for o in (*session.identity_map.values(), *session.new) if isinstance(o, Integration)]
    return [o.user_id for o in held if id(o) not in before or before[id(o)] != o.status]


def lease_until(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def decrypt_token(keyring: KeyRing, row: Integration) -> TokenSet:
    """The row's token set in clear. Raises :class:`~hub.infra.crypto.DecryptionFailed` on tampering."""
    if row.access_token is None:
        raise StoredTokenUnreadable(f"the {row.provider} integration holds no credentials; connect again")
    access = keyring.decrypt(row.access_token, token_context(row.user_id, row.provider, "access_token"))
    refresh = None
    if row.refresh_token:
        refresh = keyring.decrypt(row.refresh_token, token_context(row.user_id, row.provider, "refresh_token"))
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=row.token_expiry,
        scopes=tuple(row.scopes or ()),
        raw=dict((row.meta or {}).get("token", {})),
    )


def encrypt_into(keyring: KeyRing, row: Integration, token: TokenSet) -> None:
    row.access_token = keyring.encrypt(token.access_token, token_context(row.user_id, row.provider, "access_token"))
    row.refresh_token = (
        keyring.encrypt(token.refresh_token, token_context(row.user_id, row.provider, "refresh_token")) if token.refresh_token else None
    )
    row.token_expiry = token.expires_at
    row.scopes = list(token.scopes)


def wipe_credentials(row: Integration) -> None:
    row.access_token = row.refresh_token = None
    row.token_expiry = None
    row.refresh_lease_until = None


def account_of(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The account part of an integration's metadata (what views show and plugins get)."""
    return {k: v for k, v in (meta or {}).items() if k not in INTERNAL_META}


def internal_of(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (meta or {}).items() if k in INTERNAL_META}


def public_token_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What of a token response may be kept beside the account: everything but secrets."""
    return redact(dict(raw))

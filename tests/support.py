"""Test support shared by fixtures and tests."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import hub_google_calendar
import hub_slack
import hub_trello
from sqlalchemy import Select, func, select, update

from hub.infra.auth import issue_token
from hub.infra.secrets import Secrets
from hub.infra.config import HubConfig
from hub.registry import Registry
from hub.core.hub import Hub
from hub.store.models import Base, Integration, IntegrationLog, OAuthState, utcnow
from hub.store.states import hash_state
from hub.types import TokenSet
from hub_slack.fake import FakeSlack

JWT_SECRET = "test-secret-" + "x" * 40
PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")
# Generous: a healthy writer catches up in milliseconds; this only stops a wedged one hanging the run.
ACTIVITY_DEADLINE = 30.0


def slack_section(fake: FakeSlack) -> dict[str, Any]:
    # groups:read too, so tests can list private channels
    return {**fake.hub_settings(fake.base_url), "scopes": ["channels:read", "groups:read", "chat:write", "users:read"]}


def trello_section(fake: Any) -> dict[str, Any]:
    return {**fake.hub_settings(fake.base_url), "app_name": "Hub Tests"}


def google_section(fake: Any) -> dict[str, Any]:
    return fake.hub_settings(fake.base_url)


def make_registry(**extra: object) -> Registry:
    registry = Registry()
    registry.add("slack", hub_slack)
    registry.add("trello", hub_trello)
    registry.add("google_calendar", hub_google_calendar)
    for name, plugin in extra.items():
        registry.add(name, plugin)
    return registry


def build_hub(config: HubConfig, registry: Registry | None = None) -> Hub:
    return Hub(config, registry or make_registry(), Secrets(JWT_SECRET, config.security.encryption_keys or ""))


def auth(user: str = "alice", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, user, **kw)}"}


class Rows:
    """The database rows a test needs, read and set through named helpers over a hub, so
    tests say what they look at rather than how the store keeps it. Reads come back
    ordered by id, as detached rows whose columns stay readable."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def integration(self, user: str = "alice", provider: str = "slack") -> Integration | None:
        """The user's integration with the provider, or None."""
        found = await self._all(select(Integration).where(Integration.user_id == user, Integration.provider == provider))
        return found[0] if found else None

    async def integrations(self, user: str | None = None) -> list[Integration]:
        """Every integration row, or the user's."""
        query = select(Integration).order_by(Integration.id)
        return await self._all(query if user is None else query.where(Integration.user_id == user))

    async def activity(self, *, user: str | None = None, provider: str | None = None, **columns: Any) -> list[IntegrationLog]:
        """Activity rows once the writer has caught up, filtered by owner and by columns (action, kind, status…)."""
        await self.settle()
        query = select(IntegrationLog).order_by(IntegrationLog.id).filter_by(**columns)
        if user is not None or provider is not None:
            owners = select(Integration.id)
            owners = owners if user is None else owners.where(Integration.user_id == user)
            owners = owners if provider is None else owners.where(Integration.provider == provider)
            query = query.where(IntegrationLog.integration_id.in_(owners))
        return await self._all(query)

    async def settle(self) -> None:
        """Wait until the activity writer has written every row queued so far."""
        assert await self.hub.activity.flush(timeout=ACTIVITY_DEADLINE), f"activity rows still unwritten after {ACTIVITY_DEADLINE}s"

    async def states(self, user: str | None = None, *, state: str | None = None) -> list[OAuthState]:
        """OAuth state rows (pending or spent), or the user's, or the one issued as ``state`` (stored hashed)."""
        query = select(OAuthState).order_by(OAuthState.id)
        query = query if user is None else query.where(OAuthState.user_id == user)
        return await self._all(query if state is None else query.where(OAuthState.state_hash == hash_state(state)))

    async def count(self, model: type[Base]) -> int:
        """How many rows the model's table holds."""
        async with self.hub.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    async def token(self, user: str = "alice", provider: str = "slack") -> TokenSet:
        """The token set the user's integration holds, decrypted."""
        row = await self.integration(user, provider)
        assert row is not None, f"{user} has no {provider} integration"
        return self.hub.store.decrypt(row)

    async def set_integration(self, user: str = "alice", provider: str = "slack", **columns: Any) -> None:
        """Overwrite columns of the user's integration, as another process might."""
        where = (Integration.user_id == user, Integration.provider == provider)
        async with self.hub.sessions.begin() as session:
            await session.execute(update(Integration).where(*where).values(**columns))

    async def expire_token(self, user: str = "alice", provider: str = "slack", ago: timedelta = timedelta(seconds=5)) -> None:
        """Move the stored token's expiry ``ago`` into the past."""
        await self.set_integration(user, provider, token_expiry=utcnow() - ago)

    async def set_states(self, **columns: Any) -> None:
        """Overwrite columns of every OAuth state row."""
        async with self.hub.sessions.begin() as session:
            await session.execute(update(OAuthState).values(**columns))

    async def _all(self, query: Select[Any]) -> list[Any]:
        async with self.hub.sessions() as session:
            return list((await session.scalars(query)).all())

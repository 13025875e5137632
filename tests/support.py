"""Test support shared by fixtures and tests."""

from __future__ import annotations

import os
from typing import Any

import hub_google_calendar
import hub_slack
import hub_trello
from hub.infra.auth import issue_token
from hub.infra.secrets import Secrets
from hub.infra.config import HubConfig
from hub.registry import Registry
from hub.core.hub import Hub
from hub_slack.fake import FakeSlack

JWT_SECRET = "test-secret-" + "x" * 40
PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")


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

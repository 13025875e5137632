"""Test support shared by fixtures and tests."""

from __future__ import annotations

import os
from typing import Any

import hub_google_calendar
import hub_slack
import hub_trello
from hub.auth import issue_token
from hub.bootstrap import Secrets
from hub.config import HubConfig
from hub.plugins import Registry
from hub.service import Hub
from hub_slack.fake import FakeSlack

JWT_SECRET = "test-secret-" + "x" * 40
PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")


def slack_section(fake: FakeSlack) -> dict[str, Any]:
    base = fake.base_url  # type: ignore[attr-defined]
    return {
        "client_id": "slack-client",
        "client_secret": "slack-secret-value-123",
        "scopes": ["channels:read", "groups:read", "chat:write", "users:read"],
        "urls": {
            "authorize": f"{base}/oauth/v2/authorize",
            "token": f"{base}/api/oauth.v2.access",
            "api": f"{base}/api",
        },
    }


def trello_section(fake: Any) -> dict[str, Any]:
    base = fake.base_url
    return {
        "api_key": fake.api_key,
        "app_name": "Hub Tests",
        "urls": {"authorize": f"{base}/1/authorize", "api": f"{base}/1"},
    }


def google_section(fake: Any) -> dict[str, Any]:
    base = fake.base_url
    return {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "urls": {
            "authorize": f"{base}/o/oauth2/v2/auth",
            "token": f"{base}/token",
            "revoke": f"{base}/revoke",
            "userinfo": f"{base}/v1/userinfo",
            "api": f"{base}/calendar/v3",
        },
    }


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

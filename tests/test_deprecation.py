"""A deprecated operation says so (docs/api.md, "Stability policy"): its answers carry
``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and a ``Link`` to the successor, and its
OpenAPI operation is ``deprecated: true``; operations that are not deprecated carry none."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import hub_slack
import pytest
from conftest import serve_hub
from helpers import connect_slack
from support import auth

from hub import Deprecation, hookimpl
from hub.web import deprecation

DEP = Deprecation(since=date(2026, 6, 1), sunset=date(2027, 1, 31), successor="/api/integrations/slack/messages")


@pytest.fixture
async def hub_with_deprecations(make_config: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    actions = hub_slack.hub_actions()

    @hookimpl
    def hub_actions() -> list[Any]:
        return [dataclasses.replace(a, deprecated=DEP) if a.name == "post_message" else a for a in actions]

    monkeypatch.setattr(hub_slack, "hub_actions", hub_actions)
    monkeypatch.setitem(deprecation.ROUTES, ("GET", "/api/integrations/{provider}/stats"), Deprecation(since=date(2026, 7, 1)))
    client = await serve_hub(make_config(), aiohttp_client)
    await connect_slack(client, auth("alice"))
    return client


async def test_a_deprecated_action_announces_it(hub_with_deprecations: Any) -> None:
    client = hub_with_deprecations
    ok = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))
    refused = await client.post("/api/integrations/slack/message", json={"channel": "general"}, headers=auth("alice"))
    for resp, status in ((ok, 200), (refused, 400)):
        assert resp.status == status, await resp.text()
        assert resp.headers["Deprecation"] == "@1780272000"  # 2026-06-01T00:00:00Z
        assert resp.headers["Sunset"] == "Sun, 31 Jan 2027 00:00:00 GMT"
        assert resp.headers["Link"] == '</api/integrations/slack/messages>; rel="successor-version"'
    other = await client.get("/api/integrations/slack/channels", headers=auth("alice"))
    assert other.status == 200 and "Deprecation" not in other.headers and "Sunset" not in other.headers

    doc = await (await client.get("/api/openapi.json")).json()
    op = doc["paths"]["/api/integrations/slack/message"]["post"]
    assert op["deprecated"] is True and "may be removed after 2027-01-31" in op["description"]
    assert "deprecated" not in doc["paths"]["/api/integrations/slack/channels"]["get"]


async def test_a_deprecated_core_route_announces_it(hub_with_deprecations: Any) -> None:
    client = hub_with_deprecations
    resp = await client.get("/api/integrations/slack/stats", headers=auth("alice"))
    assert resp.status == 200 and resp.headers["Deprecation"] == "@1782864000" and "Sunset" not in resp.headers
    assert "Deprecation" not in (await client.get("/api/integrations/slack/logs", headers=auth("alice"))).headers
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["paths"]["/api/integrations/{provider}/stats"]["get"]["deprecated"] is True
    assert "deprecated" not in doc["paths"]["/api/integrations/{provider}/stats/daily"]["get"]

"""No token, code, state or secret reaches an activity row, a log line or a response."""

from __future__ import annotations

import json
import logging

from helpers import callback_path, consent, query_of
from support import JWT_SECRET, auth


async def test_full_flow_leaks_nothing(hub_app, fake_slack, caplog):
    caplog.set_level(logging.DEBUG)
    fake_slack.rotation = True
    client, h = hub_app, auth("alice")
    bodies: list[str] = []

    async def call(method, path, **kw):
        resp = await client.request(method, path, **kw)
        bodies.append(await resp.text())
        bodies.append(json.dumps(dict(resp.headers)))
        return resp

    await call("GET", "/api/integrations/slack/connect", headers=h)
    auth_url = json.loads(bodies[-2])["data"]["authUrl"]
    state = query_of(auth_url)["state"]
    del bodies[:]  # the authUrl is the one place the state must appear: it goes to the browser
    location = await consent(auth_url)
    code = query_of(location)["code"]
    await call("GET", callback_path(location))
    await call("GET", callback_path(location), headers={"Accept": "application/json"})  # replayed
    await call("POST", "/api/integrations/slack/message", json={"channel": "general", "text": "hi"}, headers=h)
    await call("POST", "/api/integrations/slack/message", json={"channel": "nowhere", "text": "hi"}, headers=h)
    await call("POST", "/api/integrations/slack/refresh", headers=h)
    await call("GET", "/api/integrations/slack/channels", headers=h)
    await call("GET", "/api/integrations/slack/status", headers=h)
    await call("GET", "/api/integrations/slack/logs", headers=h)
    await call("GET", "/api/integrations/slack", headers=h)
    await call("DELETE", "/api/integrations/slack/disconnect", headers=h)
    db = client.db
    rows = [json.dumps([r.request_data, r.response_data, r.error_message, r.action]) for r in await db.activity()]
    rows += [json.dumps([i.meta, i.status_reason, i.scopes]) for i in await db.integrations()]
    rows += [json.dumps([o.state_hash, o.code_verifier, o.return_url]) for o in await db.states()]

    secrets = [*fake_slack.issued, code, state, "slack-secret-value-123", JWT_SECRET, h["Authorization"].split()[1]]
    assert len(fake_slack.issued) >= 4  # access + refresh, before and after the refresh
    # aiohttp.access lines come only from the fake provider: the hub serves without them
    hub_log = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "POST /api/integrations/slack/message 200" in hub_log  # the hub's own access line
    haystacks = {"activity and rows": "\n".join(rows), "responses": "\n".join(bodies), "server log": hub_log}
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the {where}"
    # and the redaction did not just blank everything: the activity is still informative
    assert "post_message" in haystacks["activity and rows"] and "channel_not_found" in haystacks["activity and rows"]


def test_capped_keeps_plain_json_and_makes_the_rest_storable() -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    from hub.redact import capped

    plain = {"ok": True, "items": [1, 2.5, "é", None]}
    assert capped(plain, 1000) is plain
    odd = {"when": datetime(2026, 1, 2, tzinfo=timezone.utc), "amount": Decimal("1.10"), "tags": {"a"}}
    stored = capped(odd, 1000)
    assert stored == {"when": "2026-01-02 00:00:00+00:00", "amount": "1.10", "tags": "{'a'}"}
    assert json.loads(json.dumps(stored)) == stored
    # The limit counts UTF-8 bytes: 300 three-byte characters are 900 bytes, not 300.
    wide = {"text": "€" * 300}
    assert capped(wide, 2000) is wide
    cut = capped(wide, 500)
    assert cut["truncated"] is True and cut["size"] == len(json.dumps(wide, ensure_ascii=False))

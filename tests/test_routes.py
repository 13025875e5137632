"""The integration routes beyond the main flow: views, live status, manual state
changes, return URLs, reconnecting, the catalogue and the OpenAPI document."""

from __future__ import annotations

from openapi_spec_validator import validate

from helpers import callback_path, connect_slack, consent, query_of
from support import auth


async def get_view(client, user="alice"):
    resp = await client.get("/api/integrations/slack", headers=auth(user))
    return resp.status, (await resp.json()).get("data")


async def test_list_shows_one_integration_per_provider_with_stats(hub_app, fake_slack):
    h = auth("alice")
    assert (await (await hub_app.get("/api/integrations", headers=h)).json())["data"] == []
    await connect_slack(hub_app, h)
    await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)
    items = (await (await hub_app.get("/api/integrations", headers=h)).json())["data"]
    assert [i["provider"] for i in items] == ["slack"]
    assert items[0]["stats"]["totalRequests"] == 2  # the code exchange and the message
    assert items[0]["lastSyncAt"] is not None


async def test_live_status_checks_slack_and_notices_revocation(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    resp = await hub_app.get("/api/integrations/slack/status", headers=h)
    data = (await resp.json())["data"]
    assert resp.status == 200 and data["checked"] is True and data["status"] == "ACTIVE"
    assert len(fake_slack.calls_to("/api/auth.test")) == 2  # once at connect, once now
    fake_slack.revoke_all()
    resp = await hub_app.get("/api/integrations/slack/status", headers=h)
    assert resp.status == 409
    status, view = await get_view(hub_app)
    assert view["status"] == "ERROR"


async def test_deactivate_and_reactivate(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    resp = await hub_app.patch("/api/integrations/slack/status", json={"status": "INACTIVE"}, headers=h)
    assert (await resp.json())["data"]["status"] == "INACTIVE"
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)
    assert resp.status == 409
    resp = await hub_app.patch("/api/integrations/slack/status", json={"status": "ACTIVE"}, headers=h)
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "ACTIVE"
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=h)
    assert resp.status == 200


async def test_reactivating_after_disconnect_requires_a_new_grant(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    await hub_app.delete("/api/integrations/slack/disconnect", headers=h)
    resp = await hub_app.patch("/api/integrations/slack/status", json={"status": "ACTIVE"}, headers=h)
    body = await resp.json()
    assert resp.status == 409 and body["error"]["code"] == "reconnect_required"
    # connecting again is the way back
    await connect_slack(hub_app, h)
    assert (await get_view(hub_app))[1]["status"] == "ACTIVE"


async def test_deleted_is_a_tombstone_that_a_new_connect_revives(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    await hub_app.delete("/api/integrations/slack", headers=h)
    resp = await hub_app.delete("/api/integrations/slack", headers=h)
    assert resp.status == 409  # already DELETED
    resp = await hub_app.get("/api/integrations", headers=h)
    assert (await resp.json())["data"] == []
    logs = (await (await hub_app.get("/api/integrations/slack/logs", headers=h)).json())["data"]["items"]
    assert any(i["action"] == "revoke_token" for i in logs)  # logs survive the delete
    await connect_slack(hub_app, h)
    assert (await get_view(hub_app))[1]["status"] == "ACTIVE"


async def test_callback_sends_the_browser_to_an_allowed_return_url(hub_app, fake_slack):
    h = auth("alice")
    resp = await hub_app.get("/api/integrations/slack/connect", params={"return_url": "https://app.example.com/settings?tab=1"}, headers=h)
    location = await consent((await resp.json())["data"]["authUrl"])
    resp = await hub_app.get(callback_path(location), allow_redirects=False)
    assert resp.status == 302
    target = resp.headers["Location"]
    assert target.startswith("https://app.example.com/settings?tab=1&")
    assert query_of(target)["status"] == "connected"


async def test_declined_consent_redirects_with_the_error(hub_app, fake_slack):
    h = auth("alice")
    resp = await hub_app.get("/api/integrations/slack/connect", params={"return_url": "https://app.example.com/back"}, headers=h)
    location = await consent((await resp.json())["data"]["authUrl"], "deny")
    resp = await hub_app.get(callback_path(location), allow_redirects=False)
    assert resp.status == 302 and query_of(resp.headers["Location"])["error"] == "access_denied"
    assert (await get_view(hub_app))[0] == 404


async def test_reconnect_keeps_one_row_and_refreshes_metadata(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    await connect_slack(hub_app, h)
    assert len(await hub_app.db.integrations()) == 1


async def test_catalogue_lists_providers_and_actions(hub_app):
    resp = await hub_app.get("/api/providers", headers=auth("alice"))
    data = (await resp.json())["data"]
    slack = data["providers"][0]
    assert slack["name"] == "slack" and slack["configured"] is True
    assert {a["name"] for a in slack["actions"]} == {"post_message", "list_channels", "get_user"}
    assert data["failures"] == []


async def test_openapi_document_is_valid_and_complete(hub_app):
    doc = await (await hub_app.get("/api/openapi.json")).json()
    validate(doc)
    paths = doc["paths"]
    for route in ("connect", "callback", "tokens", "refresh", "status", "disconnect", "logs", "stats"):
        assert f"/api/integrations/{{provider}}/{route}" in paths
    assert "post" in paths["/api/integrations/slack/message"]
    schemas = doc["components"]["schemas"]
    body = paths["/api/integrations/slack/message"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SlackPostMessageInput"}
    # the two forms of a message, named, each a whole object
    assert schemas["SlackPostMessageInput"]["anyOf"] == [{"$ref": "#/components/schemas/SlackPostMessageWithText"},
                                                          {"$ref": "#/components/schemas/SlackPostMessageWithBlocks"}]
    assert schemas["SlackPostMessageWithText"]["required"] == ["channel", "text"]
    assert schemas["SlackPostMessageWithBlocks"]["additionalProperties"] is False
    assert {p["name"] for p in paths["/api/integrations/slack/channels"]["get"]["parameters"]} == {"types", "exclude_archived", "limit", "cursor"}
    assert paths["/api/integrations/slack/users/{user_id}"]["get"]["parameters"][0]["in"] == "path"
    # What the actions declare: the answer's data, and example bodies.
    user = paths["/api/integrations/slack/users/{user_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert user == {"$ref": "#/components/schemas/SlackGetUserAnswer"}
    assert schemas["SlackGetUserAnswer"]["properties"]["data"] == {"$ref": "#/components/schemas/SlackGetUserOutput"}
    assert schemas["SlackGetUserOutput"]["required"] == ["id", "name"]
    # Core routes read well in generated clients, and every operation has an id.
    assert paths["/api/integrations/{provider}/status"]["patch"]["operationId"] == "integrations_status_patch"
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    examples = paths["/api/integrations/slack/message"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples["example0"]["value"] == {"channel": "C0000000001", "text": "Deploy finished: version 2.4.1 is live."}


async def test_get_user_action(hub_app, fake_slack):
    h = auth("alice")
    await connect_slack(hub_app, h)
    resp = await hub_app.get("/api/integrations/slack/users/U0000000002", headers=h)
    assert resp.status == 200 and (await resp.json())["data"]["name"] == "grace"
    resp = await hub_app.get("/api/integrations/slack/users/U0000000099", headers=h)
    assert resp.status == 404


async def test_tokens_route_verifies_before_storing(hub_app, fake_slack):
    # a token minted for someone else's install, pasted in by alice
    await connect_slack(hub_app, auth("bob"))
    pasted = next(t for t in fake_slack.issued if t.startswith("xoxb-"))
    resp = await hub_app.post("/api/integrations/slack/tokens", json={"token": "xoxb-not-a-real-one"}, headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "token_rejected"
    assert (await get_view(hub_app))[0] == 404  # nothing stored
    resp = await hub_app.post("/api/integrations/slack/tokens", json={"token": pasted}, headers=auth("alice"))
    assert resp.status == 201, await resp.text()
    data = (await resp.json())["data"]
    assert data["status"] == "ACTIVE" and data["account"]["teamId"] == "T0000000001"
    resp = await hub_app.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=auth("alice"))
    assert resp.status == 200


async def test_plugin_trace_names_hooks_but_never_values(hub_app, fake_slack, caplog):
    import logging

    hub_app.hub.registry.trace = True
    caplog.set_level(logging.INFO, logger="hub.plugins.trace")
    await connect_slack(hub_app, auth("alice"))
    lines = [r.getMessage() for r in caplog.records if r.name == "hub.plugins.trace"]
    assert any(line.startswith("hub_exchange_code[slack] slack(provider, code, redirect_uri)") for line in lines)
    assert any(line.startswith("hub_account_identity[slack]") for line in lines)
    for token in fake_slack.issued:
        assert all(token not in line for line in lines)


async def test_dashboard_page_is_served_with_strict_headers(hub_app):
    resp = await hub_app.get("/")
    assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = await resp.text()
    script = __import__("re").search(r'<script[^>]+src="([^"]+)"', page).group(1)
    asset = await hub_app.get(script)
    assert asset.status == 200 and asset.headers["Cache-Control"] == "no-cache"


async def test_missing_fields_are_reported_once_each(hub_app, fake_slack):
    from helpers import connect_slack

    await connect_slack(hub_app, auth("alice"))
    resp = await hub_app.post("/api/integrations/slack/message", json={}, headers=auth("alice"))
    details = (await resp.json())["error"]["details"]["problems"]
    fields = [d["field"] for d in details]
    assert len(fields) == len(set(fields)) and "channel" in fields

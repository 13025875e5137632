"""The Slack plugin in a running hub against its fake, set up with hub.testing's fixtures:
what is Slack's own in the flow (one exchange for bot and user tokens, the refresh grant at
oauth.v2.access, auth.revoke as an API method). Imports nothing but the plugin, hub.testing."""

import hub_slack
from hub_slack.fake import FakeSlack

from hub.testing import auth_headers, connect


async def test_one_install_asks_for_user_scopes_and_a_team(make_hub):
    client = await make_hub(hub_slack, FakeSlack(), settings={"user_scopes": ["search:read"], "team": "T0TEAM0002"})
    assert (await connect(client)).status == 200
    (page,) = client.fake.calls_to("/oauth/v2/authorize", "GET")
    assert (page.query["scope"], page.query["user_scope"], page.query["team"]) == (
        "channels:read,chat:write,users:read", "search:read", "T0TEAM0002")
    view = (await (await client.get("/api/integrations/slack", headers=auth_headers("alice"))).json())["data"]
    assert view["status"] == "ACTIVE"
    assert (view["account"]["accountId"], view["account"]["teamId"]) == ("U0FAKEBOT01", "T0TEAM0002")
    # the one exchange handed out a bot token and a user token
    assert sorted(t.value[:5] for t in client.fake.tokens.values()) == ["xoxb-", "xoxp-"]


async def test_an_expired_rotating_token_is_refreshed_once_at_oauth_v2_access(make_hub):
    client = await make_hub(hub_slack, FakeSlack(rotation=True))
    await connect(client)
    first_refresh = next(t for t in client.fake.tokens.values() if t.kind == "refresh")
    client.fake.expire_tokens()  # Slack answers token_expired although the hub's clock disagrees
    resp = await client.get("/api/integrations/slack/channels", headers=auth_headers("alice"))
    assert resp.status == 200, await resp.text()
    grants = [c.form.get("grant_type") for c in client.fake.calls_to("/api/oauth.v2.access")]
    assert grants == [None, "refresh_token"]  # the exchange (Slack's default grant), then one refresh
    assert first_refresh.spent


async def test_disconnect_ends_the_bot_grant_through_auth_revoke(make_hub):
    client = await make_hub(hub_slack, FakeSlack(rotation=True))
    await connect(client)
    resp = await client.delete("/api/integrations/slack/disconnect", headers=auth_headers("alice"))
    assert resp.status == 200, await resp.text()
    assert len(client.fake.calls_to("/api/auth.revoke", "POST")) == 1
    assert all(t.revoked for t in client.fake.tokens.values())  # the access and the refresh token alike

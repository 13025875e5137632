"""Tests for the fake Slack server itself (hub_slack.fake)."""

import base64
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

try:
    from hub_slack.fake import FakeSlack
except ModuleNotFoundError:  # plugin not installed: run straight from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hub_slack.fake import FakeSlack

REDIRECT = "https://hub.example/oauth/callback/slack"
BOT_SCOPES = "chat:write,channels:read,groups:read,users:read"


@pytest.fixture
def fake():
    return FakeSlack()


@pytest.fixture
async def client(aiohttp_client, fake):
    return await aiohttp_client(fake.make_app())


def basic(client_id="fake-client-id", secret="fake-client-secret"):
    """Headers carrying HTTP Basic client credentials."""
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def authorize(client, decision="allow", **overrides):
    form = {
        "client_id": "fake-client-id",
        "scope": BOT_SCOPES,
        "user_scope": "",
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "team": "",
        "decision": decision,
        **overrides,
    }
    resp = await client.post("/oauth/v2/authorize", data=form, allow_redirects=False)
    assert resp.status == 302
    location = resp.headers["Location"]
    return location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(client, code, redirect_uri=REDIRECT, auth=None, **form):
    data = {"code": code, "redirect_uri": redirect_uri, **form}
    resp = await client.post("/api/oauth.v2.access", data=data, headers=auth)
    assert resp.status == 200
    return await resp.json()


async def refresh(client, refresh_token):
    resp = await client.post("/api/oauth.v2.access", headers=basic(),
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert resp.status == 200
    return await resp.json()


async def install(client, **authorize_overrides):
    _, query = await authorize(client, **authorize_overrides)
    body = await exchange(client, query["code"], auth=basic())
    assert body["ok"] is True, body
    return body


async def api(client, method, token=None, http_method="POST", **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if http_method == "GET":
        resp = await client.get(f"/api/{method}", params=params, headers=headers)
    else:
        resp = await client.post(f"/api/{method}", data=params, headers=headers)
    assert resp.status == 200
    return await resp.json()


async def api_json(client, method, token, payload):
    resp = await client.post(f"/api/{method}", json=payload, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    return await resp.json()


# ---------------------------------------------------------------- consent page


async def test_consent_page_shows_client_scopes_and_buttons(client):
    resp = await client.get(
        "/oauth/v2/authorize",
        params={"client_id": "fake-client-id", "scope": "chat:write,users:read", "user_scope": "search:read",
                "redirect_uri": REDIRECT, "state": "a&b"},
    )
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "fake-client-id" in page
    for scope in ("chat:write", "users:read"):  # the bot scopes, split at Slack's commas
        assert f"<li><code>{scope}</code></li>" in page
    assert '<form method="post" action="/oauth/v2/authorize">' in page
    assert '<button type="submit" name="decision" value="allow" id="allow">' in page
    assert 'value="deny" id="deny"' in page
    for name in ("client_id", "scope", "redirect_uri", "state"):
        assert f'type="hidden" name="{name}"' in page
    assert '<input type="hidden" name="user_scope" value="search:read">' in page  # carried on to Allow
    assert 'name="team"' not in page  # not asked for, so not carried
    assert 'value="a&amp;b"' in page  # state is escaped
    # self-contained: no script, and nothing loaded from elsewhere (the icon is an empty data: URL)
    assert "<script" not in page and not re.search(r'(href|src)="(?!data:)', page)


@pytest.mark.parametrize(
    "params, problem",
    [
        ({"client_id": "someone-else", "scope": "chat:write", "redirect_uri": REDIRECT}, "invalid_client_id"),
        ({"client_id": "fake-client-id", "scope": "chat:write"}, "missing_redirect_uri"),
        ({"client_id": "fake-client-id", "redirect_uri": REDIRECT}, "invalid_scope"),
    ],
)
async def test_consent_page_rejects_bad_requests(client, params, problem):
    resp = await client.get("/oauth/v2/authorize", params=params)
    assert resp.status == 400
    assert resp.content_type == "text/html"
    assert problem in await resp.text()


async def test_allow_redirects_with_code_and_state(client, fake):
    location, query = await authorize(client, redirect_uri=REDIRECT + "?provider=slack")
    assert location.startswith(REDIRECT + "?")
    assert query["provider"] == "slack"
    assert query["state"] == "st-123"
    assert query["code"] in fake.issued
    assert len(fake.calls_to("/oauth/v2/authorize")) == 1


async def test_deny_redirects_with_access_denied(client, fake):
    location, query = await authorize(client, decision="deny")
    assert location.startswith(REDIRECT)
    assert query == {"error": "access_denied", "state": "st-123"}
    assert fake.issued == []


async def test_decision_post_with_unknown_client_is_refused(client):
    resp = await client.post(
        "/oauth/v2/authorize",
        data={"client_id": "nope", "scope": "chat:write", "redirect_uri": REDIRECT, "decision": "allow"},
        allow_redirects=False,
    )
    assert resp.status == 400


# ---------------------------------------------------------------- code exchange


async def test_exchange_success_shape(client, fake):
    body = await install(client)
    assert set(body) == {"ok", "access_token", "token_type", "scope", "bot_user_id", "app_id", "team",
                         "enterprise", "is_enterprise_install", "authed_user"}
    assert body["access_token"].startswith("xoxb-")
    assert body["access_token"] in fake.issued
    assert body["token_type"] == "bot"
    assert body["scope"] == BOT_SCOPES
    assert body["team"] == {"id": "T0000000001", "name": "Fake Workspace"}
    assert body["enterprise"] is None
    assert body["is_enterprise_install"] is False
    assert body["authed_user"] == {"id": "U0000000001", "scope": "", "token_type": "user"}


async def test_exchange_with_user_scope_returns_user_token(client, fake):
    body = await install(client, user_scope="search:read,users:read", team="T0TEAM0002")
    user = body["authed_user"]
    assert user["access_token"].startswith("xoxp-")
    assert user["access_token"] in fake.issued
    assert user["scope"] == "search:read,users:read"
    assert user["token_type"] == "user"
    assert body["team"]["id"] == "T0TEAM0002"
    assert "refresh_token" not in body and "refresh_token" not in user


async def test_exchange_with_form_credentials(client):
    _, query = await authorize(client)
    body = await exchange(client, query["code"], client_id="fake-client-id", client_secret="fake-client-secret")
    assert body["ok"] is True


@pytest.mark.parametrize(
    "use_basic, client_id, secret, error",
    [
        (True, "wrong-id", "fake-client-secret", "invalid_client_id"),
        (True, "fake-client-id", "wrong-secret", "bad_client_secret"),
        (False, "wrong-id", "fake-client-secret", "invalid_client_id"),
        (False, "fake-client-id", "wrong-secret", "bad_client_secret"),
        (False, "", "", "invalid_client_id"),
    ],
)
async def test_exchange_rejects_bad_credentials(client, use_basic, client_id, secret, error):
    _, query = await authorize(client)
    if use_basic:
        body = await exchange(client, query["code"], auth=basic(client_id, secret))
    else:
        body = await exchange(client, query["code"], client_id=client_id, client_secret=secret)
    assert body == {"ok": False, "error": error}


async def test_code_is_single_use_and_must_exist(client):
    _, query = await authorize(client)
    assert (await exchange(client, query["code"], auth=basic()))["ok"] is True
    assert await exchange(client, query["code"], auth=basic()) == {"ok": False, "error": "code_already_used"}
    assert await exchange(client, "123.456.abc", auth=basic()) == {"ok": False, "error": "invalid_code"}


async def test_redirect_uri_must_match_and_mismatch_keeps_code(client):
    _, query = await authorize(client)
    for wrong in ("https://evil.example/cb", ""):
        body = await exchange(client, query["code"], redirect_uri=wrong, auth=basic())
        assert body == {"ok": False, "error": "bad_redirect_uri"}
    assert (await exchange(client, query["code"], auth=basic()))["ok"] is True


async def test_unknown_grant_type(client):
    _, query = await authorize(client)
    body = await exchange(client, query["code"], auth=basic(), grant_type="client_credentials")
    assert body == {"ok": False, "error": "invalid_grant_type"}


# ---------------------------------------------------------------- rotation


async def test_rotation_and_refresh_spends_old_refresh_token(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client, user_scope="users:read")
    assert body["refresh_token"].startswith("xoxe-1-")
    assert body["expires_in"] == 43200
    assert body["authed_user"]["refresh_token"].startswith("xoxe-1-")
    assert body["authed_user"]["expires_in"] == 43200

    old_refresh = body["refresh_token"]
    refreshed = await refresh(client, old_refresh)
    assert refreshed["ok"] is True
    assert refreshed["token_type"] == "bot"
    assert refreshed["access_token"].startswith("xoxb-")
    assert refreshed["access_token"] != body["access_token"]
    assert refreshed["refresh_token"].startswith("xoxe-1-") and refreshed["refresh_token"] != old_refresh
    assert refreshed["expires_in"] == 43200
    assert {refreshed["access_token"], refreshed["refresh_token"]} <= set(fake.issued)
    assert (await api(client, "auth.test", refreshed["access_token"]))["ok"] is True

    for spent in (old_refresh, "xoxe-1-never-issued"):
        assert await refresh(client, spent) == {"ok": False, "error": "invalid_refresh_token"}

    user_refreshed = await refresh(client, body["authed_user"]["refresh_token"])
    assert user_refreshed["token_type"] == "user"
    assert user_refreshed["access_token"].startswith("xoxp-")


async def test_refresh_also_checks_client_credentials(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client)
    resp = await client.post("/api/oauth.v2.access", headers=basic(secret="nope"),
                             data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert await resp.json() == {"ok": False, "error": "bad_client_secret"}


async def test_token_expires_after_expires_in(aiohttp_client):
    fake = FakeSlack(rotation=True, expires_in=0)
    client = await aiohttp_client(fake.make_app())
    body = await install(client)
    assert await api(client, "auth.test", body["access_token"]) == {"ok": False, "error": "token_expired"}


async def test_expire_tokens_then_refresh_recovers(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client)
    assert (await api(client, "auth.test", body["access_token"]))["ok"] is True
    fake.expire_tokens()
    assert await api(client, "auth.test", body["access_token"]) == {"ok": False, "error": "token_expired"}
    new_token = (await refresh(client, body["refresh_token"]))["access_token"]
    assert (await api(client, "auth.test", new_token))["ok"] is True


# ---------------------------------------------------------------- authentication & auth.*


async def test_auth_test_shape_for_bot_and_user_tokens(client):
    body = await install(client, user_scope="users:read")
    bot = await api(client, "auth.test", body["access_token"])
    assert bot == {
        "ok": True,
        "url": "https://fake-workspace.slack.com/",
        "team": "Fake Workspace",
        "user": "fakebot",
        "team_id": "T0000000001",
        "user_id": body["bot_user_id"],
        "bot_id": "B0FAKEBOT01",
        "is_enterprise_install": False,
    }
    user = await api(client, "auth.test", body["authed_user"]["access_token"], http_method="GET")
    assert user["user_id"] == "U0000000001"
    assert user["user"] == "ada"
    assert "bot_id" not in user


async def test_token_errors(client):
    body = await install(client)
    assert await api(client, "auth.test") == {"ok": False, "error": "not_authed"}
    assert await api(client, "auth.test", "xoxb-made-up") == {"ok": False, "error": "invalid_auth"}
    # refresh tokens and codes are not access tokens
    _, query = await authorize(client)
    assert await api(client, "auth.test", query["code"]) == {"ok": False, "error": "invalid_auth"}
    # Slack also takes the token as a form field
    resp = await client.post("/api/auth.test", data={"token": body["access_token"]})
    assert (await resp.json())["ok"] is True


async def test_revoke_makes_token_unusable(client, fake):
    body = await install(client)
    token = body["access_token"]
    assert await api(client, "auth.revoke", token) == {"ok": True, "revoked": True}
    assert fake.tokens[token].revoked
    assert await api(client, "auth.test", token) == {"ok": False, "error": "token_revoked"}
    assert await api(client, "auth.revoke", token) == {"ok": False, "error": "token_revoked"}
    assert len(fake.calls_to("/api/auth.revoke")) == 2


async def test_revoke_test_mode_does_not_revoke(client, fake):
    body = await install(client)
    token = body["access_token"]
    assert await api(client, "auth.revoke", token, test="true") == {"ok": True, "revoked": False}
    assert not any(t.revoked for t in fake.tokens.values())
    assert (await api(client, "auth.test", token))["ok"] is True


async def test_revoke_all_covers_access_and_refresh_tokens(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client, user_scope="users:read")
    fake.revoke_all()
    for token in (body["access_token"], body["authed_user"]["access_token"]):
        assert await api(client, "auth.test", token) == {"ok": False, "error": "token_revoked"}
    assert await refresh(client, body["refresh_token"]) == {"ok": False, "error": "invalid_refresh_token"}


async def test_auth_revoke_ends_one_side_of_the_install(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client, user_scope="users:read")
    assert await api(client, "auth.revoke", body["access_token"]) == {"ok": True, "revoked": True}
    assert await refresh(client, body["refresh_token"]) == {"ok": False, "error": "invalid_refresh_token"}
    assert (await api(client, "auth.test", body["authed_user"]["access_token"]))["ok"] is True
    assert (await refresh(client, body["authed_user"]["refresh_token"]))["ok"] is True


async def test_what_it_issued_and_holds_survives_a_restart(aiohttp_client):
    fake = FakeSlack(rotation=True)
    client = await aiohttp_client(fake.make_app())
    body = await install(client, user_scope="users:read")
    first = await api(client, "chat.postMessage", body["access_token"], channel="general", text="before")

    reborn = FakeSlack(rotation=True)
    reborn.import_state(json.loads(json.dumps(fake.export_state())))  # what the sandbox writes to disk
    client = await aiohttp_client(reborn.make_app())
    assert (await api(client, "auth.test", body["access_token"]))["user_id"] == "U0FAKEBOT01"
    second = await api(client, "chat.postMessage", body["access_token"], channel="general", text="after")
    assert float(second["ts"]) > float(first["ts"])
    assert [m["text"] for m in reborn.messages] == ["before", "after"]
    _, query = await authorize(client)
    assert (await exchange(client, query["code"], auth=basic()))["ok"] is True
    # revoking still ends the whole bot grant, and only it
    assert (await api(client, "auth.revoke", body["access_token"]))["revoked"] is True
    assert await refresh(client, body["refresh_token"]) == {"ok": False, "error": "invalid_refresh_token"}
    assert (await api(client, "auth.test", body["authed_user"]["access_token"]))["ok"] is True


# ---------------------------------------------------------------- chat.postMessage


@pytest.fixture
async def bot_token(client):
    return (await install(client))["access_token"]


async def test_post_message_success_shape(client, fake, bot_token):
    first = await api(client, "chat.postMessage", bot_token, channel="C0000000001", text="hello")
    assert first["ok"] is True
    assert first["channel"] == "C0000000001"
    seconds, micros = first["ts"].split(".")
    assert len(seconds) == 10 and len(micros) == 6
    message = first["message"]
    assert message["type"] == "message"
    assert message["text"] == "hello"
    assert message["bot_id"] == "B0FAKEBOT01"
    assert message["user"] == fake.bot_user_id
    assert message["ts"] == first["ts"]
    assert "blocks" not in message and "thread_ts" not in message

    second = await api(client, "chat.postMessage", bot_token, channel="#random", text="again", thread_ts=first["ts"])
    assert second["channel"] == "C0000000002"
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["thread_ts"] == first["ts"]
    assert [(m["channel"], m["text"]) for m in fake.messages] == [("C0000000001", "hello"), ("C0000000002", "again")]


async def test_post_message_blocks_as_json_array_or_form_string(client, fake, bot_token):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    as_json = await api_json(client, "chat.postMessage", bot_token, {"channel": "general", "blocks": blocks})
    assert as_json["ok"] is True
    assert as_json["message"]["blocks"] == blocks
    assert fake.calls_to("/api/chat.postMessage")[-1].json["blocks"] == blocks

    as_form = await api(client, "chat.postMessage", bot_token, channel="general", blocks=json.dumps(blocks))
    assert as_form["message"]["blocks"] == blocks
    bad = await api(client, "chat.postMessage", bot_token, channel="general", blocks="[{not json")
    assert bad == {"ok": False, "error": "invalid_blocks_format"}


@pytest.mark.parametrize(
    "params, error",
    [
        ({"text": "no channel"}, "channel_not_found"),
        ({"channel": "C9999999999", "text": "x"}, "channel_not_found"),
        ({"channel": "#nowhere", "text": "x"}, "channel_not_found"),
        ({"channel": "general"}, "no_text"),
        ({"channel": "general", "text": "", "blocks": "[]"}, "no_text"),
        ({"channel": "general", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "channel-4", "text": "x"}, "is_archived"),
        ({"channel": "channel-5", "text": "x"}, "not_in_channel"),
    ],
)
async def test_post_message_errors(client, fake, bot_token, params, error):
    assert await api(client, "chat.postMessage", bot_token, **params) == {"ok": False, "error": error}
    assert fake.messages == []


async def test_post_message_text_at_limit_and_private_channel(client, bot_token):
    body = await api(client, "chat.postMessage", bot_token, channel="channel-3", text="x" * 40_000)
    assert body["ok"] is True and body["channel"] == "C0000000003"


async def test_post_message_needs_chat_write_scope(client):
    token = (await install(client, scope="users:read"))["access_token"]
    body = await api(client, "chat.postMessage", token, channel="general", text="x")
    assert body == {"ok": False, "error": "missing_scope", "needed": "chat:write", "provided": "users:read"}


# ---------------------------------------------------------------- conversations.list


async def test_conversations_list_shape_and_default_types(client, bot_token):
    body = await api(client, "conversations.list", bot_token, http_method="GET")
    assert body["ok"] is True
    assert body["response_metadata"] == {"next_cursor": ""}
    names = [c["name"] for c in body["channels"]]
    assert names == ["general", "random", "channel-4", "channel-5"]  # public only, archived included
    general = body["channels"][0]
    assert general["id"] == "C0000000001"
    for key in ("id", "name", "is_channel", "is_private", "is_archived", "is_member", "created", "num_members"):
        assert key in general
    assert general["topic"]["value"] and general["purpose"]["value"]
    archived = next(c for c in body["channels"] if c["name"] == "channel-4")
    assert archived["is_archived"] is True


async def test_conversations_list_types_and_exclude_archived(client, bot_token):
    body = await api(client, "conversations.list", bot_token, types="public_channel,private_channel",
                     exclude_archived="true")
    channels = {c["name"]: c for c in body["channels"]}
    assert set(channels) == {"general", "random", "channel-3", "channel-5"}
    assert channels["channel-3"]["is_private"] is True
    only_dms = await api(client, "conversations.list", bot_token, types="im")
    assert only_dms == {"ok": False, "error": "missing_scope", "needed": "im:read", "provided": BOT_SCOPES}


async def test_conversations_list_paginates(aiohttp_client):
    fake = FakeSlack(channel_count=12)
    client = await aiohttp_client(fake.make_app())
    token = (await install(client))["access_token"]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "types": "public_channel,private_channel"}
        if cursor:
            params["cursor"] = cursor
        body = await api(client, "conversations.list", token, http_method="GET", **params)
        assert body["ok"] is True
        assert len(body["channels"]) <= 3
        seen += [c["id"] for c in body["channels"]]
        pages += 1
        cursor = body["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages >= 2
    assert seen == [c["id"] for c in fake.channels if not c["is_private"] or c["is_member"]]
    assert len(seen) == len(set(seen)) == 12


@pytest.mark.parametrize(
    "params, error",
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "lots"}, "invalid_limit"),
        ({"cursor": "not base64!"}, "invalid_cursor"),
        ({"cursor": base64.b64encode(b"channel:C4242424242").decode()}, "invalid_cursor"),
        ({"types": "public_channel,shared_channel"}, "invalid_types"),
    ],
)
async def test_conversations_list_errors(client, bot_token, params, error):
    assert await api(client, "conversations.list", bot_token, **params) == {"ok": False, "error": error}


async def test_conversations_list_needs_scope_per_type(client):
    token = (await install(client, scope="chat:write,channels:read"))["access_token"]
    assert (await api(client, "conversations.list", token))["ok"] is True
    body = await api(client, "conversations.list", token, types="private_channel")
    assert body["error"] == "missing_scope" and body["needed"] == "groups:read"


# ---------------------------------------------------------------- users.info


async def test_users_info(client, bot_token):
    body = await api(client, "users.info", bot_token, http_method="GET", user="U0000000002")
    user = body["user"]
    assert body["ok"] is True
    assert {"id", "team_id", "name", "real_name", "deleted", "is_bot", "tz", "profile"} <= set(user)
    assert {"email", "display_name", "real_name", "image_72"} <= set(user["profile"])
    assert user["id"] == "U0000000002" and user["is_bot"] is False
    bot = await api(client, "users.info", bot_token, user="U0FAKEBOT01")
    assert bot["user"]["is_bot"] is True
    for params in ({"user": "U404"}, {}):
        assert await api(client, "users.info", bot_token, **params) == {"ok": False, "error": "user_not_found"}


async def test_custom_users_first_one_installs(aiohttp_client):
    fake = FakeSlack(users={"UCUSTOM1": {"name": "zoe", "real_name": "Zoe"}})
    client = await aiohttp_client(fake.make_app())
    body = await install(client, user_scope="users:read")
    assert body["authed_user"]["id"] == "UCUSTOM1"
    info = await api(client, "users.info", body["access_token"], user="UCUSTOM1")
    assert info["user"] == {"id": "UCUSTOM1", "name": "zoe", "real_name": "Zoe"}


# ---------------------------------------------------------------- fault switches & recording


async def test_rate_limit_next_answers_429_with_retry_after(client, fake, bot_token):
    fake.rate_limit_next(2, retry_after=7, path="/api/conversations.list")
    headers = {"Authorization": f"Bearer {bot_token}"}
    for _ in range(2):
        resp = await client.get("/api/conversations.list", headers=headers)
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        assert await resp.json() == {"ok": False, "error": "ratelimited"}
    resp = await client.get("/api/conversations.list", headers=headers)
    assert resp.status == 200 and (await resp.json())["ok"] is True
    assert len(fake.calls_to("/api/conversations.list")) == 3


async def test_fail_next(client, fake, bot_token):
    fake.slack_error_next("auth.test", "account_inactive", count=2)
    assert await api(client, "auth.test", bot_token) == {"ok": False, "error": "account_inactive"}
    assert await api(client, "auth.test", bot_token) == {"ok": False, "error": "account_inactive"}
    assert (await api(client, "auth.test", bot_token))["ok"] is True


async def test_fail_next_on_token_endpoint(client, fake):
    _, query = await authorize(client)
    fake.slack_error_next("oauth.v2.access", "internal_error")
    assert await exchange(client, query["code"], auth=basic()) == {"ok": False, "error": "internal_error"}
    assert (await exchange(client, query["code"], auth=basic()))["ok"] is True


async def test_fail_next_without_a_body_is_a_bare_http_error(client, fake, bot_token):
    fake.fail_next(503, path="/api/users.info")
    resp = await client.post("/api/users.info", data={"user": "U0000000001"},
                             headers={"Authorization": f"Bearer {bot_token}"})
    assert resp.status == 503
    assert resp.content_type == "text/plain"
    assert "Service Unavailable" in await resp.text()
    assert (await api(client, "users.info", bot_token, user="U0000000001"))["ok"] is True


async def test_control_routes_reach_slacks_switches(client, fake, bot_token):
    resp = await client.post("/_fake/rate_limit_next", json={"retry_after": 5, "path": "/api/auth.test"})
    assert resp.status == 200
    resp = await client.post("/api/auth.test", headers={"Authorization": f"Bearer {bot_token}"})
    assert (resp.status, resp.headers["Retry-After"], await resp.json()) == (429, "5", {"ok": False, "error": "ratelimited"})
    # rotation is off, yet the switch expires the token all the same
    assert (await client.post("/_fake/expire_tokens")).status == 200
    assert await api(client, "auth.test", bot_token) == {"ok": False, "error": "token_expired"}


async def test_delay(client, fake, bot_token):
    fake.delay = 0.1
    started = time.monotonic()
    assert (await api(client, "auth.test", bot_token))["ok"] is True
    assert time.monotonic() - started >= 0.1


async def test_calls_are_recorded(client, fake, bot_token):
    await api_json(client, "chat.postMessage", bot_token, {"channel": "general", "text": "json body"})
    await api(client, "users.info", bot_token, http_method="GET", user="U0000000001")
    post, get = fake.calls[-2:]
    assert (post.method, post.path, post.json, post.form) == (
        "POST", "/api/chat.postMessage", {"channel": "general", "text": "json body"}, {})
    assert post.headers["Authorization"] == f"Bearer {bot_token}"
    assert (get.method, get.query) == ("GET", {"user": "U0000000001"})
    exchange_call = fake.calls_to("/api/oauth.v2.access")[0]
    assert exchange_call.form["redirect_uri"] == REDIRECT
    assert exchange_call.headers["Authorization"].startswith("Basic ")


async def test_bad_json_body_and_unknown_method(client, bot_token):
    headers = {"Authorization": f"Bearer {bot_token}", "Content-Type": "application/json"}
    resp = await client.post("/api/chat.postMessage", data="{oops", headers=headers)
    assert await resp.json() == {"ok": False, "error": "invalid_json"}
    resp = await client.post("/api/chat.deleteEverything", headers=headers)
    assert resp.status == 404
    assert (await resp.json())["error"] == "unknown_method"


async def test_start_serves_on_loopback():
    fake = FakeSlack()
    base_url = await fake.start()
    try:
        assert base_url.startswith("http://127.0.0.1:") and not base_url.endswith(":0")
        assert fake.hub_settings() == {"client_id": "fake-client-id", "client_secret": "fake-client-secret", "urls": {
            "authorize": f"{base_url}/oauth/v2/authorize", "token": f"{base_url}/api/oauth.v2.access", "api": f"{base_url}/api"},
            "signing_secret": fake.signing_secret}
        async with aiohttp.ClientSession() as session, session.post(f"{base_url}/api/auth.test") as resp:
            assert await resp.json() == {"ok": False, "error": "not_authed"}
    finally:
        await fake.stop()
    assert fake.calls_to("/api/auth.test")

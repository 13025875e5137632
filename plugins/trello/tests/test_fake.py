"""Tests for the fake Trello server itself (hub_trello.fake)."""

import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from hub.testing import FakeCall, press_consent

try:
    from hub_trello.fake import FakeTrello, credentials_in
except ModuleNotFoundError:  # plugin not installed: run straight from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hub_trello.fake import FakeTrello, credentials_in

KEY = "fake-trello-key"
RETURN = "https://hub.example/oauth/return/trello"
HEX24 = re.compile(r"^[0-9a-f]{24}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
RATE_HEADERS = ("x-rate-limit-api-token-max", "x-rate-limit-api-token-remaining",
                "x-rate-limit-api-token-interval-ms", "x-rate-limit-api-key-max",
                "x-rate-limit-api-key-remaining", "x-rate-limit-api-key-interval-ms")


@pytest.fixture
def fake():
    return FakeTrello()


@pytest.fixture
async def client(aiohttp_client, fake):
    return await aiohttp_client(fake.make_app())


def oauth(token, key=KEY):
    return {"Authorization": f'OAuth oauth_consumer_key="{key}", oauth_token="{token}"'}


def authorize_params(**overrides):
    params = {"key": KEY, "name": "Integration Hub", "scope": "read,write", "expiration": "30days",
              "response_type": "token", "return_url": RETURN, "callback_method": "fragment"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def decide(client, decision="allow", **overrides):
    resp = await client.post("/1/authorize", data={**authorize_params(**overrides), "decision": decision},
                             allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp.headers["Location"]


async def get(client, path, token, **params):
    return await client.get(path, params=params, headers=oauth(token))


async def expect_text(resp, status, text):
    assert resp.status == status
    assert resp.content_type == "text/plain"
    assert await resp.text() == text


def board_named(fake, name):
    return next(b for b in fake.boards.values() if b["name"] == name)


def list_named(fake, name):
    return next(lst for lst in fake.lists.values() if lst["name"] == name)


def card_named(fake, name):
    return next(c for c in fake.cards.values() if c["name"] == name)


# ---------------------------------------------------------------- consent page


async def test_consent_page_shows_app_scopes_and_buttons(client):
    resp = await client.get("/1/authorize", params=authorize_params(name="Hub <&> Co", scope="read,account",
                                                                     expiration="1day"))
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "Hub &lt;&amp;&gt; Co" in page and "Hub <&> Co" not in page
    assert 'data-scope="read"' in page and 'data-scope="account"' in page and 'data-scope="write"' not in page
    assert "1 day" in page
    assert '<form method="post" action="/1/authorize">' in page
    assert '<button type="submit" name="decision" value="allow" id="allow">' in page
    assert 'id="deny"' in page
    for name in ("key", "name", "scope", "expiration", "response_type", "return_url", "callback_method"):
        assert f'type="hidden" name="{name}"' in page
    assert "<style>" in page
    # self-contained: no script, and nothing loaded from elsewhere (the icon is an empty data: URL)
    assert "<script" not in page and not re.search(r'(href|src)="(?!data:)', page)


async def test_allow_redirects_with_token_in_fragment(client, fake):
    location = await decide(client, return_url=RETURN + "?provider=trello#old")
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == RETURN
    assert parts.query == "provider=trello"
    assert parts.fragment.startswith("token=")
    token = parts.fragment[len("token="):]
    assert HEX64.match(token)
    assert fake.issued == [token]
    resp = await get(client, "/1/members/me", token)
    assert resp.status == 200


async def test_deny_redirects_with_access_denied(client, fake):
    location = await decide(client, decision="deny")
    assert location == RETURN + "#error=access_denied"
    assert fake.issued == []


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_authorize_with_unknown_key_is_401(client, method):
    params = authorize_params(key="someone-else")
    if method == "GET":
        resp = await client.get("/1/authorize", params=params)
    else:
        resp = await client.post("/1/authorize", data={**params, "decision": "allow"}, allow_redirects=False)
    await expect_text(resp, 401, "invalid key")


@pytest.mark.parametrize("return_url", [None, "", "/relative/path", "ftp://hub.example/x", "https://"])
async def test_authorize_with_bad_return_url_is_400(client, return_url):
    resp = await client.get("/1/authorize", params=authorize_params(return_url=return_url))
    await expect_text(resp, 400, "Invalid return_url")


async def test_return_url_origin_must_be_allowed(aiohttp_client):
    fake = FakeTrello(allowed_origins=["https://hub.example", "http://localhost:8080"])
    client = await aiohttp_client(fake.make_app())
    for url in ("https://evil.example/cb", "http://hub.example/cb", "https://hub.example:8443/cb",
                "http://localhost:8081/cb"):
        resp = await client.get("/1/authorize", params=authorize_params(return_url=url))
        await expect_text(resp, 400, "Invalid return_url")
    resp = await client.post("/1/authorize", data={**authorize_params(return_url="https://evil.example/cb"),
                                                   "decision": "allow"}, allow_redirects=False)
    await expect_text(resp, 400, "Invalid return_url")
    assert fake.issued == []
    for url in ("https://HUB.example:443/cb", "http://localhost:8080/x?y=1"):
        resp = await client.get("/1/authorize", params=authorize_params(return_url=url))
        assert resp.status == 200


@pytest.mark.parametrize("overrides, text", [
    ({"response_type": "code"}, "Invalid response_type"),
    ({"response_type": None}, "Invalid response_type"),
    ({"callback_method": "postMessage"}, "Invalid callback_method: the fake only supports fragment"),
    ({"expiration": "2days"}, "Invalid expiration"),
    ({"scope": "read,admin"}, "Invalid scope"),
])
async def test_authorize_rejects_other_bad_parameters(client, overrides, text):
    resp = await client.get("/1/authorize", params=authorize_params(**overrides))
    await expect_text(resp, 400, text)


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize("expiration, lifetime", [
    ("1hour", timedelta(hours=1)), ("1day", timedelta(days=1)), ("30days", timedelta(days=30)), ("never", None),
])
async def test_token_info_shape_and_expiry(client, fake, expiration, lifetime):
    location = await decide(client, expiration=expiration, scope="read", name="My Hub")
    token = urlsplit(location).fragment[len("token="):]
    resp = await client.get(f"/1/tokens/{token}", params={"key": KEY})
    assert resp.status == 200
    info = await resp.json()
    assert set(info) == {"id", "identifier", "idMember", "dateCreated", "dateExpires", "permissions"}
    assert HEX24.match(info["id"])
    assert info["identifier"] == "My Hub"
    assert info["idMember"] == fake.member["id"]
    created = datetime.fromisoformat(info["dateCreated"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    if lifetime is None:
        assert info["dateExpires"] is None
    else:
        expires = datetime.fromisoformat(info["dateExpires"])
        assert abs(expires - created - lifetime) < timedelta(seconds=1)
    assert {"idModel": "*", "modelType": "board", "read": True, "write": False} in info["permissions"]


async def test_token_info_with_header_credentials_and_write_scope(client, fake):
    token = fake.issue_token(scope="read,write")
    resp = await client.get(f"/1/tokens/{token}", headers=oauth(token))
    assert resp.status == 200
    board = next(p for p in (await resp.json())["permissions"] if p["modelType"] == "board")
    assert board["write"] is True
    assert credentials_in(fake.calls[-1]) == "header"


async def test_token_info_unknown_token_and_key(client, fake):
    await expect_text(await client.get("/1/tokens/" + "0" * 64, params={"key": KEY}), 401, "invalid token")
    await expect_text(await client.get("/1/tokens/not-a-token", params={"key": KEY}), 401, "invalid token")
    token = fake.issue_token()
    await expect_text(await client.get(f"/1/tokens/{token}"), 401, "invalid key")
    await expect_text(await client.get(f"/1/tokens/{token}", params={"key": "nope"}), 401, "invalid key")


async def test_delete_token_revokes_it(client, fake):
    token = fake.issue_token()
    other = fake.issue_token()
    resp = await client.delete(f"/1/tokens/{token}", headers=oauth(token))
    assert resp.status == 200
    assert await resp.json() == {"_value": None}
    assert fake.revoked_tokens == {token}
    await expect_text(await get(client, "/1/members/me", token), 401, "invalid token")
    await expect_text(await client.get(f"/1/tokens/{token}", params={"key": KEY}), 401, "invalid token")
    await expect_text(await client.delete(f"/1/tokens/{token}", headers=oauth(other)), 401, "invalid token")
    assert (await get(client, "/1/members/me", other)).status == 200


async def test_revoke_all_and_expire_tokens(client, fake):
    first = fake.issue_token()
    fake.revoke_all()
    await expect_text(await get(client, "/1/members/me", first), 401, "invalid token")
    second = fake.issue_token(expiration="never")
    assert (await get(client, "/1/members/me", second)).status == 200
    fake.expire_tokens()
    await expect_text(await get(client, "/1/members/me", second), 401, "invalid token")
    third = fake.issue_token()
    assert (await get(client, "/1/members/me", third)).status == 200
    assert fake.issued == [first, second, third]


def test_issue_token_rejects_bad_arguments(fake):
    with pytest.raises(ValueError):
        fake.issue_token(expiration="forever")
    with pytest.raises(ValueError):
        fake.issue_token(scope="admin")
    assert fake.issued == []


# ---------------------------------------------------------------- credentials


async def test_header_and_query_credentials_are_both_accepted_and_recorded(client, fake):
    token = fake.issue_token()
    assert (await client.get("/1/members/me", headers=oauth(token))).status == 200
    assert (await client.get("/1/members/me", params={"key": KEY, "token": token})).status == 200
    assert (await client.get("/1/members/me", params={"key": KEY}, headers=oauth(token))).status == 200
    calls = fake.calls_to("/1/members/me", "GET")
    assert [credentials_in(c) for c in calls] == ["header", "query", "both"]
    assert calls[1].query == {"key": KEY, "token": token}
    assert calls[0].at <= calls[1].at <= calls[2].at
    await client.get("/1/members/me")
    assert credentials_in(fake.calls[-1]) is None


async def test_oauth_header_tolerates_spacing_and_percent_encoding(client, fake):
    token = fake.issue_token()
    header = f'OAuth oauth_consumer_key = "{KEY.replace("-", "%2D")}",oauth_token="{token}", oauth_version="1.0"'
    assert (await client.get("/1/members/me", headers={"Authorization": header})).status == 200


async def test_bad_credentials_are_plain_text_401(client, fake):
    token = fake.issue_token()
    await expect_text(await client.get("/1/members/me"), 401, "invalid key")
    await expect_text(await client.get("/1/members/me", params={"token": token}), 401, "invalid key")
    await expect_text(await client.get("/1/members/me", headers=oauth(token, key="wrong")), 401, "invalid key")
    await expect_text(await client.get("/1/members/me", params={"key": KEY}), 401, "invalid token")
    await expect_text(await get(client, "/1/members/me", "f" * 64), 401, "invalid token")
    await expect_text(await client.get("/1/members/me", headers={"Authorization": f"Bearer {token}"}), 401,
                      "invalid key")


# ---------------------------------------------------------------- members and boards


async def test_members_me_shape(client, fake):
    token = fake.issue_token()
    resp = await get(client, "/1/members/me", token)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    me = await resp.json()
    assert {"id", "username", "fullName", "url", "avatarUrl", "initials", "idBoards", "email"} <= set(me)
    assert me["username"] == "ada" and me["fullName"] == "Ada Lovelace"
    assert me["id"] == fake.member["id"] and HEX24.match(me["id"])
    assert sorted(me["idBoards"]) == sorted(fake.boards)
    assert me["email"] is None  # no account scope
    with_account = fake.issue_token(scope="read,account")
    assert (await (await get(client, "/1/members/me", with_account)).json())["email"] == "ada@example.com"
    by_name = await (await get(client, "/1/members/ada", token, fields="username,fullName")).json()
    assert by_name == {"id": me["id"], "username": "ada", "fullName": "Ada Lovelace"}
    await expect_text(await get(client, "/1/members/grace", token), 404, "The requested resource was not found.")
    await expect_text(await get(client, "/1/members/me", token, fields="password"), 400, "invalid value for fields")


async def test_member_boards_filters(client, fake):
    token = fake.issue_token()
    resp = await get(client, "/1/members/me/boards", token, filter="open")
    boards = await resp.json()
    assert [b["name"] for b in boards] == ["Product Roadmap", "Household"]
    assert {"id", "name", "desc", "closed", "url", "shortUrl", "idOrganization", "dateLastActivity",
            "prefs"} <= set(boards[0])
    assert all(HEX24.match(b["id"]) and b["closed"] is False for b in boards)
    closed = await (await get(client, "/1/members/me/boards", token, filter="closed")).json()
    assert [b["name"] for b in closed] == ["Old Website"]
    everything = await (await get(client, "/1/members/me/boards", token)).json()
    assert len(everything) == 3
    slim = await (await get(client, "/1/members/me/boards", token, filter="all", fields="name,closed")).json()
    assert all(set(b) == {"id", "name", "closed"} for b in slim)
    await expect_text(await get(client, "/1/members/me/boards", token, filter="bogus"), 400,
                      "invalid value for filter")


async def test_board_with_lists_and_cards(client, fake):
    token = fake.issue_token()
    board = board_named(fake, "Product Roadmap")
    plain = await (await get(client, f"/1/boards/{board['id']}", token)).json()
    assert plain["name"] == "Product Roadmap" and "lists" not in plain and "cards" not in plain
    full = await (await get(client, f"/1/boards/{board['id']}", token, lists="open", cards="visible")).json()
    assert [lst["name"] for lst in full["lists"]] == ["To Do", "Doing", "Done"]
    for lst in full["lists"]:
        assert set(lst) >= {"id", "name", "closed", "pos", "idBoard"} and lst["idBoard"] == board["id"]
    names = [c["name"] for c in full["cards"]]
    assert names == ["Write the onboarding guide", "Fix the login redirect", "Design the settings page",
                     "Ship version 1.0"]
    card = full["cards"][0]
    assert {"id", "name", "desc", "idList", "idBoard", "due", "dueComplete", "pos", "closed", "idLabels",
            "idMembers", "url", "shortUrl", "dateLastActivity"} <= set(card)
    assert card["labels"][0]["name"] == "Ready" and card["idLabels"] == [card["labels"][0]["id"]]
    everything = await (await get(client, f"/1/boards/{board['id']}", token, lists="all", cards="all",
                                  card_fields="name")).json()
    assert len(everything["lists"]) == 4 and len(everything["cards"]) == 6
    assert set(everything["cards"][0]) == {"id", "name"}


async def test_board_lists_filter(client, fake):
    token = fake.issue_token()
    board_id = board_named(fake, "Household")["id"]
    open_lists = await (await get(client, f"/1/boards/{board_id}/lists", token)).json()
    assert [lst["name"] for lst in open_lists] == ["Shopping", "This week", "Someday"]
    assert [lst["pos"] for lst in open_lists] == sorted(lst["pos"] for lst in open_lists)
    closed = await (await get(client, f"/1/boards/{board_id}/lists", token, filter="closed")).json()
    assert [(lst["name"], lst["closed"]) for lst in closed] == [("Last year", True)]
    assert len(await (await get(client, f"/1/boards/{board_id}/lists", token, filter="all")).json()) == 4


@pytest.mark.parametrize("which, expected", [
    (None, {"Write the onboarding guide", "Fix the login redirect", "Design the settings page", "Ship version 1.0"}),
    ("visible", {"Write the onboarding guide", "Fix the login redirect", "Design the settings page",
                 "Ship version 1.0"}),
    ("open", {"Write the onboarding guide", "Fix the login redirect", "Design the settings page",
              "Ship version 1.0", "Dark mode"}),
    ("closed", {"Try a spike on search"}),
    ("all", {"Write the onboarding guide", "Fix the login redirect", "Design the settings page",
             "Ship version 1.0", "Dark mode", "Try a spike on search"}),
])
async def test_board_cards_filter(client, fake, which, expected):
    token = fake.issue_token()
    board_id = board_named(fake, "Product Roadmap")["id"]
    params = {"filter": which} if which else {}
    cards = await (await get(client, f"/1/boards/{board_id}/cards", token, **params)).json()
    assert {c["name"] for c in cards} == expected
    assert all(c["idBoard"] == board_id for c in cards)


async def test_closed_board_is_still_readable(client, fake):
    token = fake.issue_token()
    board = board_named(fake, "Old Website")
    body = await (await get(client, f"/1/boards/{board['id']}", token, cards="open")).json()
    assert body["closed"] is True and [c["name"] for c in body["cards"]] == ["Migrate the blog"]


@pytest.mark.parametrize("path", ["/1/boards/{}", "/1/boards/{}/lists", "/1/boards/{}/cards", "/1/cards/{}"])
async def test_malformed_and_unknown_ids(client, fake, path):
    token = fake.issue_token()
    await expect_text(await get(client, path.format("not-an-id"), token), 400, "invalid id")
    await expect_text(await get(client, path.format("abc123"), token), 400, "invalid id")
    await expect_text(await get(client, path.format("0" * 24), token), 404, "The requested resource was not found.")


async def test_read_scope_is_needed_to_read(client, fake):
    token = fake.issue_token(scope="account")
    await expect_text(await get(client, "/1/members/me/boards", token), 401, "unauthorized permission requested")


# ---------------------------------------------------------------- cards


async def test_create_card_from_form(client, fake):
    token = fake.issue_token()
    todo = list_named(fake, "To Do")
    label = next(lid for lid, lab in fake.labels.items() if lab["idBoard"] == todo["idBoard"])
    resp = await client.post("/1/cards", headers=oauth(token), data={
        "idList": todo["id"], "name": "New card", "desc": "Details", "due": "2030-05-01T09:30:00Z",
        "idLabels": label, "idMembers": fake.member["id"]})
    assert resp.status == 200
    card = await resp.json()
    assert {"id", "name", "desc", "idList", "idBoard", "due", "dueComplete", "pos", "closed", "idLabels",
            "idMembers", "url", "shortUrl", "dateLastActivity"} <= set(card)
    assert HEX24.match(card["id"]) and card["id"] in fake.cards
    assert (card["name"], card["desc"], card["idList"], card["idBoard"]) == (
        "New card", "Details", todo["id"], todo["idBoard"])
    assert card["due"] == "2030-05-01T09:30:00.000Z" and card["dueComplete"] is False
    assert card["idLabels"] == [label] and card["idMembers"] == [fake.member["id"]]
    assert card["closed"] is False
    others = [c["pos"] for c in fake.cards.values() if c["idList"] == todo["id"] and c["id"] != card["id"]]
    assert card["pos"] > max(others)  # bottom by default
    assert fake.calls[-1].form["name"] == "New card"


async def test_create_card_from_json_and_query_with_positions(client, fake):
    token = fake.issue_token()
    todo = list_named(fake, "To Do")
    existing = [c["pos"] for c in fake.cards.values() if c["idList"] == todo["id"]]
    top = await (await client.post("/1/cards", headers=oauth(token),
                                   json={"idList": todo["id"], "name": "Top", "pos": "top", "due": None})).json()
    assert top["pos"] < min(existing) and top["due"] is None
    assert fake.calls[-1].json["name"] == "Top"
    exact = await (await client.post("/1/cards", headers=oauth(token),
                                     params={"idList": todo["id"], "name": "Exact", "pos": "12345.5"})).json()
    assert exact["pos"] == 12345.5
    empty_list = list_named(fake, "Someday")
    first = await (await client.post("/1/cards", headers=oauth(token), json={"idList": empty_list["id"]})).json()
    assert first["pos"] > 0 and first["name"] == ""


@pytest.mark.parametrize("payload, text", [
    ({}, "invalid value for idList"),
    ({"idList": "nope"}, "invalid value for idList"),
    ({"idList": "0" * 24}, "invalid value for idList"),
    ({"pos": "middle"}, "invalid value for pos"),
    ({"pos": -3}, "invalid value for pos"),
    ({"due": "next tuesday"}, "invalid value for due"),
    ({"idLabels": "0" * 24}, "invalid value for idLabels"),
    ({"idMembers": "1" * 24}, "invalid value for idMembers"),
    ({"dueComplete": "maybe"}, "invalid value for dueComplete"),
])
async def test_create_card_bad_values_are_plain_400(client, fake, payload, text):
    token = fake.issue_token()
    before = len(fake.cards)
    body = {"name": "x", **payload}
    if payload and "idList" not in payload:
        body["idList"] = list_named(fake, "To Do")["id"]
    await expect_text(await client.post("/1/cards", headers=oauth(token), json=body), 400, text)
    assert len(fake.cards) == before


async def test_update_card(client, fake):
    token = fake.issue_token()
    card = card_named(fake, "Fix the login redirect")
    doing = list_named(fake, "Doing")
    resp = await client.put(f"/1/cards/{card['id']}", headers=oauth(token), json={
        "name": "Fixed login", "desc": "done", "idList": doing["id"], "pos": "top",
        "due": "2031-01-02", "dueComplete": True})
    assert resp.status == 200
    updated = await resp.json()
    assert (updated["name"], updated["desc"], updated["idList"]) == ("Fixed login", "done", doing["id"])
    assert updated["due"] == "2031-01-02T00:00:00.000Z" and updated["dueComplete"] is True
    in_doing = [c["pos"] for c in fake.cards.values() if c["idList"] == doing["id"] and c["id"] != card["id"]]
    assert updated["pos"] < min(in_doing)
    assert fake.cards[card["id"]]["name"] == "Fixed login"
    closed = await (await client.put(f"/1/cards/{card['id']}", headers=oauth(token),
                                     data={"closed": "true", "due": ""})).json()
    assert closed["closed"] is True and closed["due"] is None
    board_id = card["idBoard"]
    visible = await (await get(client, f"/1/boards/{board_id}/cards", token)).json()
    assert card["id"] not in {c["id"] for c in visible}


async def test_update_card_errors(client, fake):
    token = fake.issue_token()
    card = card_named(fake, "Buy milk")
    await expect_text(await client.put("/1/cards/xyz", headers=oauth(token), json={"name": "a"}), 400, "invalid id")
    await expect_text(await client.put("/1/cards/" + "a" * 24, headers=oauth(token), json={"name": "a"}), 404,
                      "The requested resource was not found.")
    await expect_text(await client.put(f"/1/cards/{card['id']}", headers=oauth(token), json={"idList": "0" * 24}),
                      400, "invalid value for idList")
    await expect_text(await client.put(f"/1/cards/{card['id']}", headers=oauth(token), json={"closed": "perhaps"}),
                      400, "invalid value for closed")
    assert fake.cards[card["id"]]["closed"] is False


async def test_comment_on_card(client, fake):
    token = fake.issue_token()
    card = card_named(fake, "Buy milk")
    resp = await client.post(f"/1/cards/{card['id']}/actions/comments", headers=oauth(token),
                             params={"text": "Semi-skimmed, please"})
    assert resp.status == 200
    action = await resp.json()
    assert action["type"] == "commentCard" and HEX24.match(action["id"])
    assert action["idMemberCreator"] == fake.member["id"]
    assert action["data"]["text"] == "Semi-skimmed, please"
    assert action["data"]["card"]["id"] == card["id"] and action["data"]["card"]["name"] == "Buy milk"
    assert action["data"]["board"]["id"] == card["idBoard"]
    assert action["data"]["list"]["id"] == card["idList"]
    datetime.fromisoformat(action["date"])
    assert fake.comments == [action]
    by_json = await client.post(f"/1/cards/{card['id']}/actions/comments", headers=oauth(token), json={"text": "2"})
    assert by_json.status == 200 and len(fake.comments) == 2


async def test_comment_errors(client, fake):
    token = fake.issue_token()
    card = card_named(fake, "Buy milk")
    for body in ({}, {"text": ""}, {"text": "   "}):
        resp = await client.post(f"/1/cards/{card['id']}/actions/comments", headers=oauth(token), data=body)
        await expect_text(resp, 400, "invalid value for text")
    resp = await client.post("/1/cards/" + "b" * 24 + "/actions/comments", headers=oauth(token), data={"text": "x"})
    await expect_text(resp, 404, "The requested resource was not found.")
    assert fake.comments == []


async def test_writes_need_write_scope(client, fake):
    token = fake.issue_token(scope="read")
    card = card_named(fake, "Buy milk")
    text = "unauthorized permission requested"
    await expect_text(await client.post("/1/cards", headers=oauth(token),
                                        data={"idList": card["idList"], "name": "x"}), 401, text)
    await expect_text(await client.put(f"/1/cards/{card['id']}", headers=oauth(token), data={"name": "x"}), 401, text)
    await expect_text(await client.post(f"/1/cards/{card['id']}/actions/comments", headers=oauth(token),
                                        data={"text": "x"}), 401, text)
    assert card["name"] == "Buy milk" and fake.comments == []
    assert (await get(client, "/1/members/me/boards", token)).status == 200


async def test_invalid_json_body(client, fake):
    token = fake.issue_token()
    resp = await client.post("/1/cards", headers={**oauth(token), "Content-Type": "application/json"}, data="{oops")
    await expect_text(resp, 400, "invalid json")


# ---------------------------------------------------------------- rate limits


async def test_101st_request_in_window_is_429_json(client, fake):
    token = fake.issue_token()
    for i in range(100):
        resp = await get(client, "/1/members/me/boards", token)
        assert resp.status == 200, i
    assert resp.headers["x-rate-limit-api-token-remaining"] == "0"
    resp = await get(client, "/1/members/me/boards", token)
    assert resp.status == 429
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
    assert "Retry-After" not in resp.headers
    for name in RATE_HEADERS:
        assert name in resp.headers
    assert resp.headers["x-rate-limit-api-token-max"] == "100"
    assert resp.headers["x-rate-limit-api-token-remaining"] == "0"
    assert resp.headers["x-rate-limit-api-token-interval-ms"] == "10000"
    assert resp.headers["x-rate-limit-api-key-max"] == "300"
    assert fake.throttled == 1
    # The limit is per token: another member token of the same key is still served.
    assert (await get(client, "/1/members/me/boards", fake.issue_token())).status == 200


async def test_rate_headers_count_down(client, fake):
    token = fake.issue_token()
    first = await get(client, "/1/members/me/boards", token)
    second = await get(client, "/1/members/me/boards", token)
    for resp in (first, second):
        for name in RATE_HEADERS:
            assert name in resp.headers
    assert first.headers["x-rate-limit-api-token-remaining"] == "99"
    assert second.headers["x-rate-limit-api-token-remaining"] == "98"
    assert second.headers["x-rate-limit-api-key-remaining"] == "298"
    # An error answer carries them too.
    missing = await get(client, "/1/boards/" + "0" * 24, token)
    assert missing.status == 404 and missing.headers["x-rate-limit-api-token-remaining"] == "97"


class FakeClock:
    """Stands in for the ``time`` module inside the fake: ``monotonic()`` (what the rate
    windows are measured on) reads ``now``, which the test moves; the rest is the real one."""

    def __init__(self, now):
        self.now = now

    def monotonic(self):
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


async def test_window_slides(aiohttp_client, monkeypatch):
    clock = FakeClock(1000.0)
    monkeypatch.setattr(sys.modules[FakeCall.__module__], "time", clock)  # where calls get their arrival time
    fake = FakeTrello(token_limit=2, window=0.15)
    client = await aiohttp_client(fake.make_app())
    token = fake.issue_token()
    assert [(await get(client, "/1/members/me/boards", token)).status for _ in range(3)] == [200, 200, 429]
    assert fake.throttled == 1
    clock.now += 0.14  # still inside the window of the first two calls
    assert (await get(client, "/1/members/me/boards", token)).status == 429
    clock.now += 0.02  # past it
    resp = await get(client, "/1/members/me/boards", token)
    assert resp.status == 200
    assert resp.headers["x-rate-limit-api-token-interval-ms"] == "150"


async def test_key_limit_spans_tokens(aiohttp_client):
    fake = FakeTrello(key_limit=3)
    client = await aiohttp_client(fake.make_app())
    tokens = [fake.issue_token() for _ in range(4)]
    for token in tokens[:3]:
        assert (await get(client, "/1/members/me/boards", token)).status == 200
    resp = await get(client, "/1/members/me/boards", tokens[3])
    assert resp.status == 429
    assert await resp.json() == {"error": "API_KEY_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
    assert resp.headers["x-rate-limit-api-key-remaining"] == "0"
    assert "Retry-After" not in resp.headers


async def test_members_endpoint_has_its_own_limit(client, fake):
    fake.members_limit = 2
    token = fake.issue_token()
    assert (await get(client, "/1/members/me", token)).status == 200
    assert (await get(client, "/1/members/me", token)).status == 200
    resp = await get(client, "/1/members/me", token)
    assert resp.status == 429 and (await resp.json())["error"] == "API_TOKEN_LIMIT_EXCEEDED"
    # Nested member routes are not part of that limit.
    assert (await get(client, "/1/members/me/boards", token)).status == 200


async def test_too_many_refusals_lock_the_key(aiohttp_client):
    fake = FakeTrello(token_limit=1, window=5.0)
    fake.key_refusal_limit = 2
    client = await aiohttp_client(fake.make_app())
    greedy, polite = fake.issue_token(), fake.issue_token()
    statuses = [(await get(client, "/1/members/me/boards", greedy)).status for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    resp = await get(client, "/1/members/me/boards", polite)
    assert resp.status == 429 and (await resp.json())["error"] == "API_KEY_LIMIT_EXCEEDED"
    assert fake.throttled == 4


async def test_rate_limit_next(client, fake):
    token = fake.issue_token()
    fake.rate_limit_next(count=2)
    for _ in range(2):
        resp = await get(client, "/1/members/me", token)
        assert resp.status == 429
        assert await resp.json() == {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
        assert "Retry-After" not in resp.headers
    assert (await get(client, "/1/members/me", token)).status == 200
    assert fake.throttled == 2


async def test_unknown_key_is_not_counted(aiohttp_client):
    fake = FakeTrello(key_limit=1)
    client = await aiohttp_client(fake.make_app())
    token = fake.issue_token()
    for _ in range(3):
        resp = await client.get("/1/members/me", headers=oauth(token, key="other"))
        assert resp.status == 401
        assert "x-rate-limit-api-key-max" not in resp.headers
    assert (await get(client, "/1/members/me", token)).status == 200


# ---------------------------------------------------------------- switches, recording, server


async def test_fail_next_answers_plain_text_by_prefix_and_count(client, fake):
    token = fake.issue_token()
    fake.fail_next(503, path="/1/boards", count=2)
    assert (await get(client, "/1/members/me", token)).status == 200
    board_id = board_named(fake, "Household")["id"]
    await expect_text(await get(client, f"/1/boards/{board_id}", token), 503, "Service Unavailable")
    assert (await get(client, f"/1/boards/{board_id}/lists", token)).status == 503
    assert (await get(client, f"/1/boards/{board_id}", token)).status == 200
    fake.fail_next(400, "invalid id")
    assert (await client.get("/1/authorize", params=authorize_params())).status == 200  # never the consent page
    await expect_text(await get(client, f"/1/boards/{board_id}", token), 400, "invalid id")


async def test_delay_and_calls_to(client, fake):
    token = fake.issue_token()
    fake.delay = 0.05
    started = time.monotonic()
    await get(client, "/1/members/me", token)
    assert time.monotonic() - started >= 0.05
    fake.delay = 0
    card = card_named(fake, "Buy milk")
    await client.put(f"/1/cards/{card['id']}", headers=oauth(token), data={"name": "Buy oat milk"})
    assert len(fake.calls_to("/1/cards")) == 1
    assert len(fake.calls_to("/1/cards", "put")) == 1
    assert fake.calls_to("/1/cards", "POST") == []
    assert len(fake.calls_to("/1/members/me", "GET")) == 1
    await client.get("/1/nowhere")
    assert fake.calls[-1].path == "/1/nowhere"


async def test_seed_shape(fake):
    assert sum(not b["closed"] for b in fake.boards.values()) == 2
    assert sum(b["closed"] for b in fake.boards.values()) == 1
    for board in fake.boards.values():
        if board["closed"]:
            continue
        lists = [lst for lst in fake.lists.values() if lst["idBoard"] == board["id"]]
        assert sorted(lst["closed"] for lst in lists) == [False, False, False, True]
    assert any(c["closed"] for c in fake.cards.values())
    assert all(HEX24.match(i) for i in [*fake.boards, *fake.lists, *fake.cards, fake.member["id"]])
    assert [b["id"] for b in FakeTrello().boards.values()] == list(fake.boards)  # deterministic seed


async def test_served_over_tcp_with_the_kit_and_steered_by_control_routes():
    fake = FakeTrello()
    base_url = await fake.start()
    try:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", base_url)
        assert fake.hub_settings() == {"api_key": KEY, "app_secret": "fake-trello-secret", "urls": {"authorize": f"{base_url}/1/authorize", "api": f"{base_url}/1"}}
        location = await press_consent(f"{base_url}/1/authorize?{urlencode(authorize_params())}")
        token = urlsplit(location).fragment[len("token="):]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/1/members/me", headers=oauth(token)) as resp:
                assert resp.status == 200 and (await resp.json())["username"] == "ada"
            await session.post(f"{base_url}/_fake/rate_limit_next", json={"retry_after": 7})
            async with session.get(f"{base_url}/1/members/me", headers=oauth(token)) as resp:
                assert resp.status == 429 and "Retry-After" not in resp.headers
                assert resp.headers["x-rate-limit-api-token-remaining"] == "0"
                assert await resp.json() == {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
            await session.post(f"{base_url}/_fake/expire_tokens")
            async with session.get(f"{base_url}/1/members/me", headers=oauth(token)) as resp:
                assert (resp.status, await resp.text()) == (401, "invalid token")
    finally:
        await fake.stop()


async def test_what_it_issued_and_holds_survives_a_restart(aiohttp_client, client, fake):
    fake.clock = lambda: 1_700_000_000.0  # new ids carry the time: fixed, they depend on the generator alone
    token, gone = fake.issue_token(), fake.issue_token()
    assert (await client.delete(f"/1/tokens/{gone}", headers=oauth(token))).status == 200
    todo = list_named(fake, "To Do")["id"]
    kept = await (await client.post("/1/cards", headers=oauth(token), json={"idList": todo, "name": "Kept"})).json()

    reborn = FakeTrello()
    reborn.clock = fake.clock
    reborn.import_state(json.loads(json.dumps(fake.export_state())))  # as the sandbox writes it to disk
    again = await aiohttp_client(reborn.make_app())
    assert (await (await get(again, f"/1/cards/{kept['id']}", token)).json())["name"] == "Kept"
    await expect_text(await get(again, "/1/members/me", gone), 401, "invalid token")
    fresh = await (await again.post("/1/cards", headers=oauth(token), json={"idList": todo, "name": "New"})).json()
    # The id generator carries on where it stopped: nothing new takes an id handed out before.
    handed_out = {*fake.cards, *fake.lists, *fake.boards, *fake.labels, *(t.extra["id"] for t in fake.tokens.values())}
    assert fresh["id"] not in handed_out and fresh["shortLink"] != kept["shortLink"]
    assert reborn.issued == fake.issued and reborn.revoked_tokens == {gone}

"""The Trello plugin in a running hub against its fake, set up with hub.testing alone: the token
flow through Trello's consent page, every action, Trello's errors as the hub's, and revocation."""

from urllib.parse import parse_qsl, urlsplit

import pytest

import hub_trello
from hub.testing import auth_headers, press_consent
from hub_trello.fake import FakeTrello

T = "/api/integrations/trello"


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.fixture
async def client(make_hub):
    return await make_hub(hub_trello, FakeTrello(api_key="trello-key-for-tests"), settings={"app_name": "Hub Tests"})


async def start_connect(client, user: str = "alice") -> tuple[str, str]:
    """The authorization URL the hub hands out, and the state riding in its return_url."""
    resp = await client.get(f"{T}/connect", headers=auth_headers(user))
    auth_url = (await resp.json())["data"]["authUrl"]
    return auth_url, query_of(query_of(auth_url)["return_url"])["state"]


async def connect(client, user: str = "alice", **token_kw) -> str:
    """What the callback page's script does once Trello's page hands back the token: post it with the state."""
    _, state = await start_connect(client, user)
    token = client.fake.issue_token(**token_kw)
    resp = await client.post(f"{T}/tokens", json={"token": token, "state": state})
    assert resp.status == 201, await resp.text()
    return token


async def call(client, method: str, path: str, body=None, user: str = "alice"):
    resp = await client.request(method, f"{T}{path}", json=body, headers=auth_headers(user))
    return resp.status, await resp.json()


async def test_consent_page_hands_the_token_back_in_the_fragment(client):
    auth_url, state = await start_connect(client)
    q = query_of(auth_url)
    assert (q["key"], q["name"], q["scope"], q["expiration"]) == ("trello-key-for-tests", "Hub Tests", "read,write", "30days")
    assert (q["response_type"], q["callback_method"]) == ("token", "fragment")
    assert q["return_url"].startswith(f"{client.hub.config.public_url}{T}/callback?state=")
    location = await press_consent(auth_url)
    token = dict(parse_qsl(urlsplit(location).fragment))["token"]
    page = await client.get(f"{urlsplit(location).path}?{urlsplit(location).query}")  # its script posts the fragment
    assert (page.status, page.content_type) == (200, "text/html")
    resp = await client.post(f"{T}/tokens", json={"token": token, "state": state})
    data = (await resp.json())["data"]
    assert resp.status == 201 and data["status"] == "ACTIVE" and data["tokenExpiresAt"] is not None
    assert data["account"]["username"] == "ada"
    resp = await client.post(f"{T}/tokens", json={"token": token, "state": state})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "state_replayed"


async def test_denied_consent_stores_nothing(client):
    auth_url, _ = await start_connect(client)
    assert urlsplit(await press_consent(auth_url, "deny")).fragment == "error=access_denied"
    assert (await client.get(T, headers=auth_headers("alice"))).status == 404
    assert client.fake.issued == []


async def test_bad_state_and_pasted_tokens(client):
    resp = await client.get(f"{T}/callback?state=forged")
    assert resp.status == 400 and "state" in await resp.text()
    resp = await client.post(f"{T}/tokens", json={"token": "a" * 64, "state": "forged"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_state"
    resp = await client.post(f"{T}/tokens", json={"token": "f" * 64}, headers=auth_headers("alice"))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "token_rejected"
    pasted = client.fake.issue_token(expiration="never")
    resp = await client.post(f"{T}/tokens", json={"token": pasted}, headers=auth_headers("alice"))
    assert resp.status == 201 and (await resp.json())["data"]["tokenExpiresAt"] is None


async def test_every_action(client):
    await connect(client)
    status, boards = await call(client, "GET", "/boards")
    assert status == 200 and {b["name"] for b in boards["data"]} == {"Product Roadmap", "Household"}  # not the closed one
    roadmap = next(b["id"] for b in boards["data"] if b["name"] == "Product Roadmap")
    board = (await call(client, "GET", f"/boards/{roadmap}"))[1]["data"]
    assert [li["name"] for li in board["lists"]] == ["To Do", "Doing", "Done"]
    assert "Dark mode" not in {c["name"] for c in board["cards"]}  # its list is closed
    lists = (await call(client, "GET", f"/boards/{roadmap}/lists"))[1]["data"]
    cards = (await call(client, "GET", f"/boards/{roadmap}/cards"))[1]["data"]
    assert len(lists) == 3 and "Try a spike on search" not in {c["name"] for c in cards}  # closed

    new = {"idList": lists[0]["id"], "name": "From the hub", "desc": "d", "pos": "top", "due": "2026-12-01T10:00:00Z"}
    status, card = await call(client, "POST", "/cards", new)
    card = card["data"]
    assert status == 200 and card["name"] == "From the hub" and card["due"].startswith("2026-12-01")
    status, updated = await call(client, "PUT", f"/cards/{card['id']}", {"name": "Renamed", "dueComplete": True, "idList": lists[1]["id"]})
    assert status == 200 and (updated["data"]["name"], updated["data"]["idList"]) == ("Renamed", lists[1]["id"])
    status, comment = await call(client, "POST", f"/cards/{card['id']}/comments", {"text": "Looks good"})
    assert status == 200 and comment["data"]["type"] == "commentCard" and client.fake.comments[-1]["data"]["text"] == "Looks good"


async def test_mistakes_are_caught_before_trello(client):
    await connect(client)
    before = len(client.fake.calls)
    for method, path, body, field in [
        ("POST", "/cards", {"name": "no list"}, "idList"),
        ("POST", "/cards", {"idList": "nope"}, "idList"),
        ("POST", "/cards", {"idList": "a" * 24, "pos": "middle"}, "pos"),
        ("POST", "/cards", {"idList": "a" * 24, "due": "tomorrow"}, "due"),
        ("PUT", f"/cards/{'a' * 24}", {}, "(input)"),
        ("PUT", f"/cards/{'a' * 24}", {"closed": "yes"}, "closed"),
        ("POST", f"/cards/{'a' * 24}/comments", {"text": ""}, "text"),
        ("GET", "/boards/not-an-id", None, "board_id"),
    ]:
        status, body_ = await call(client, method, path, body)
        assert status == 400 and field in [p["field"] for p in body_["error"]["details"]["problems"]], (path, body, body_)
    assert len(client.fake.calls) == before


async def test_trellos_errors_become_the_hubs(client):
    await connect(client)
    status, body = await call(client, "GET", f"/boards/{'0' * 24}")
    assert status == 404 and "The requested resource was not found." in body["error"]["message"]
    client.fake.rate_limit_next()  # Trello sends no Retry-After: the hub passes on its window's length
    resp = await client.post(f"{T}/cards", json={"idList": "a" * 24, "name": "x"}, headers=auth_headers("alice"))
    assert (resp.status, resp.headers["Retry-After"]) == (429, "10")
    assert (await resp.json())["error"]["details"]["providerError"] == "API_TOKEN_LIMIT_EXCEEDED"
    client.fake.revoke_all()
    status, body = await call(client, "GET", "/boards")
    assert status == 409 and body["error"]["code"] == "reconnect_required" and "invalid token" in body["error"]["message"]
    assert (await call(client, "GET", ""))[1]["data"]["status"] == "ERROR"


async def test_disconnect_revokes_at_trello(client):
    token = await connect(client)
    status, body = await call(client, "DELETE", "/disconnect")
    assert status == 200 and body["data"]["status"] == "INACTIVE"
    assert token in client.fake.revoked_tokens
    assert [c.method for c in client.fake.calls_to("/1/tokens/")][-1] == "DELETE"


@pytest.mark.parametrize("expiration", ["1hour", "never"])
async def test_expiration_setting_reaches_trello(make_hub, expiration):
    client = await make_hub(hub_trello, FakeTrello(), settings={"expiration": expiration})
    auth_url, _ = await start_connect(client)
    assert query_of(auth_url)["expiration"] == expiration
    location = await press_consent(auth_url)
    token = dict(parse_qsl(urlsplit(location).fragment))["token"]
    assert (client.fake.tokens[token].expires_at is None) == (expiration == "never")

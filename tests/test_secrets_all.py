"""Issue 6, item 2: no secret that passed through the hub is left anywhere it can be read.

One hub serves Slack (with token rotation), Trello and Google Calendar against their fakes.
Each provider goes through a full life: connect through the consent page, successful and
failing actions, refreshes (asked for, on use, and after the provider refuses a stale
token), a client-supplied token, revocation, disconnect and delete. Afterwards every
credential that was used anywhere in those flows - access and refresh tokens the fakes
issued, authorization codes, OAuth states, PKCE verifiers, client secrets, tokens a client
pasted in, the JWTs and the JWT secret - is searched for in:

* the database as stored: the SQLite file with its -wal/-shm/-journal companions read as
  raw bytes, or on PostgreSQL every row of every table cast to text;
* everything the hub logged (captured at DEBUG; ``aiohttp.access`` records are left out
  because only the fake providers' own servers write them - the hub serves without one);
* every response the hub gave (body and headers), except that a connect response may
  carry its own state inside ``authUrl`` (the state has to reach the browser), so that
  one response is searched for everything but its own state;
* every activity row and integration row, read through the ORM.

Zero hits anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from conftest import serve_hub
from helpers import callback_path, consent, query_of
from support import JWT_SECRET, PG_URL, auth, google_section, slack_section, trello_section

S, T, G = "/api/integrations/slack", "/api/integrations/trello", "/api/integrations/google_calendar"


class Browser:
    """The hub's client side: every request goes through here and every answer is kept."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.answers: list[tuple[str, str]] = []  # (what, body + headers)
        self.connects: list[tuple[str, str, str]] = []  # (what, answer, the state it may carry)

    async def call(self, method: str, path: str, *, expect: int | None = None, **kw: Any) -> tuple[int, Any]:
        resp = await self.client.request(method, path, allow_redirects=False, **kw)
        body = await resp.text()
        what = f"{method} {path} -> {resp.status}"
        self.answers.append((what, body + "\n" + json.dumps(list(resp.headers.items()))))
        if expect is not None:
            assert resp.status == expect, (what, body)
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body

    async def connect(self, base: str, user: str) -> str:
        """GET .../connect; returns the authUrl. Kept apart: the answer holds the state."""
        resp = await self.client.get(f"{base}/connect", headers=auth(user))
        body = await resp.text()
        assert resp.status == 200, body
        auth_url = json.loads(body)["data"]["authUrl"]
        q = query_of(auth_url)
        state = q.get("state") or query_of(q["return_url"])["state"]
        self.connects.append((f"GET {base}/connect", body + "\n" + json.dumps(list(resp.headers.items())), state))
        return auth_url


async def mint_slack_token(fake: Any) -> tuple[str, str]:
    """A token obtained from Slack outside the hub (another install of the app): (token, code)."""
    redirect = "https://elsewhere.example.org/slack"
    query = urlencode({"client_id": fake.client_id, "scope": "channels:read,chat:write,users:read", "redirect_uri": redirect, "state": "x"})
    code = query_of(await consent(f"{fake.base_url}/oauth/v2/authorize?{query}"))["code"]
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret, "code": code, "redirect_uri": redirect}
    async with aiohttp.ClientSession() as session, session.post(f"{fake.base_url}/api/oauth.v2.access", data=form) as resp:
        body = await resp.json()
    assert body["ok"], body
    return body["access_token"], code


async def slack_life(b: Browser, fake: Any, used: list[str]) -> None:
    h = auth("alice")
    fake.rotation = True  # refresh tokens, rotated on every refresh
    auth_url = await b.connect(S, "alice")
    used.append(query_of(auth_url)["state"])
    location = await consent(auth_url)
    used.append(query_of(location)["code"])
    await b.call("GET", callback_path(location), expect=200)  # the HTML result page
    await b.call("GET", callback_path(location), headers={"Accept": "application/json"}, expect=400)  # replayed
    await b.call("POST", f"{S}/message", json={"channel": "general", "text": "hello"}, headers=h, expect=200)
    await b.call("POST", f"{S}/message", json={"channel": "nowhere", "text": "hello"}, headers=h, expect=404)
    await b.call("POST", f"{S}/message", json={"channel": "general"}, headers=h, expect=400)
    await b.call("GET", f"{S}/channels", params={"limit": "2"}, headers=h, expect=200)
    await b.call("GET", f"{S}/users/U0000000002", headers=h, expect=200)
    await b.call("GET", f"{S}/users/U0000000099", headers=h, expect=404)
    await b.call("POST", f"{S}/refresh", headers=h, expect=200)
    fake.expire_tokens()  # Slack says token_expired: one refresh, then the retry
    await b.call("GET", f"{S}/channels", headers=h, expect=200)
    await b.client.db.expire_token("alice", "slack")  # our clock says expired: refresh before use
    await b.call("GET", f"{S}/status", headers=h, expect=200)
    fake.slack_error_next("chat.postMessage", "ratelimited")
    await b.call("POST", f"{S}/message", json={"channel": "general", "text": "x"}, headers=h)
    await b.call("PATCH", f"{S}/status", json={"status": "INACTIVE"}, headers=h, expect=200)
    await b.call("POST", f"{S}/message", json={"channel": "general", "text": "x"}, headers=h, expect=409)
    await b.call("PATCH", f"{S}/status", json={"status": "ACTIVE"}, headers=h, expect=200)
    for path in ("logs", "stats", "stats/daily"):
        await b.call("GET", f"{S}/{path}", headers=h, expect=200)
    await b.call("GET", S, headers=h, expect=200)
    await b.call("GET", "/api/integrations", headers=h, expect=200)
    await b.call("DELETE", f"{S}/disconnect", headers=h, expect=200)

    # a client pastes tokens in: one Slack never issued, then a real one from another install
    pasted = "xoxb-0000000000-pasted-by-a-client-but-not-real"
    used.append(pasted)
    await b.call("POST", f"{S}/tokens", json={"token": pasted}, headers=auth("bob"), expect=400)
    token, code = await mint_slack_token(fake)
    used.append(code)
    await b.call("POST", f"{S}/tokens", json={"token": token}, headers=auth("bob"), expect=201)
    await b.call("POST", f"{S}/message", json={"channel": "general", "text": "bob"}, headers=auth("bob"), expect=200)
    fake.revoke_all()  # Slack: token_revoked -> ERROR
    await b.call("POST", f"{S}/message", json={"channel": "general", "text": "bob"}, headers=auth("bob"), expect=409)
    await b.call("GET", S, headers=auth("bob"), expect=200)
    await b.call("DELETE", S, headers=auth("bob"), expect=200)


async def trello_life(b: Browser, fake: Any, used: list[str]) -> None:
    h = auth("alice")
    for round_ in range(2):
        auth_url = await b.connect(T, "alice")
        state = query_of(query_of(auth_url)["return_url"])["state"]
        used.append(state)
        location = await consent(auth_url)  # Trello sends the browser to return_url#token=...
        token = query_of("?" + urlsplit(location).fragment)["token"]
        await b.call("GET", callback_path(location), expect=200)  # the page whose script posts the fragment
        await b.call("POST", f"{T}/tokens", json={"token": token, "state": state}, expect=201)
        await b.call("POST", f"{T}/tokens", json={"token": token, "state": state}, expect=400)  # state used up
        if round_ == 0:
            status, body = await b.call("GET", f"{T}/boards", headers=h, expect=200)
            board = body["data"][0]["id"]
            await b.call("GET", f"{T}/boards/{board}", headers=h, expect=200)
            status, lists = await b.call("GET", f"{T}/boards/{board}/lists", headers=h, expect=200)
            await b.call("GET", f"{T}/boards/{board}/cards", headers=h, expect=200)
            await b.call("GET", f"{T}/boards/{'0' * 24}", headers=h, expect=404)
            status, card = await b.call("POST", f"{T}/cards", json={"idList": lists["data"][0]["id"], "name": "n"}, headers=h, expect=200)
            await b.call("PUT", f"{T}/cards/{card['data']['id']}", json={"name": "renamed"}, headers=h, expect=200)
            await b.call("POST", f"{T}/cards/{card['data']['id']}/comments", json={"text": "hi"}, headers=h, expect=200)
            await b.call("POST", f"{T}/cards", json={"idList": "nope"}, headers=h, expect=400)
            fake.rate_limit_next(count=1)
            await b.call("POST", f"{T}/cards", json={"idList": lists["data"][0]["id"], "name": "n"}, headers=h, expect=429)
            await b.call("GET", f"{T}/status", headers=h, expect=200)
            await b.call("GET", f"{T}/logs", headers=h, expect=200)
            await b.call("DELETE", f"{T}/disconnect", headers=h, expect=200)  # revoked at Trello (token in its path)
    fake.revoke_all()
    await b.call("GET", f"{T}/boards", headers=h, expect=409)  # invalid token -> ERROR
    await b.call("GET", T, headers=h, expect=200)
    await b.call("DELETE", T, headers=h, expect=200)


async def google_life(b: Browser, fake: Any, used: list[str]) -> None:
    h = auth("alice")
    fake.rotate_refresh_tokens = True
    auth_url = await b.connect(G, "alice")
    used.append(query_of(auth_url)["state"])
    location = await consent(auth_url)
    used.append(query_of(location)["code"])
    await b.call("GET", callback_path(location), headers={"Accept": "application/json"}, expect=200)
    await b.call("GET", f"{G}/calendars", headers=h, expect=200)
    event = {"summary": "Meeting", "start": {"dateTime": "2026-06-01T10:00:00+02:00"}, "end": {"dateTime": "2026-06-01T11:00:00+02:00"}}
    status, created = await b.call("POST", f"{G}/events", json=event, headers=h, expect=200)
    await b.call("GET", f"{G}/events", params={"maxResults": "2"}, headers=h, expect=200)
    await b.call("PATCH", f"{G}/events/{created['data']['id']}", json={"summary": "Renamed"}, headers=h, expect=200)
    await b.call("PATCH", f"{G}/events/nosuchevent1", json={"summary": "x"}, headers=h, expect=404)
    await b.call("GET", f"{G}/availability", params={"timeMin": "2026-06-01T00:00:00Z", "timeMax": "2026-06-03T00:00:00Z"}, headers=h, expect=200)
    await b.call("POST", f"{G}/sync", json={}, headers=h, expect=200)
    await b.call("POST", f"{G}/refresh", headers=h, expect=200)
    await b.client.db.expire_token("alice", "google_calendar")  # refreshed before use
    await b.call("GET", f"{G}/calendars", headers=h, expect=200)
    fake.expire_tokens()  # Google says 401: one refresh, then the retry
    await b.call("GET", f"{G}/calendars", headers=h, expect=200)
    await b.call("DELETE", f"{G}/events/{created['data']['id']}", headers=h, expect=200)
    await b.call("GET", f"{G}/status", headers=h, expect=200)
    for path in ("logs", "stats", "stats/daily"):
        await b.call("GET", f"{G}/{path}", headers=h, expect=200)
    await b.call("DELETE", f"{G}/disconnect", headers=h, expect=200)
    await b.call("GET", f"{G}/calendars", headers=h, expect=409)
    await b.call("DELETE", G, headers=h, expect=200)


async def database_text(hub: Any, db_url: str) -> dict[str, bytes]:
    """The database as stored, as bytes to search."""
    if not PG_URL:
        path = Path(db_url.split(":///", 1)[1])
        files = [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
        out = {f.name: f.read_bytes() for f in files if f.exists()}
        assert path.name in out and len(out[path.name]) > 0
        return out
    out = {}
    async with hub.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names())
        assert {"integrations", "integration_logs", "oauth_states"} <= set(tables)
        for table in tables:
            rows = (await conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" AS t'))).scalars().all()
            out[table] = "\n".join(rows).encode()
    return out


async def test_full_flows_on_every_provider_leave_no_secret_behind(
    make_config, fake_slack, fake_trello, fake_google, aiohttp_client, db_url, caplog
):
    caplog.set_level(logging.DEBUG)
    sections = {"slack": slack_section(fake_slack), "trello": trello_section(fake_trello), "google_calendar": google_section(fake_google)}
    client = await serve_hub(make_config(providers=sections), aiohttp_client)
    hub = client.hub
    b = Browser(client)
    used: list[str] = []

    await slack_life(b, fake_slack, used)
    await trello_life(b, fake_trello, used)
    await google_life(b, fake_google, used)
    await client.db.settle()

    # --- what was used -------------------------------------------------------------------
    verifiers = [c.form["code_verifier"] for c in fake_google.calls_to("/token") if c.form.get("code_verifier")]
    assert verifiers, "the Google exchange carried no PKCE verifier"
    client_secrets = [sections["slack"]["client_secret"], sections["google_calendar"]["client_secret"]]
    jwts = [auth(u)["Authorization"].split()[1] for u in ("alice", "bob")]
    issued = {
        "slack": list(fake_slack.issued),
        "trello": list(fake_trello.issued_tokens),
        "google_calendar": list(fake_google.issued),
    }
    # every kind of credential really went through the flows
    assert len(issued["slack"]) >= 8, issued["slack"]  # access + refresh, connect and three refreshes, plus bob's
    assert any(t.startswith("xoxe-") for t in issued["slack"]), "Slack issued no refresh token"
    assert len(issued["trello"]) >= 2
    assert len(issued["google_calendar"]) >= 6  # access + refresh at connect and after each of the refreshes
    assert any(t.revoked for t in fake_slack.tokens.values()) and fake_trello.revoked_tokens and any(t.revoked for t in fake_google.tokens.values())
    secrets = {
        *(t for tokens in issued.values() for t in tokens), *used, *verifiers, *client_secrets, JWT_SECRET, *jwts,
    }
    short = [s for s in secrets if len(s) < 16]
    assert not short, f"values too short to search for without false hits: {short}"

    # --- where to look -----------------------------------------------------------------------
    haystacks: dict[str, bytes] = {}
    for name, raw in (await database_text(hub, db_url)).items():
        haystacks[f"database: {name}"] = raw
    hub_records = [r for r in caplog.records if r.name != "aiohttp.access"]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    haystacks["server log"] = "\n".join(formatter.format(r) for r in hub_records).encode()
    for what, answer in b.answers:
        haystacks[f"response to {what}"] = answer.encode()
    logs, integrations, states = await client.db.activity(), await client.db.integrations(), await client.db.states()
    haystacks["activity rows"] = json.dumps(
        [[r.kind, r.action, r.status, r.request_data, r.response_data, r.error_message] for r in logs], default=str
    ).encode()
    haystacks["integration rows"] = json.dumps(
        [[i.user_id, i.provider, i.status, i.status_reason, i.meta, i.scopes, i.access_token, i.refresh_token] for i in integrations],
        default=str,
    ).encode()
    haystacks["oauth state rows"] = json.dumps([[o.state_hash, o.code_verifier, o.return_url] for o in states], default=str).encode()

    # the search has something to search: the haystacks are full of the flows' traces
    assert len(b.answers) >= 60 and len(logs) >= 40 and len(states) == 4  # Slack, Trello twice, Google
    assert "POST /api/integrations/slack/message 200" in haystacks["server log"].decode()
    assert {"post_message", "create_card", "sync", "refresh_token", "revoke_token"} <= {r.action for r in logs}
    assert any(r.status == "FAILED" for r in logs) and any(r.kind == "transition" for r in logs)

    hits = [
        f"{where}: {secret[:6]}... ({len(secret)} chars)"
        for where, hay in haystacks.items()
        for secret in secrets
        if secret.encode() in hay
    ]
    # a connect answer may name its own state, and nothing else
    for what, answer, state in b.connects:
        assert state in answer  # (the exemption is needed, and used for nothing more)
        hits += [f"{what}: {s[:6]}..." for s in secrets if s != state and s in answer]
    assert hits == [], "secrets found:\n" + "\n".join(hits)

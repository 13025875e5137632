"""Issue 4: Google Calendar through the real HTTP server and the fake Google. What needs no more
than HTTP and the fake lives with the plugin (plugins/google_calendar/tests/test_plugin.py, on
hub.testing's fixtures); these read the hub's own rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode

from helpers import callback_path, consent, query_of
from procs import until
from support import auth

G = "/api/integrations/google_calendar"


async def connect_google(client, user="alice", *, drop_prompt=False):
    resp = await client.get(f"{G}/connect", headers=auth(user))
    assert resp.status == 200, await resp.text()
    auth_url = (await resp.json())["data"]["authUrl"]
    if drop_prompt:  # a re-consent without prompt=consent: Google sends no new refresh token
        q = query_of(auth_url)
        q.pop("prompt")
        auth_url = auth_url.split("?")[0] + "?" + urlencode(q)
    location = await consent(auth_url)
    resp = await client.get(callback_path(location), headers={"Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def call(client, method, path, user="alice", **kw):
    resp = await client.request(method, f"{G}/{path}", headers=auth(user), **kw)
    return resp.status, await resp.json()


async def test_full_flow(google_app, fake_google):
    client = google_app
    data = await connect_google(client)
    assert data["status"] == "ACTIVE" and data["account"]["email"] == "ada@example.com"
    assert data["hasRefreshToken"] is True
    exchange = fake_google.calls_to("/token")[0]
    assert exchange.form["code_verifier"]  # PKCE, checked by the fake against the challenge

    # create events, then list them across two pages
    created = []
    for day in range(1, 6):
        status, body = await call(client, "POST", "events", json={
            "summary": f"Meeting {day}", "location": "Room 1",
            "start": {"dateTime": f"2026-06-0{day}T10:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": f"2026-06-0{day}T11:00:00+02:00", "timeZone": "Europe/Berlin"},
            "attendees": [{"email": "grace@example.com"}],
        })
        assert status == 200, body
        created.append(body["data"]["id"])
    status, body = await call(client, "POST", "events", json={"summary": "Off", "start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}})
    assert status == 200 and body["data"]["start"] == {"date": "2026-06-08"}
    created.append(body["data"]["id"])

    seen, page = [], None
    while True:
        params = {"maxResults": "4", "timeMin": "2026-05-31T00:00:00Z", "timeMax": "2026-06-30T00:00:00Z"}
        if page:
            params["pageToken"] = page
        status, body = await call(client, "GET", "events", params=params)
        assert status == 200, body
        seen += [e["id"] for e in body["data"]["items"]]
        page = body["data"]["nextPageToken"]
        if not page:
            break
    assert sorted(seen) == sorted(created)
    assert len(fake_google.calls_to("/calendar/v3/calendars/primary/events", "GET")) >= 2

    status, body = await call(client, "PATCH", f"events/{created[0]}", json={"summary": "Renamed"})
    assert status == 200 and body["data"]["summary"] == "Renamed"
    status, body = await call(client, "DELETE", f"events/{created[1]}")
    assert status == 200 and body["data"] == {"deleted": True, "id": created[1]}
    status, body = await call(client, "DELETE", f"events/{created[1]}")
    assert status == 404  # Google answers 410 "deleted" for an event already gone

    # sync: full, then incremental, then a forced 410 -> full resync
    status, first = await call(client, "POST", "sync", json={})
    assert status == 200 and first["data"]["incremental"] is False
    assert first["data"]["changed"] == len(created) - 1
    fake_google.add_event(summary="Added elsewhere", start={"dateTime": "2026-06-10T09:00:00Z"}, end={"dateTime": "2026-06-10T10:00:00Z"})
    fake_google.delete_event("primary", created[2])
    status, second = await call(client, "POST", "sync", json={})
    assert status == 200, second
    assert second["data"]["incremental"] is True
    assert second["data"]["changed"] == 1 and second["data"]["deleted"] == 1
    assert second["data"]["deletedIds"] == [created[2]]
    assert any("syncToken" in c.query for c in fake_google.calls_to("/calendar/v3/calendars/primary/events", "GET"))
    fake_google.expire_sync_tokens()
    status, third = await call(client, "POST", "sync", json={})
    assert status == 200 and third["data"]["fullResync"] is True
    assert third["data"]["changed"] == len(created) - 2 + 1
    view = (await (await client.get(G, headers=auth("alice"))).json())["data"]
    assert view["lastSyncAt"] is not None and "syncTokens" not in view["account"]

    # the sync rows went PENDING -> SUCCESS with the counts
    rows = await client.db.activity(action="sync")
    assert [r.status for r in rows] == ["SUCCESS"] * 3
    assert rows[1].response_data["changed"] == 1 and rows[1].response_data["deleted"] == 1


async def test_sync_row_is_pending_while_it_runs(google_app, fake_google):
    await connect_google(google_app)
    fake_google.delay = 1.0  # the sync's first request to Google is held this long
    reached = len(fake_google.calls)
    task = asyncio.create_task(call(google_app, "POST", "sync", json={}))
    await until(lambda: len(fake_google.calls) > reached, 10, "the sync to reach Google")
    rows = await google_app.db.activity(action="sync")
    assert not task.done()
    assert rows and rows[0].status == "PENDING"
    status, _ = await task
    assert status == 200
    row = (await google_app.db.activity(action="sync"))[0]
    assert row.status == "SUCCESS" and row.duration_ms >= 900


async def test_two_hundred_calls_one_refresh(google_app, fake_google):
    await connect_google(google_app)
    # The access token has expired: by our stored expiry and by Google's own account.
    await google_app.db.expire_token(provider="google_calendar", ago=timedelta(seconds=1))
    fake_google.expire_tokens()
    before = fake_google.refresh_count
    answers = await asyncio.gather(*(call(google_app, "GET", "calendars") for _ in range(200)))
    assert [status for status, _ in answers] == [200] * 200
    assert fake_google.refresh_count - before == 1


async def test_revoked_refresh_token_means_reconnect(google_app, fake_google):
    await connect_google(google_app)
    fake_google.revoke_refresh_tokens()
    await google_app.db.expire_token(provider="google_calendar", ago=timedelta(seconds=1))
    status, body = await call(google_app, "GET", "calendars")
    assert status == 409 and body["error"]["code"] == "reconnect_required"
    assert "reconnect" in body["error"]["message"]
    row = await google_app.db.integration(provider="google_calendar")
    assert row.status == "ERROR" and "reconnect required" in row.status_reason


async def test_token_endpoint_outage_leaves_expired_then_recovers(google_app, fake_google):
    await connect_google(google_app)
    await google_app.db.expire_token(provider="google_calendar", ago=timedelta(seconds=1))
    fake_google.expire_tokens()
    fake_google.token_endpoint_error_next(503)
    status, body = await call(google_app, "GET", "calendars")
    assert status == 502 and body["error"]["code"] == "provider_unavailable"
    assert (await google_app.db.integration(provider="google_calendar")).status == "EXPIRED"
    status, body = await call(google_app, "GET", "calendars")
    assert status == 200, body
    assert (await google_app.db.integration(provider="google_calendar")).status == "ACTIVE"


async def test_401_refreshes_once_then_errors(google_app, fake_google):
    await connect_google(google_app)
    fake_google.expire_tokens()  # our clock thinks the token is fine; Google disagrees
    status, _ = await call(google_app, "GET", "calendars")
    assert status == 200 and fake_google.refresh_count == 1
    fake_google.google_error_next(401, "authError", path="/calendar/v3/users/me/calendarList", count=2)
    status, body = await call(google_app, "GET", "calendars")
    assert status == 409 and body["error"]["details"]["providerError"] == "authError"
    assert fake_google.refresh_count == 2
    assert (await google_app.db.integration(provider="google_calendar")).status == "ERROR"


async def test_reconsent_without_a_refresh_token_keeps_the_stored_one(google_app, fake_google):
    await connect_google(google_app)
    first = await google_app.db.integration(provider="google_calendar")
    await connect_google(google_app, drop_prompt=True)
    assert "refresh_token" not in fake_google.calls_to("/token")[-1].form  # sanity: an exchange
    second = await google_app.db.integration(provider="google_calendar")
    assert second.refresh_token is not None and second.access_token != first.access_token
    resp = await google_app.post(f"{G}/refresh", headers=auth("alice"))
    assert resp.status == 200, await resp.text()

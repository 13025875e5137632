"""The plugin through a running hub against the fake Google, set up with hub.testing's fixtures:
this file imports only the plugin, ``hub.testing`` and pytest."""

import pytest

import hub_google_calendar
from hub.testing import auth_headers, connect
from hub_google_calendar.fake import FakeGoogle

G = "/api/integrations/google_calendar"


@pytest.fixture
async def client(make_hub):
    """A hub serving the plugin against a fresh fake Google, with alice connected."""
    started = await make_hub(hub_google_calendar, FakeGoogle())
    resp = await connect(started)
    assert resp.status == 200, await resp.text()
    return started


async def call(client, method, path, **kw):
    resp = await client.request(method, f"{G}/{path}", headers=auth_headers("alice"), **kw)
    return resp.status, await resp.json()


async def test_connect_asks_for_offline_access_with_pkce_and_keeps_the_refresh_token(client):
    (page,) = client.fake.calls_to("/o/oauth2/v2/auth", "GET")
    q = page.query
    assert q["access_type"] == "offline" and q["prompt"] == "consent" and q["include_granted_scopes"] == "true"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert set(q["scope"].split()) >= {"https://www.googleapis.com/auth/calendar.events", "openid", "email"}
    (exchange,) = client.fake.calls_to("/token")
    assert exchange.form["code_verifier"]  # checked by the fake against the challenge
    view = (await (await client.get(G, headers=auth_headers("alice"))).json())["data"]
    assert view["status"] == "ACTIVE" and view["hasRefreshToken"] is True
    assert view["account"]["email"] == "ada@example.com"


async def test_calendars_action(client):
    status, body = await call(client, "GET", "calendars")
    assert status == 200
    assert any(c.get("primary") for c in body["data"]["items"])


async def test_availability_across_a_dst_change(client):
    # Europe/Berlin moves to summer time on Sunday 2026-03-29.
    client.fake.add_busy("2026-03-27T09:00:00Z", "2026-03-27T10:00:00Z")  # Friday 10:00-11:00 local (+01:00)
    client.fake.add_busy("2026-03-30T07:00:00Z", "2026-03-30T08:30:00Z")  # Monday 09:00-10:30 local (+02:00)
    client.fake.add_busy("2026-03-30T13:00:00Z", "2026-03-30T13:20:00Z")  # Monday 15:00-15:20
    status, body = await call(client, "GET", "availability", params={
        "timeMin": "2026-03-27T00:00:00+01:00", "timeMax": "2026-03-31T00:00:00+02:00",
        "timeZone": "Europe/Berlin", "minimumMinutes": "30",
    })
    assert status == 200, body
    assert [(s["start"], s["end"]) for s in body["data"]["slots"]] == [
        ("2026-03-27T09:00:00+01:00", "2026-03-27T10:00:00+01:00"),
        ("2026-03-27T11:00:00+01:00", "2026-03-27T17:00:00+01:00"),
        ("2026-03-30T10:30:00+02:00", "2026-03-30T15:00:00+02:00"),
        ("2026-03-30T15:20:00+02:00", "2026-03-30T17:00:00+02:00"),
    ]
    assert client.fake.calls_to("/calendar/v3/freeBusy")[-1].json["items"] == [{"id": "primary"}]


async def test_availability_input_is_checked(client):
    status, body = await call(client, "GET", "availability", params={"timeMin": "2026-03-27T00:00:00Z"})
    assert status == 400 and "timeMax" in body["error"]["message"]
    status, body = await call(client, "GET", "availability", params={
        "timeMin": "2026-03-27T00:00:00Z", "timeMax": "2026-03-28T00:00:00Z", "workdayStart": "18:00", "workdayEnd": "09:00"})
    assert status == 400


async def test_rate_limits(client):
    client.fake.google_error_next(403, "rateLimitExceeded", path="/calendar/v3/users/me/calendarList")
    status, _ = await call(client, "GET", "calendars")
    assert status == 200  # a read backs off and retries
    assert len(client.fake.calls_to("/calendar/v3/users/me/calendarList")) == 2
    client.fake.rate_limit_next(1, 9, path="/calendar/v3/calendars/primary/events")
    resp = await client.post(f"{G}/events", headers=auth_headers("alice"), json={
        "start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}})
    assert resp.status == 429 and resp.headers["Retry-After"] == "9"


async def test_unknown_event_is_a_404_with_googles_message(client):
    status, body = await call(client, "PATCH", "events/abcdefghij", json={"summary": "x"})
    assert status == 404 and body["error"]["details"]["providerError"] == "notFound"
    assert body["error"]["message"].startswith("Google Calendar:")


async def test_disconnect_revokes_at_google(client):
    resp = await client.delete(f"{G}/disconnect", headers=auth_headers("alice"))
    assert resp.status == 200
    assert len(client.fake.calls_to("/revoke")) == 1
    assert all(t.revoked for t in client.fake.tokens.values())

"""Tests for the fake Google server itself (hub_google_calendar.fake)."""

import base64
import hashlib
import json
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub.testing import FakeClock

try:
    from hub_google_calendar.fake import FakeGoogle
except ModuleNotFoundError:  # plugin not installed: run straight from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hub_google_calendar.fake import FakeGoogle

CLIENT_ID = "fake-google-client.apps.googleusercontent.com"
SECRET = "fake-google-secret"
REDIRECT = "https://hub.example/oauth/callback/google_calendar"
CAL = "https://www.googleapis.com/auth/calendar"
SCOPES = f"openid email profile {CAL}"
EVENTS = "/calendar/v3/calendars/primary/events"


@pytest.fixture
def fake():
    return FakeGoogle()


@pytest.fixture
async def client(aiohttp_client, fake):
    return await aiohttp_client(fake.make_app())


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def basic(client_id=CLIENT_ID, secret=SECRET):
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def authorize(client, decision="allow", **overrides):
    """Press a button on the consent page; return the redirect's query as a flat dict."""
    form = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPES,
            "access_type": "offline", "prompt": "", "include_granted_scopes": "true", "state": "st-1",
            "decision": decision, **overrides}
    resp = await client.post("/o/oauth2/v2/auth", data=form, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def token_request(client, headers=None, **form):
    resp = await client.post("/token", data=form, headers=headers)
    return resp.status, await resp.json()


async def connect(client, **authorize_overrides):
    """The whole dance with PKCE; returns the token response."""
    verifier, challenge = pkce_pair()
    query = await authorize(client, code_challenge=challenge, code_challenge_method="S256", **authorize_overrides)
    status, body = await token_request(client, code=query["code"], client_id=CLIENT_ID, client_secret=SECRET,
                                       redirect_uri=REDIRECT, grant_type="authorization_code",
                                       code_verifier=verifier)
    assert status == 200, body
    return body


async def refresh(client, refresh_token):
    return await token_request(client, grant_type="refresh_token", refresh_token=refresh_token,
                               client_id=CLIENT_ID, client_secret=SECRET)


def assert_google_error(body, code, reason):
    """The Calendar API error shape: key on code and reason."""
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["errors"][0]["reason"] == reason
    assert {"domain", "reason", "message"} <= set(error["errors"][0])


async def get_json(client, path, token, **params):
    resp = await client.get(path, params=params, headers=bearer(token))
    return resp.status, await resp.json()


# ---------------------------------------------------------------------- OAuth: authorize


async def test_consent_page_and_its_errors(client):
    _, challenge = pkce_pair()
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPES,
              "access_type": "offline", "state": "a<b", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    resp = await client.get("/o/oauth2/v2/auth", params=params)
    assert resp.status == 200
    page = await resp.text()
    assert '<button type="submit" name="decision" value="allow" id="allow">' in page
    assert 'id="deny"' in page
    assert f'name="code_challenge" value="{challenge}"' in page
    assert 'name="state" value="a&lt;b"' in page
    # self-contained: no script, and nothing loaded from elsewhere (the icon is an empty data: URL)
    assert "<script" not in page and not re.search(r'(href|src)="(?!data:)', page)

    resp = await client.get("/o/oauth2/v2/auth", params={**params, "client_id": "nobody"})
    assert resp.status == 400 and "invalid_client" in await resp.text()
    resp = await client.get("/o/oauth2/v2/auth", params={k: v for k, v in params.items() if k != "redirect_uri"})
    assert resp.status == 400 and "redirect_uri_mismatch" in await resp.text()
    resp = await client.get("/o/oauth2/v2/auth", params={**params, "code_challenge_method": "plain"})
    assert resp.status == 400 and "invalid_request" in await resp.text()


async def test_deny_and_allow_redirects(client):
    assert await authorize(client, decision="deny") == {"error": "access_denied", "state": "st-1"}
    query = await authorize(client)
    assert query["state"] == "st-1" and query["code"].startswith("4/")
    # the granted scope is Google's spelling, not the asked one
    assert set(query["scope"].split()) == {"openid", CAL, "https://www.googleapis.com/auth/userinfo.email",
                                           "https://www.googleapis.com/auth/userinfo.profile"}


# ---------------------------------------------------------------------- OAuth: token endpoint


async def test_pkce_is_verified(client, fake):
    verifier, challenge = pkce_pair()
    base = {"client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uri": REDIRECT,
            "grant_type": "authorization_code"}

    code = (await authorize(client, code_challenge=challenge, code_challenge_method="S256"))["code"]
    status, body = await token_request(client, **base, code=code, code_verifier="x" * 50)
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "Invalid code verifier."})
    status, body = await token_request(client, **base, code=code)
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await token_request(client, **{**base, "redirect_uri": "https://elsewhere.example/cb"},
                                       code=code, code_verifier=verifier)
    assert (status, body["error"]) == (400, "redirect_uri_mismatch")
    status, body = await token_request(client, **base, code=code, code_verifier=verifier)
    assert status == 200
    assert body["access_token"].startswith("ya29.") and body["refresh_token"].startswith("1//")
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    claims = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[1] + "=="))
    assert claims["email"] == "ada@example.com" and claims["aud"] == CLIENT_ID
    assert {code, body["access_token"], body["refresh_token"]} <= set(fake.issued)

    status, body = await token_request(client, **base, code=code, code_verifier=verifier)
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "Bad Request"})
    status, body = await token_request(client, **base, code="4/nonsense", code_verifier=verifier)
    assert (status, body["error_description"]) == (400, "Malformed auth code.")


async def test_client_authentication_and_grant_types(client):
    code = (await authorize(client))["code"]
    # HTTP Basic instead of form fields
    status, body = await token_request(client, headers=basic(), code=code, redirect_uri=REDIRECT,
                                       grant_type="authorization_code")
    assert status == 200 and "refresh_token" in body
    status, body = await token_request(client, headers=basic(client_id="stranger"), grant_type="refresh_token",
                                       refresh_token=body["refresh_token"])
    assert (status, body) == (401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
    status, body = await token_request(client, headers=basic(secret="wrong"), grant_type="refresh_token",
                                       refresh_token="x")
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = await token_request(client, headers=basic(), grant_type="password")
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_refresh_token_only_when_due(client, fake):
    assert "refresh_token" in await connect(client)  # first consent, offline
    assert "refresh_token" not in await connect(client)  # re-consent without prompt=consent
    assert "refresh_token" in await connect(client, prompt="consent")
    assert "refresh_token" not in await connect(client, prompt="consent", access_type="online")
    # the base mints a refresh token with every exchange; one not handed out is not kept either
    assert len([t for t in fake.tokens.values() if t.kind == "refresh"]) == 2


async def test_access_tokens_really_expire_and_refresh_works(client, fake):
    now = [1000.0]
    fake.clock = lambda: now[0]  # the fake's clock, moved by the test
    fake.expires_in = 0.2
    tokens = await connect(client)
    assert tokens["expires_in"] == 1
    status, _ = await get_json(client, "/calendar/v3/users/me/calendarList", tokens["access_token"])
    assert status == 200
    now[0] += 0.3
    resp = await client.get("/calendar/v3/users/me/calendarList", headers=bearer(tokens["access_token"]))
    assert resp.status == 401
    body = await resp.json()
    assert_google_error(body, 401, "authError")
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["errors"][0]["location"] == "Authorization"

    fake.expires_in = 3599
    status, fresh = await refresh(client, tokens["refresh_token"])
    assert status == 200 and fake.refresh_count == 1
    assert "refresh_token" not in fresh and fresh["scope"] == tokens["scope"]
    status, _ = await get_json(client, "/calendar/v3/users/me/calendarList", fresh["access_token"])
    assert status == 200

    fake.revoke_refresh_tokens()
    status, body = await refresh(client, tokens["refresh_token"])
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    assert fake.refresh_count == 1


async def test_refresh_token_rotation(client, fake):
    fake.rotate_refresh = True
    old = (await connect(client))["refresh_token"]
    status, body = await refresh(client, old)
    assert status == 200 and body["refresh_token"] != old
    assert fake.tokens[old].spent
    assert (await refresh(client, old))[1]["error"] == "invalid_grant"
    assert (await refresh(client, body["refresh_token"]))[0] == 200


async def test_revoke_endpoint(client, fake):
    tokens = await connect(client)
    resp = await client.post("/revoke", data={"token": tokens["refresh_token"]})
    assert resp.status == 200 and await resp.json() == {}
    assert fake.tokens[tokens["refresh_token"]].revoked and fake.tokens[tokens["access_token"]].revoked
    status, body = await get_json(client, EVENTS, tokens["access_token"])
    assert status == 401
    assert_google_error(body, 401, "authError")
    resp = await client.post("/revoke", params={"token": tokens["refresh_token"]})
    assert resp.status == 400
    assert await resp.json() == {"error": "invalid_token", "error_description": "Token expired or revoked"}
    # consent was withdrawn, so the next consent hands out a refresh token again
    assert "refresh_token" in await connect(client)


async def test_userinfo(client):
    tokens = await connect(client)
    status, body = await get_json(client, "/v1/userinfo", tokens["access_token"])
    assert status == 200
    assert body["email"] == "ada@example.com" and body["email_verified"] is True
    assert body["sub"].isdigit() and body["name"] == "Ada" and body["picture"].startswith("https://")
    narrow = await connect(client, scope=f"openid email {CAL}", prompt="consent", include_granted_scopes="false")
    status, body = await get_json(client, "/v1/userinfo", narrow["access_token"])
    assert "email" in body and "name" not in body  # name needs the profile scope
    resp = await client.get("/v1/userinfo")
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_request"


# ---------------------------------------------------------------------- Calendar


async def test_calendar_list_and_missing_auth(client, fake):
    token = (await connect(client))["access_token"]
    status, body = await get_json(client, "/calendar/v3/users/me/calendarList", token)
    assert body["kind"] == "calendar#calendarList" and len(body["items"]) == 3
    primary = body["items"][0]
    assert primary["primary"] is True and primary["id"] == "ada@example.com" and primary["accessRole"] == "owner"
    assert "nextSyncToken" in body and "nextPageToken" not in body

    status, page1 = await get_json(client, "/calendar/v3/users/me/calendarList", token, maxResults="2")
    status, page2 = await get_json(client, "/calendar/v3/users/me/calendarList", token, maxResults="2",
                                   pageToken=page1["nextPageToken"])
    assert [c["id"] for c in page1["items"] + page2["items"]] == [c["id"] for c in fake.calendars]
    assert "nextSyncToken" not in page1 and "nextSyncToken" in page2

    # the holiday calendar's id holds a '#': it only works URL-encoded
    holiday = fake.calendars[2]["id"]
    status, body = await get_json(client, f"/calendar/v3/calendars/{quote(holiday, safe='')}/events", token)
    assert status == 200 and body["summary"] == "Holidays in Germany"

    resp = await client.get("/calendar/v3/users/me/calendarList")
    body = await resp.json()
    assert resp.status == 401
    assert_google_error(body, 401, "required")
    assert body["error"]["status"] == "UNAUTHENTICATED"


async def test_insufficient_scopes(client):
    token = (await connect(client, scope="openid email"))["access_token"]
    status, body = await get_json(client, EVENTS, token)
    assert status == 403
    assert_google_error(body, 403, "insufficientPermissions")


async def test_events_pagination_with_short_pages(client, fake):
    token = (await connect(client))["access_token"]
    for day in range(1, 6):
        fake.add_event(summary=f"Meeting {day}", start=f"2026-04-0{day}T09:00:00", end=f"2026-04-0{day}T10:00:00")
    fake.add_event(summary="Old", start="2026-01-05T09:00:00Z", end="2026-01-05T10:00:00Z")

    pages, params = [], {"maxResults": "2", "timeMin": "2026-03-01T00:00:00+01:00"}
    while True:
        status, body = await get_json(client, EVENTS, token, **params)
        assert status == 200 and body["kind"] == "calendar#events"
        pages.append(body)
        if "nextPageToken" not in body:
            break
        assert "nextSyncToken" not in body
        params = {**params, "pageToken": body["nextPageToken"]}
    assert [len(p["items"]) for p in pages] == [1, 2, 2]  # the first page is short on purpose
    assert "nextSyncToken" in pages[-1]
    assert [e["summary"] for p in pages for e in p["items"]] == [f"Meeting {d}" for d in range(1, 6)]
    first = pages[0]["items"][0]
    assert first["start"] == {"dateTime": "2026-04-01T09:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert pages[0]["timeZone"] == "Europe/Berlin" and pages[0]["summary"] == "ada@example.com"

    status, body = await get_json(client, EVENTS, token, orderBy="startTime")
    assert_google_error(body, 400, "badRequest")
    status, body = await get_json(client, EVENTS, token, orderBy="startTime", singleEvents="true",
                                  timeZone="UTC", q="old")
    assert [e["summary"] for e in body["items"]] == ["Old"]
    assert body["items"][0]["start"]["dateTime"] == "2026-01-05T09:00:00Z"


async def test_incremental_sync(client, fake):
    token = (await connect(client))["access_token"]
    keep = fake.add_event(summary="Keep", start="2026-04-01T09:00:00", end="2026-04-01T10:00:00")
    move = fake.add_event(summary="Move", start="2026-04-02T09:00:00", end="2026-04-02T10:00:00")
    drop = fake.add_event(summary="Drop", start="2026-04-03T09:00:00", end="2026-04-03T10:00:00")
    status, full = await get_json(client, EVENTS, token)
    assert len(full["items"]) == 3 and "nextPageToken" not in full
    sync_token = full["nextSyncToken"]

    resp = await client.patch(f"{EVENTS}/{move['id']}", headers=bearer(token),
                              json={"start": {"dateTime": "2026-04-02T11:00:00+02:00"},
                                    "end": {"dateTime": "2026-04-02T12:00:00+02:00"}})
    assert resp.status == 200
    assert (await client.delete(f"{EVENTS}/{drop['id']}", headers=bearer(token))).status == 204
    fake.add_event(summary="New", start="2026-04-04", end="2026-04-05")

    pages, params = [], {"syncToken": sync_token, "maxResults": "2"}
    while True:
        status, body = await get_json(client, EVENTS, token, **params)
        assert status == 200, body
        pages.append(body)
        if "nextPageToken" not in body:
            break
        params = {**params, "pageToken": body["nextPageToken"]}
    assert [len(p["items"]) for p in pages] == [0, 2, 1]  # an empty page while more remain
    changes = {e["id"]: e for p in pages for e in p["items"]}
    assert keep["id"] not in changes
    assert changes[move["id"]]["start"]["dateTime"] == "2026-04-02T11:00:00+02:00"
    assert changes[drop["id"]] == {"kind": "calendar#event", "etag": changes[drop["id"]]["etag"],
                                   "id": drop["id"], "status": "cancelled"}
    assert [e["summary"] for e in changes.values() if e.get("summary") == "New"] == ["New"]

    status, again = await get_json(client, EVENTS, token, syncToken=pages[-1]["nextSyncToken"])
    assert again["items"] == [] and "nextSyncToken" in again

    # a page token belongs to its listing: the syncToken has to be repeated with it
    _, body = await get_json(client, EVENTS, token, syncToken=sync_token, maxResults="2")
    _, body = await get_json(client, EVENTS, token, pageToken=body["nextPageToken"])
    assert_google_error(body, 400, "invalid")


async def test_sync_token_expiry_and_incompatible_parameters(client, fake):
    token = (await connect(client))["access_token"]
    fake.add_event(summary="One", start="2026-04-01T09:00:00", end="2026-04-01T10:00:00")
    sync_token = (await get_json(client, EVENTS, token))[1]["nextSyncToken"]
    status, body = await get_json(client, EVENTS, token, syncToken=sync_token, timeMin="2026-01-01T00:00:00Z")
    assert status == 400
    assert_google_error(body, 400, "invalid")
    status, body = await get_json(client, EVENTS, token, syncToken=sync_token, showDeleted="false")
    assert status == 400

    fake.expire_sync_tokens()
    status, body = await get_json(client, EVENTS, token, syncToken=sync_token)
    assert status == 410
    assert_google_error(body, 410, "fullSyncRequired")
    status, body = await get_json(client, EVENTS, token)  # full sync again: a working token
    status, body = await get_json(client, EVENTS, token, syncToken=body["nextSyncToken"])
    assert status == 200 and body["items"] == []


async def test_insert_patch_delete(client, fake):
    token = (await connect(client))["access_token"]
    resp = await client.post(EVENTS, params={"sendUpdates": "none"}, headers=bearer(token), json={
        "summary": "Review",
        "start": {"dateTime": "2026-03-29T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-29T09:00:00Z"},
        "attendees": [{"email": "grace@example.com"}],
    })
    assert resp.status == 200
    event = await resp.json()
    assert event["kind"] == "calendar#event" and event["status"] == "confirmed"
    assert event["start"]["dateTime"] == "2026-03-29T10:00:00+02:00"  # after the DST switch
    assert event["end"]["dateTime"] == "2026-03-29T11:00:00+02:00"
    assert event["attendees"][0]["responseStatus"] == "needsAction"
    assert fake.events["primary"][event["id"]]["summary"] == "Review"
    assert event["id"] in fake.events["ada@example.com"]

    path = f"{EVENTS}/{event['id']}"
    resp = await client.patch(path, headers=bearer(token), json={"summary": "Review (moved)",
                                                                  "end": {"dateTime": "2026-03-29T12:00:00+02:00"}})
    patched = await resp.json()
    assert patched["summary"] == "Review (moved)" and patched["sequence"] == 1
    assert patched["start"] == event["start"] and patched["etag"] != event["etag"]

    assert (await client.delete(path, headers=bearer(token))).status == 204
    resp = await client.delete(path, headers=bearer(token))
    assert resp.status == 410
    assert_google_error(await resp.json(), 410, "deleted")
    resp = await client.delete(f"{EVENTS}/unknownevent1", headers=bearer(token))
    assert resp.status == 404
    assert_google_error(await resp.json(), 404, "notFound")

    holiday = quote(fake.calendars[2]["id"], safe="")
    resp = await client.post(f"/calendar/v3/calendars/{holiday}/events", headers=bearer(token),
                             json={"start": {"date": "2026-05-01"}, "end": {"date": "2026-05-02"}})
    assert resp.status == 403
    assert_google_error(await resp.json(), 403, "requiredAccessLevel")


async def test_time_range_empty_and_bad_times(client):
    token = (await connect(client))["access_token"]
    resp = await client.post(EVENTS, headers=bearer(token), json={
        "start": {"dateTime": "2026-03-29T10:00:00+02:00"}, "end": {"dateTime": "2026-03-29T09:00:00+02:00"}})
    assert resp.status == 400
    body = await resp.json()
    assert_google_error(body, 400, "timeRangeEmpty")
    assert body["error"]["errors"][0]["domain"] == "calendar"
    resp = await client.post(EVENTS, headers=bearer(token), json={
        "start": {"date": "2026-03-29"}, "end": {"dateTime": "2026-03-30T09:00:00+02:00"}})
    assert resp.status == 400
    resp = await client.post(EVENTS, headers=bearer(token), json={
        "start": {"dateTime": "2026-03-29T10:00:00"}, "end": {"dateTime": "2026-03-29T11:00:00"}})
    assert resp.status == 400 and "time zone" in (await resp.json())["error"]["message"]
    _, body = await get_json(client, EVENTS, token, timeMin="2026-03-30T00:00:00Z",
                             timeMax="2026-03-29T00:00:00Z")
    assert_google_error(body, 400, "timeRangeEmpty")


async def test_freebusy_across_the_dst_change(client, fake):
    token = (await connect(client))["access_token"]
    # Berlin switches from +01:00 to +02:00 at 02:00 on 2026-03-29.
    fake.add_busy("2026-03-28T10:00:00+01:00", "2026-03-28T13:00:00+01:00")  # clipped at timeMin
    fake.add_busy("2026-03-29T01:00:00", "2026-03-29T03:30:00")  # spans the gap: 1.5 real hours
    fake.add_busy("2026-03-29T03:00:00", "2026-03-29T04:00:00")  # overlaps the previous one
    fake.add_event(summary="Free", start="2026-03-29T08:00:00", end="2026-03-29T09:00:00", transparency="transparent")
    gone = fake.add_event(summary="Gone", start="2026-03-29T09:00:00", end="2026-03-29T10:00:00")
    fake.delete_event("primary", gone["id"])
    fake.add_busy("2026-03-30", "2026-03-31")  # all-day, clipped at timeMax
    team = fake.calendars[1]["id"]
    fake.add_busy("2026-03-29", "2026-03-30", calendar_id=team)  # the 23-hour day

    query = {"timeMin": "2026-03-28T12:00:00+01:00", "timeMax": "2026-03-30T12:00:00+02:00",
             "items": [{"id": "primary"}, {"id": team}, {"id": "nobody@example.com"}]}
    resp = await client.post("/calendar/v3/freeBusy", headers=bearer(token), json=query)
    assert resp.status == 200
    body = await resp.json()
    assert body["kind"] == "calendar#freeBusy"
    assert body["timeMin"] == "2026-03-28T11:00:00.000Z" and body["timeMax"] == "2026-03-30T10:00:00.000Z"
    assert body["calendars"]["primary"]["busy"] == [
        {"start": "2026-03-28T11:00:00Z", "end": "2026-03-28T12:00:00Z"},
        {"start": "2026-03-29T00:00:00Z", "end": "2026-03-29T02:00:00Z"},
        {"start": "2026-03-29T22:00:00Z", "end": "2026-03-30T10:00:00Z"},
    ]
    assert body["calendars"][team]["busy"] == [{"start": "2026-03-28T23:00:00Z", "end": "2026-03-29T22:00:00Z"}]
    assert body["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"

    resp = await client.post("/calendar/v3/freeBusy", headers=bearer(token),
                             json={**query, "timeZone": "Europe/Berlin"})
    body = await resp.json()
    assert body["calendars"]["primary"]["busy"] == [
        {"start": "2026-03-28T12:00:00+01:00", "end": "2026-03-28T13:00:00+01:00"},
        {"start": "2026-03-29T01:00:00+01:00", "end": "2026-03-29T04:00:00+02:00"},
        {"start": "2026-03-30T00:00:00+02:00", "end": "2026-03-30T12:00:00+02:00"},
    ]
    assert body["calendars"][team]["busy"] == [
        {"start": "2026-03-29T00:00:00+01:00", "end": "2026-03-30T00:00:00+02:00"}]

    resp = await client.post("/calendar/v3/freeBusy", headers=bearer(token),
                             json={**query, "timeMax": query["timeMin"]})
    assert_google_error(await resp.json(), 400, "timeRangeEmpty")


# ---------------------------------------------------------------------- fault switches & plumbing


async def test_fail_next_switches(client, fake):
    token = (await connect(client))["access_token"]
    fake.google_error_next(403, "rateLimitExceeded", path="/calendar/v3")
    fake.rate_limit_next(2, 3, path="/calendar/v3/freeBusy")
    resp = await client.get(EVENTS, headers=bearer(token))
    assert resp.status == 403
    body = await resp.json()
    assert_google_error(body, 403, "rateLimitExceeded")
    assert body["error"]["errors"][0]["domain"] == "usageLimits"
    assert (await client.get(EVENTS, headers=bearer(token))).status == 200  # used up

    for _ in range(2):
        resp = await client.post("/calendar/v3/freeBusy", headers=bearer(token), json={})
        assert resp.status == 429 and resp.headers["Retry-After"] == "3"
        assert (await resp.json())["error"]["status"] == "RESOURCE_EXHAUSTED"
    resp = await client.post("/calendar/v3/freeBusy", headers=bearer(token), json={})
    assert resp.status == 400  # the switch is spent; now the real answer (missing timeMin)


async def test_token_endpoint_errors(client, fake):
    tokens = await connect(client)
    fake.token_endpoint_error_next(503)
    fake.token_endpoint_error_next(400, error="invalid_request")
    resp = await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                             "client_id": CLIENT_ID, "client_secret": SECRET})
    assert resp.status == 503 and resp.content_type == "text/html"
    status, body = await refresh(client, tokens["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await refresh(client, tokens["refresh_token"])
    assert status == 200 and fake.refresh_count == 1


async def test_calls_are_recorded(client, fake):
    await connect(client)
    posts = fake.calls_to("/token", "POST")
    assert len(posts) == 1 and posts[0].form["grant_type"] == "authorization_code"
    assert posts[0].at > 0
    assert len(fake.calls_to("/o/oauth2/v2/auth")) == 1


async def test_the_fake_serves_on_loopback():
    fake = FakeGoogle(email="grace.hopper@example.com", time_zone="America/New_York")
    fake.add_event(summary="Seeded", start="2026-03-08T09:00:00", end="2026-03-08T10:00:00")
    base_url = await fake.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(
            f"{base_url}/calendar/v3/calendars/primary/events"
        ) as resp:
            assert resp.status == 401
        event = next(iter(fake.events["primary"].values()))
        assert event["start"]["dateTime"] == "2026-03-08T09:00:00-04:00"  # US DST began at 02:00 that day
        assert fake.calendars[0]["id"] == "grace.hopper@example.com"
    finally:
        await fake.stop()


async def test_direct_changes_to_the_store_reach_incremental_sync(client, fake):
    token = (await connect(client))["access_token"]
    edited = fake.add_event(summary="Edited", start="2026-04-01T09:00:00", end="2026-04-01T10:00:00")
    removed = fake.add_event(summary="Removed", start="2026-04-02T09:00:00", end="2026-04-02T10:00:00")
    sync_token = (await get_json(client, EVENTS, token))[1]["nextSyncToken"]
    edited["summary"] = "Edited in place"
    del fake.events["primary"][removed["id"]]
    status, body = await get_json(client, EVENTS, token, syncToken=sync_token)
    assert status == 200
    assert {e["id"]: e.get("summary", e["status"]) for e in body["items"]} == {
        edited["id"]: "Edited in place", removed["id"]: "cancelled"}


async def test_base_switches_answer_in_googles_shape(client, fake):
    token = (await connect(client))["access_token"]
    fake.fail_next(503, path="/calendar/v3")
    resp = await client.get(EVENTS, headers=bearer(token))
    body = await resp.json()
    assert_google_error(body, 503, "backendError")
    assert body["error"]["status"] == "UNAVAILABLE"
    resp = await client.post("/_fake/rate_limit_next", json={"retry_after": 4, "path": EVENTS})
    assert resp.status == 200
    resp = await client.get(EVENTS, headers=bearer(token))
    assert resp.status == 429 and resp.headers["Retry-After"] == "4"
    assert_google_error(await resp.json(), 429, "rateLimitExceeded")
    fake.expire_tokens()
    status, body = await get_json(client, EVENTS, token)
    assert_google_error(body, 401, "authError")
    status, body = await get_json(client, "/v1/userinfo", token)
    assert (status, body["error"]) == (401, "invalid_request")  # OAuth-shaped at userinfo


async def test_the_state_survives_a_restart(aiohttp_client, client, fake):
    tokens = await connect(client)
    event = fake.add_event(summary="Kept", start="2026-04-01T09:00:00", end="2026-04-01T10:00:00")
    sync_token = (await get_json(client, EVENTS, tokens["access_token"]))[1]["nextSyncToken"]
    reborn = FakeGoogle()
    reborn.import_state(json.loads(json.dumps(fake.export_state())))  # as the sandbox keeps it on disk
    again = await aiohttp_client(reborn.make_app())
    status, body = await get_json(again, EVENTS, tokens["access_token"], syncToken=sync_token)
    assert (status, body["items"]) == (200, [])
    assert reborn.events["primary"][event["id"]]["summary"] == "Kept"
    status, body = await refresh(again, tokens["refresh_token"])
    assert status == 200 and reborn.refresh_count == 1
    assert "refresh_token" not in await connect(again)  # the consent is remembered too


# --- push notifications (fake_push.py): events.watch and channels.stop refuse what Google
# refuses; the sending side posts the sync message, then one "exists" per change with the
# next message number, and nothing once the channel is stopped or expired. A small aiohttp
# app stands in for the receiver; tests decide when the fake sends (send_pending) or wait
# for what it sent on its own (wait_for_pushes).

WATCH = "/calendar/v3/calendars/primary/events/watch"


@pytest.fixture
async def receiver(aiohttp_server) -> Any:
    """What Google's messages reach: records each request's headers and body."""
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append({"headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    server.got = got
    server.address = str(server.make_url("/hook"))
    return server


async def watch(client, access, **body):
    resp = await client.post(WATCH, json=body, headers=bearer(access))
    return resp.status, await resp.json()


def reason(body):
    return body["error"]["errors"][0]["reason"]


async def test_watch_answers_a_channel_and_sends_the_sync_message(client, fake, receiver) -> None:
    token = (await connect(client))["access_token"]
    fake.auto_send = False
    status, channel = await watch(client, token, id="ch-1", type="web_hook", address=receiver.address, token="t0k",
                                  params={"ttl": "3600"})
    assert status == 200, channel
    assert channel["kind"] == "api#channel" and channel["id"] == "ch-1" and channel["token"] == "t0k"
    assert channel["resourceUri"].endswith("/events?alt=json") and isinstance(channel["expiration"], str)
    assert abs(int(channel["expiration"]) / 1000 - fake.clock() - 3600) < 5
    assert await fake.send_pending() == [200]
    (sync,) = receiver.got
    headers = sync["headers"]
    assert sync["body"] == b"" and headers["X-Goog-Resource-State"] == "sync" and headers["X-Goog-Message-Number"] == "1"
    assert (headers["X-Goog-Channel-ID"], headers["X-Goog-Channel-Token"], headers["X-Goog-Resource-ID"]) == (
        "ch-1", "t0k", channel["resourceId"])
    assert headers["X-Goog-Channel-Expiration"].endswith(" GMT") and headers["X-Goog-Resource-URI"] == channel["resourceUri"]


async def test_each_change_is_an_exists_message_with_the_next_number_sent_on_its_own(client, fake, receiver) -> None:
    token = (await connect(client))["access_token"]
    await watch(client, token, id="ch-2", type="web_hook", address=receiver.address, token="t")
    resp = await client.post(EVENTS, json={"start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}}, headers=bearer(token))
    event = await resp.json()
    await client.patch(f"{EVENTS}/{event['id']}", json={"summary": "Moved"}, headers=bearer(token))
    await client.delete(f"{EVENTS}/{event['id']}", headers=bearer(token))
    fake.add_event(summary="Seeded elsewhere")
    pushes = await fake.wait_for_pushes(5)  # auto_send: the fake sends by itself, in order
    assert [p["headers"]["X-Goog-Resource-State"] for p in pushes] == ["sync", "exists", "exists", "exists", "exists"]
    assert [p["headers"]["X-Goog-Message-Number"] for p in pushes] == ["1", "2", "3", "4", "5"]
    assert [p["status"] for p in pushes] == [200] * 5 and len(receiver.got) == 5


async def test_only_watched_calendars_notify_and_stopped_or_expired_channels_send_nothing(client, fake, receiver) -> None:
    token = (await connect(client))["access_token"]
    fake.auto_send = False
    fake.clock = FakeClock()
    status, channel = await watch(client, token, id="ch-3", type="web_hook", address=receiver.address, params={"ttl": "600"})
    other = next(c["id"] for c in fake.calendars if c["id"] != fake.email and c["accessRole"] in ("owner", "writer"))
    fake.add_event(other, summary="Not watched")
    assert await fake.send_pending() == [200]  # the sync message only
    resp = await client.post("/calendar/v3/channels/stop", json={"id": "ch-3", "resourceId": "not-its-own"}, headers=bearer(token))
    assert resp.status == 404 and reason(await resp.json()) == "notFound"
    fake.add_event(summary="Queued before the stop")
    resp = await client.post("/calendar/v3/channels/stop", json={"id": "ch-3", "resourceId": channel["resourceId"]}, headers=bearer(token))
    assert resp.status == 204
    assert await fake.send_pending() == []  # a message queued before the stop is dropped
    resp = await client.post("/calendar/v3/channels/stop", json={"id": "ch-3", "resourceId": channel["resourceId"]}, headers=bearer(token))
    assert resp.status == 404  # stopped already

    await watch(client, token, id="ch-4", type="web_hook", address=receiver.address, params={"ttl": "600"})
    await fake.send_pending()
    fake.clock.advance(601)
    fake.add_event(summary="After expiry")
    assert await fake.send_pending() == []
    assert len(receiver.got) == 2  # the two sync messages, nothing else


@pytest.mark.parametrize(("body", "status", "why"), [
    ({"type": "web_hook", "address": "https://hub.example/hook"}, 400, "required"),
    ({"id": "x", "type": "email", "address": "https://hub.example/hook"}, 400, "push.channelTypeNotSupported"),
    ({"id": "x", "type": "web_hook"}, 400, "required"),
    ({"id": "x", "type": "web_hook", "address": "http://hub.example/hook"}, 400, "push.webhookUrlNotHttps"),
    ({"id": "x", "type": "web_hook", "address": "https://hub.example/hook", "token": "t" * 257}, 400, "invalid"),
])
async def test_watch_refuses_what_google_refuses(client, body, status, why) -> None:
    token = (await connect(client))["access_token"]
    got, answer = await watch(client, token, **body)
    assert (got, reason(answer)) == (status, why)
    if why == "push.webhookUrlNotHttps":
        assert answer["error"]["message"] == "WebHook callback must be HTTPS: http://hub.example/hook"


async def test_a_channel_id_is_taken_once_and_an_unknown_calendar_is_not_found(client, fake) -> None:
    token = (await connect(client))["access_token"]
    fake.auto_send = False
    body = {"id": "same", "type": "web_hook", "address": "https://hub.example/hook"}
    assert (await watch(client, token, **body))[0] == 200
    status, answer = await watch(client, token, **body)
    assert (status, reason(answer)) == (400, "channelIdNotUnique")
    resp = await client.post("/calendar/v3/calendars/nobody%40example.com/events/watch", json={**body, "id": "other"},
                             headers=bearer(token))
    assert resp.status == 404
    resp = await client.post(WATCH, json={**body, "id": "anon"})
    assert resp.status == 401


async def test_the_push_control_route_notifies_as_if_the_calendar_changed(client, fake, receiver) -> None:
    token = (await connect(client))["access_token"]
    fake.auto_send = False
    await watch(client, token, id="ch-5", type="web_hook", address=receiver.address, token="t")
    resp = await client.post("/_fake/push", json={"calendarId": "primary"})
    assert (resp.status, await resp.json()) == (200, {"sent": [200, 200]})  # the queued sync, then the exists
    assert [g["headers"]["X-Goog-Resource-State"] for g in receiver.got] == ["sync", "exists"]
    assert (await client.post("/_fake/push", json={"calendarId": "nobody"})).status == 404
    assert (await client.post("/_fake/push", data="[1]")).status == 400

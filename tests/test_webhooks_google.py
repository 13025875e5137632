"""Google Calendar push notifications (docs/events.md, "Google Calendar"): watching a calendar
opens a channel whose token only the channel's integration can prove; the ``sync`` ping is
acknowledged and logged with no event out; an ``exists`` message becomes an incremental sync
and a ``google_calendar.events_changed`` event with the changes; a wrong, missing or unknown
channel is refused with 401 and stores nothing; a message sent twice is emitted once; the
channel is renewed before it expires (once across sweeps) and stopped on disconnect.

The fake sends its messages when the test says (``auto_send`` off, ``send_pending``), so
what arrives when is decided here, never by a sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from conftest import serve_hub
from eventsupport import Subscriber, with_subscriber
from hub.infra.config import HubConfig
from hub.store.models import Event, IntegrationLog, WebhookRoute, utcnow
from hub.testing import FakeClock
from support import auth, google_section
from test_google import connect_google

G = "/api/integrations/google_calendar"
TEAM = "c_5f0e3a9d2b7c4e1f8a6d0b3c9e2f7a41@group.calendar.google.com"


@pytest.fixture
async def watched(make_config: Callable[..., HubConfig], fake_google: Any, aiohttp_client: Any, subscriber: Subscriber) -> Any:
    """A hub with alice connected and her primary calendar watched; the sync ping not sent yet."""
    fake_google.auto_send = False
    config = with_subscriber(make_config(providers={"google_calendar": google_section(fake_google)}), subscriber.url)
    client = await serve_hub(config, aiohttp_client)
    await connect_google(client)
    resp = await client.post(f"{G}/watch", json={}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    client.channel = (await resp.json())["data"]
    return client


async def stored(client: Any) -> tuple[list[Event], list[IntegrationLog]]:
    async with client.hub.sessions() as session:
        events = list((await session.scalars(select(Event).where(Event.type.like("google_calendar.%")).order_by(Event.id))).all())
        logs = list((await session.scalars(select(IntegrationLog).where(IntegrationLog.kind == "webhook").order_by(IntegrationLog.id))).all())
    return events, logs


def listings(fake: Any) -> int:
    return len(fake.calls_to("/calendar/v3/calendars/ada@example.com/events", "GET")) + len(
        fake.calls_to("/calendar/v3/calendars/primary/events", "GET"))


async def state_of(client: Any) -> dict[str, Any]:
    row = await client.db.integration(provider="google_calendar")
    return dict((row.meta or {}).get("state") or {})


def later(client: Any, fake: Any, by: timedelta) -> None:
    """``by`` from the real now, on the hub's renewal clock and on the fake's (tokens and
    channels expire there)."""
    client.hub.renewals.clock = lambda: utcnow() + by
    if not isinstance(fake.clock, FakeClock):
        fake.clock = FakeClock()
    fake.clock.now = time.time() + by.total_seconds()


async def test_watching_opens_a_channel_and_its_sync_ping_is_acknowledged_with_no_event(watched, fake_google) -> None:
    (request,) = [c.json for c in fake_google.calls_to("/calendar/v3/calendars/primary/events/watch")]
    assert request["type"] == "web_hook" and request["address"] == str(watched.make_url(f"{G}/webhook"))
    assert request["id"] == watched.channel["channelId"] and len(request["token"]) >= 32
    state = await state_of(watched)
    channel = state["channels"][request["id"]]
    assert state["watch_channels"] == [request["id"]] and "primary" in state["syncTokens"]  # a baseline before watching
    assert request["token"] not in str(state) and channel["tokenHash"] != request["token"]
    row = await watched.db.integration(provider="google_calendar")
    assert row.renew_by is not None and int(row.renew_by.timestamp() * 1000) == channel["expiration"]

    assert await fake_google.send_pending() == [200]
    sync = fake_google.pushes[0]["headers"]
    assert (sync["X-Goog-Resource-State"], sync["X-Goog-Message-Number"]) == ("sync", "1")
    events, (log,) = await stored(watched)
    assert events == [] and log.action == "google_calendar.channel_sync" and log.request_data["eventId"] is None


async def test_a_change_becomes_an_incremental_sync_and_one_event_with_the_changes(watched, fake_google, subscriber) -> None:
    await fake_google.send_pending()
    fake_google.add_event(summary="Dentist", start="2026-06-08T09:00:00", end="2026-06-08T10:00:00")
    assert await fake_google.send_pending() == [200]
    message = fake_google.pushes[-1]
    assert (message["headers"]["X-Goog-Resource-State"], message["headers"]["X-Goog-Message-Number"]) == ("exists", "2")
    (event,), logs = await stored(watched)
    assert event.type == "google_calendar.events_changed" and [log.action for log in logs][-1] == event.type
    await watched.hub.events.deliverer.run_once()
    (payload,) = [p for p in subscriber.verified() if p["type"] == "google_calendar.events_changed"]
    data = payload["data"]["event"]
    assert data["incremental"] is True and data["fullResync"] is False and data["calendarId"] == "primary"
    assert [(c["summary"], c["status"]) for c in data["changed"]] == [("Dentist", "confirmed")] and data["deletedIds"] == []
    assert data["channelId"] == watched.channel["channelId"] and data["messageNumber"] == "2"
    assert "tokenHash" not in str(payload) and message["headers"]["X-Goog-Channel-Token"] not in str(payload)

    # Google sends it again (no answer reached it): accepted, not synced again, not emitted twice.
    before = listings(fake_google)
    resp = await watched.post(f"{G}/webhook", data=b"", headers=message["headers"])
    assert (resp.status, (await resp.json())["data"]) == (200, {"routed": 0, "duplicates": 1})
    assert listings(fake_google) == before and len((await stored(watched))[0]) == 1

    # A delete comes out as a deleted id.
    fake_google.delete_event("primary", data["changed"][0]["id"])
    assert await fake_google.send_pending() == [200]
    second = (await stored(watched))[0][-1].payload["data"]["event"]
    assert second["changed"] == [] and second["deletedIds"] == [data["changed"][0]["id"]]


@pytest.mark.parametrize("tamper", ["wrong token", "missing token", "unknown channel", "other resource"])
async def test_a_message_the_channel_cannot_prove_is_refused_and_nothing_is_stored(watched, fake_google, tamper) -> None:
    await fake_google.send_pending()
    fake_google.add_event(summary="Secret")
    headers = dict(fake_google._pending[-1]["headers"])
    before_logs = len((await stored(watched))[1])
    if tamper == "wrong token":
        headers["X-Goog-Channel-Token"] = "x" * 43
    elif tamper == "missing token":
        del headers["X-Goog-Channel-Token"]
    elif tamper == "unknown channel":
        headers["X-Goog-Channel-ID"] = "0b1c2d3e-0000-4000-8000-000000000000"
    else:
        headers["X-Goog-Resource-ID"] = "another-resource"
    before = listings(fake_google)
    resp = await watched.post(f"{G}/webhook", data=b"", headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "webhook_rejected")
    events, logs = await stored(watched)
    assert events == [] and len(logs) == before_logs and listings(fake_google) == before  # no sync either


async def test_a_forgotten_sync_token_means_a_full_resync(watched, fake_google) -> None:
    await fake_google.send_pending()
    fake_google.expire_sync_tokens()
    fake_google.add_event(summary="After the reset")
    assert await fake_google.send_pending() == [200]
    (event,), _ = await stored(watched)
    data = event.payload["data"]["event"]
    assert data["fullResync"] is True and data["incremental"] is False
    assert "After the reset" in [c.get("summary") for c in data["changed"]]
    fake_google.add_event(summary="Next")
    await fake_google.send_pending()
    data = (await stored(watched))[0][-1].payload["data"]["event"]
    assert data["incremental"] is True and [c["summary"] for c in data["changed"]] == ["Next"]  # the new token was kept


async def test_the_channel_is_renewed_before_it_expires_once_and_the_old_one_stopped(watched, fake_google) -> None:
    await fake_google.send_pending()
    old = watched.channel["channelId"]
    old_ping = fake_google.pushes[0]["headers"]
    renewals = watched.hub.renewals
    later(watched, fake_google, timedelta(days=5))
    assert await renewals.sweep() == 0  # two days left: not yet
    later(watched, fake_google, timedelta(days=7) - timedelta(minutes=30))  # inside ahead_seconds (an hour)
    assert sum(await asyncio.gather(renewals.sweep(), renewals.sweep())) == 1  # one sweep wins the lease
    (stop,) = fake_google.calls_to("/calendar/v3/channels/stop")
    assert stop.json["id"] == old and old not in fake_google.channels
    state = await state_of(watched)
    (new,) = state["watch_channels"]
    assert new != old and list(fake_google.channels) == [new]
    row = await watched.db.integration(provider="google_calendar")
    assert row.renew_lease_until is None and int(row.renew_by.timestamp() * 1000) == state["channels"][new]["expiration"]
    assert await renewals.sweep() == 0  # the new deadline is a week away again
    await watched.hub.activity.flush(timeout=None)
    assert [r.status for r in await watched.db.activity(action="renew")] == ["SUCCESS"]

    resp = await watched.post(f"{G}/webhook", data=b"", headers=old_ping)  # the old channel's messages are refused
    assert resp.status == 401
    fake_google.add_event(summary="On the new channel")
    assert await fake_google.send_pending() == [200, 200]  # the new channel's sync ping, then the change
    assert [c["summary"] for c in (await stored(watched))[0][-1].payload["data"]["event"]["changed"]] == ["On the new channel"]


async def test_a_failed_renewal_is_tried_again_after_its_lease(watched, fake_google) -> None:
    renewals = watched.hub.renewals
    later(watched, fake_google, timedelta(days=7) - timedelta(minutes=30))
    fake_google.google_error_next(503, "backendError", path="/calendar/v3/calendars/primary/events/watch")
    assert await renewals.sweep() == 0
    assert list(fake_google.channels) == [watched.channel["channelId"]]  # the old one kept
    assert await renewals.sweep() == 0  # its lease holds it
    later(watched, fake_google, timedelta(days=7) - timedelta(minutes=20))  # the lease (5 min) has ended
    assert await renewals.sweep() == 1
    assert watched.channel["channelId"] not in fake_google.channels


@pytest.mark.parametrize("how", ["disconnect", "delete"])
async def test_disconnecting_stops_the_channel_at_google_and_its_messages_are_refused(watched, fake_google, how) -> None:
    await fake_google.send_pending()
    ping = fake_google.pushes[0]["headers"]
    path = f"{G}/disconnect" if how == "disconnect" else G
    resp = await watched.delete(path, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    (stop,) = fake_google.calls_to("/calendar/v3/channels/stop")
    assert stop.json == {"id": watched.channel["channelId"], "resourceId": watched.channel["resourceId"]}
    assert fake_google.channels == {}
    row = await watched.db.integration(provider="google_calendar")
    assert row.renew_by is None and (row.meta.get("state") or {}).get("watch_channels") == []
    await watched.hub.activity.flush(timeout=None)
    assert [r.status for r in await watched.db.activity(action="before_disconnect")] == ["SUCCESS"]
    resp = await watched.post(f"{G}/webhook", data=b"", headers=ping)
    assert resp.status == 401


async def test_unwatch_stops_the_calendars_channels(watched, fake_google) -> None:
    resp = await watched.delete(f"{G}/watch", headers=auth("alice"))
    assert (resp.status, (await resp.json())["data"]) == (200, {"calendarId": "primary", "stopped": [watched.channel["channelId"]]})
    assert fake_google.channels == {} and (await state_of(watched))["watch_channels"] == []
    assert (await watched.db.integration(provider="google_calendar")).renew_by is None
    fake_google.add_event(summary="Unseen")
    assert await fake_google.send_pending() == []  # nothing is sent on a stopped channel


def hold(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, when: Callable[..., bool]) -> tuple[asyncio.Event, asyncio.Event]:
    """Patch ``module.name`` (a coroutine function) so that the first call ``when`` accepts
    waits, after doing its work, until the test sets the second event; the first is set
    once it waits. What runs meanwhile is decided by the test, not by timing."""
    real: Callable[..., Awaitable[Any]] = getattr(module, name)
    waiting, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any) -> Any:
        result = await real(*args)
        if when(*args) and not release.is_set():
            waiting.set()
            await release.wait()
        return result

    monkeypatch.setattr(module, name, held)
    return waiting, release


async def test_follow_ups_for_two_calendars_at_once_keep_both_sync_tokens(watched, fake_google, monkeypatch) -> None:
    """Each follow-up reads the sync tokens, sets its calendar's and asks to keep the whole
    dict: the core merges the two, so neither calendar's new token is lost."""
    import hub_google_calendar

    resp = await watched.post(f"{G}/watch", json={"calendarId": TEAM}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    assert await fake_google.send_pending() == [200, 200]  # both channels' sync pings
    before = (await state_of(watched))["syncTokens"]
    fake_google.add_event(summary="Dentist")
    fake_google.add_event(TEAM, summary="Standup")
    pending = {m["channel"]: m["headers"] for m in fake_google._pending}  # one change message per channel
    fake_google._pending.clear()
    primary = pending.pop(watched.channel["channelId"])
    (team,) = pending.values()

    waiting, release = hold(monkeypatch, hub_google_calendar, "_collect", lambda ctx, calendar, cursor: calendar == "primary")
    first = asyncio.create_task(watched.post(f"{G}/webhook", data=b"", headers=primary))
    await waiting.wait()  # the primary calendar's follow-up has read the state and Google's changes
    resp = await watched.post(f"{G}/webhook", data=b"", headers=team)
    assert resp.status == 200, await resp.text()
    release.set()
    resp = await first
    assert resp.status == 200, await resp.text()

    after = (await state_of(watched))["syncTokens"]
    assert after["primary"] != before["primary"] and after[TEAM] != before[TEAM]
    fake_google.add_event(TEAM, summary="Retro")
    assert await fake_google.send_pending() == [200]
    data = (await stored(watched))[0][-1].payload["data"]["event"]
    assert data["incremental"] is True and [c["summary"] for c in data["changed"]] == ["Retro"]  # no Standup again


async def test_a_renewal_racing_a_new_watch_keeps_the_new_channel_and_its_route(watched, fake_google, monkeypatch) -> None:
    """The renewal and the watch each ask to keep the whole ``channels`` dict and the
    ``watch_channels`` list: the merge keeps the renewed channel and the new one, the new
    one's messages reach the integration, and the sooner of the two renewal deadlines (the
    new channel's) is kept."""
    from hub_google_calendar import push

    assert await fake_google.send_pending() == [200]
    old = watched.channel["channelId"]
    later(watched, fake_google, timedelta(days=7) - timedelta(minutes=30))
    waiting, release = hold(monkeypatch, push, "_open", lambda ctx, calendar, ttl: ctx.action.name == "renew")
    sweep = asyncio.create_task(watched.hub.renewals.sweep())
    await waiting.wait()  # the renewal has opened the primary calendar's new channel, not kept it yet
    resp = await watched.post(f"{G}/watch", json={"calendarId": TEAM, "ttl": 300}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    team = (await resp.json())["data"]["channelId"]
    release.set()
    assert await sweep == 1

    state = await state_of(watched)
    (renewed,) = set(state["channels"]) - {team}
    assert renewed != old and sorted(state["watch_channels"]) == sorted([renewed, team])
    row = await watched.db.integration(provider="google_calendar")  # renewed before the short-lived new channel runs out
    assert int(row.renew_by.timestamp() * 1000) == state["channels"][team]["expiration"] < state["channels"][renewed]["expiration"]
    async with watched.hub.sessions() as session:
        routes = set((await session.scalars(select(WebhookRoute.route))).all())
    assert {f"state.watch_channels={renewed}", f"state.watch_channels={team}"} <= routes
    fake_google.add_event(TEAM, summary="Standup")
    assert await fake_google.send_pending() == [200, 200, 200]  # both sync pings, then the team calendar's change
    assert [c["summary"] for c in (await stored(watched))[0][-1].payload["data"]["event"]["changed"]] == ["Standup"]

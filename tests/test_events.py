"""Events out (docs/events.md): every lifecycle change writes one event in its own
transaction, delivered signed the Standard Webhooks way, in order per integration, retried
with backoff, dead-lettered, replayed; a 410 disables the subscriber."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from conftest import serve_hub
from eventsupport import Clock, Subscriber, use_clock, with_subscriber
from helpers import connect_slack
from hub.infra.config import HubConfig
from hub.store.models import Event, EventDelivery, EventSubscriber
from support import auth

BOUND = 30  # seconds: only turns a hang into a failure; never decides a pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events_hub(make_config: Callable[..., HubConfig], aiohttp_client: Any, subscriber: Subscriber, clock: Clock) -> Callable[..., Any]:
    async def make(**sub: Any) -> Any:
        client = await serve_hub(with_subscriber(make_config(), subscriber.url, **sub), aiohttp_client)
        use_clock(client.hub, clock)
        return client

    return make


async def deliver(client: Any) -> int:
    return await client.hub.events.deliverer.run_once()


async def stored_events(client: Any) -> list[Event]:
    from sqlalchemy import select

    async with client.hub.sessions() as session:
        return list((await session.scalars(select(Event).order_by(Event.id))).all())


async def set_status(client: Any, status: str) -> None:
    resp = await client.patch("/api/integrations/slack/status", json={"status": status}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()


async def test_every_lifecycle_change_emits_exactly_one_signed_event(events_hub, subscriber, fake_slack) -> None:
    client = await events_hub()
    fake_slack.rotation = True
    await connect_slack(client, auth("alice"))  # connected
    assert (await client.post("/api/integrations/slack/refresh", headers=auth("alice"))).status == 200  # refreshed
    await set_status(client, "INACTIVE")  # disconnected
    await set_status(client, "ACTIVE")  # connected (reactivated)
    # The token runs out and the provider is down: EXPIRED; then it is back: refreshed.
    await client.db.expire_token()
    fake_slack.expire_tokens()
    fake_slack.fail_next(503, path="/api/oauth.v2.access")
    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "hi"}, headers=auth("alice"))
    assert resp.status in (502, 503, 504), await resp.text()
    assert (await client.db.integration()).status == "EXPIRED"
    assert (await client.post("/api/integrations/slack/refresh", headers=auth("alice"))).status == 200  # refreshed
    # The provider revokes everything: the next refresh is refused, reconnect required.
    fake_slack.revoke_all()
    assert (await client.post("/api/integrations/slack/refresh", headers=auth("alice"))).status == 409  # reconnect_required
    await connect_slack(client, auth("alice"))  # connected
    assert (await client.delete("/api/integrations/slack/disconnect", headers=auth("alice"))).status == 200  # disconnected
    assert (await client.delete("/api/integrations/slack", headers=auth("alice"))).status == 200  # deleted

    expected = [
        "integration.connected", "integration.refreshed", "integration.disconnected", "integration.connected",
        "integration.expired", "integration.refreshed", "integration.reconnect_required", "integration.connected",
        "integration.disconnected", "integration.deleted",
    ]
    assert [e.type for e in await stored_events(client)] == expected
    # One event per transition row, and one for each refresh and grant that moved nothing.
    transitions = await client.db.activity(kind="transition")
    assert len(transitions) == 9  # the first refresh (ACTIVE stays ACTIVE) is the only change without one
    await deliver(client)
    payloads = subscriber.verified()
    assert [p["type"] for p in payloads] == expected
    row = await client.db.integration()
    assert {p["data"]["integrationId"] for p in payloads} == {row.id}
    assert payloads[4]["data"] | {"reason": None} == {
        "userId": "alice", "provider": "slack", "integrationId": row.id, "status": "EXPIRED", "previousStatus": "ACTIVE", "reason": None,
    }
    assert payloads[-1]["data"]["status"] == "DELETED"
    # No token in any stored or sent event.
    sent = b"".join(r.body for r in subscriber.received).decode()
    for token in fake_slack.tokens:
        assert token not in sent
    # Each attempt is an activity row of its own.
    assert len(await client.db.activity(kind="delivery", action="deliver_event", status="SUCCESS")) == len(expected)


async def test_the_event_and_its_change_commit_or_roll_back_together(events_hub, subscriber, fake_slack, monkeypatch) -> None:
    client = await events_hub()
    await connect_slack(client, auth("alice"))
    outbox = client.hub.events.outbox
    real = outbox.emit

    async def emit_then_fail(*args: Any, **kw: Any) -> Any:
        await real(*args, **kw)
        raise RuntimeError("the database went away before the commit")

    monkeypatch.setattr(outbox, "emit", emit_then_fail)
    resp = await client.patch("/api/integrations/slack/status", json={"status": "INACTIVE"}, headers=auth("alice"))
    assert resp.status == 500
    assert (await client.db.integration()).status == "ACTIVE"
    assert [e.type for e in await stored_events(client)] == ["integration.connected"]
    monkeypatch.setattr(outbox, "emit", real)
    # A move the state machine refuses changes nothing and announces nothing.
    assert (await client.delete("/api/integrations/slack", headers=auth("alice"))).status == 200
    resp = await client.patch("/api/integrations/slack/status", json={"status": "INACTIVE"}, headers=auth("alice"))
    assert resp.status in (404, 409)
    assert [e.type for e in await stored_events(client)] == ["integration.connected", "integration.deleted"]


async def test_a_subscriber_down_for_a_while_gets_everything_in_order(events_hub, subscriber, clock, fake_slack) -> None:
    client = await events_hub()
    subscriber.status = 503
    await connect_slack(client, auth("alice"))
    await connect_slack(client, auth("bob"))
    for status in ("INACTIVE", "ACTIVE", "INACTIVE"):
        await set_status(client, status)
    await deliver(client)
    # Only the first event of each integration was tried: the others wait behind it.
    assert sorted(r.payload["data"]["userId"] for r in subscriber.received) == ["alice", "bob"]
    for _ in range(3):
        clock.advance(700)  # past the longest backoff
        await deliver(client)
    assert {r.type for r in subscriber.received} == {"integration.connected"}
    failed = len(subscriber.received)
    assert failed == 8
    subscriber.status = 200
    clock.advance(700)
    await deliver(client)
    delivered = [r.payload for r in subscriber.received[failed:]]
    alice = [p["type"] for p in delivered if p["data"]["userId"] == "alice"]
    assert alice == ["integration.connected", "integration.disconnected", "integration.connected", "integration.disconnected"]
    assert [p["type"] for p in delivered if p["data"]["userId"] == "bob"] == ["integration.connected"]
    assert {e.status for e in await stored_events(client)} == {"DELIVERED"}


async def test_retries_back_off_then_dead_letter_then_retry_and_replay(events_hub, subscriber, clock, fake_slack) -> None:
    from hub.infra import metrics

    def counted(outcome: str) -> float:
        return metrics.EVENT_DELIVERIES.labels("host", outcome)._value.get()

    retries, deaths = counted("retry"), counted("dead")
    client = await events_hub(max_attempts=3)
    subscriber.status = 500
    await connect_slack(client, auth("alice"))
    await deliver(client)
    assert len(subscriber.received) == 1
    await deliver(client)  # not due yet: the backoff holds it back
    assert len(subscriber.received) == 1
    for _ in range(2):
        clock.advance(700)
        await deliver(client)
    assert len(subscriber.received) == 3
    clock.advance(700)
    await deliver(client)
    assert len(subscriber.received) == 3  # dead: no fourth attempt
    [event] = await stored_events(client)
    assert event.status == "DEAD"
    page = await (await client.get("/api/events", params={"status": "DEAD"}, headers=auth("alice"))).json()
    [shown] = page["data"]["items"]
    assert shown["id"] == event.event_id and shown["deliveries"][0]["attempts"] == 3 and shown["deliveries"][0]["lastStatus"] == 500
    assert len(await client.db.activity(kind="delivery", status="FAILED")) == 3
    assert (counted("retry") - retries, counted("dead") - deaths) == (2, 1)

    subscriber.status = 200
    assert await client.hub.events.retry([event.event_id]) == 1
    await deliver(client)
    assert len(subscriber.received) == 4 and (await stored_events(client))[0].status == "DELIVERED"
    assert await client.hub.events.replay([event.event_id]) == 1
    await deliver(client)
    assert len(subscriber.received) == 5
    assert subscriber.received[-1].id == event.event_id  # the same webhook-id: a receiver can tell
    subscriber.verified()


async def test_retry_after_is_honoured(events_hub, subscriber, clock, fake_slack) -> None:
    client = await events_hub(backoff_min_seconds=1, backoff_max_seconds=2)
    subscriber.status, subscriber.headers = 429, {"Retry-After": "120"}
    await connect_slack(client, auth("alice"))
    await deliver(client)
    subscriber.status, subscriber.headers = 200, {}
    clock.advance(119)
    await deliver(client)
    assert len(subscriber.received) == 1  # the backoff alone (at most 2 s) would have sent it
    clock.advance(2)
    await deliver(client)
    assert len(subscriber.received) == 2
    assert (await stored_events(client))[0].status == "DELIVERED"


async def test_a_410_disables_the_subscriber_until_enabled(events_hub, subscriber, clock, fake_slack, caplog) -> None:
    client = await events_hub()
    subscriber.status = 410
    await connect_slack(client, auth("alice"))
    with caplog.at_level(logging.WARNING, logger="hub.events"):
        await deliver(client)
    assert "410" in caplog.text and "disabled" in caplog.text
    async with client.hub.sessions() as session:
        stored = await session.get(EventSubscriber, "host")
        assert stored is not None and stored.disabled_at is not None
    await set_status(client, "INACTIVE")
    subscriber.status = 200
    clock.advance(3600)
    await deliver(client)
    assert len(subscriber.received) == 1  # nothing is sent to a disabled subscriber
    await client.hub.events.enable("host")
    await deliver(client)
    assert subscriber.types() == ["integration.connected", "integration.connected", "integration.disconnected"]


async def test_a_slow_subscriber_never_slows_a_request(events_hub, subscriber, fake_slack) -> None:
    client = await events_hub(events={"delivery_interval_seconds": 0.01})
    subscriber.hold = True
    await connect_slack(client, auth("alice"))
    await asyncio.wait_for(subscriber.seen.wait(), BOUND)  # a delivery is in flight, held
    await asyncio.wait_for(set_status(client, "INACTIVE"), BOUND)
    assert [e.type for e in await stored_events(client)] == ["integration.connected", "integration.disconnected"]
    subscriber.release.set()


async def test_get_events_lists_only_the_callers_own(events_hub, subscriber, fake_slack) -> None:
    client = await events_hub()
    await connect_slack(client, auth("alice"))
    await set_status(client, "INACTIVE")
    await connect_slack(client, auth("bob"))
    body = await (await client.get("/api/events", headers=auth("alice"))).json()
    assert [e["type"] for e in body["data"]["items"]] == ["integration.disconnected", "integration.connected"]
    assert {e["payload"]["data"]["userId"] for e in body["data"]["items"]} == {"alice"}
    first = await (await client.get("/api/events", params={"limit": "1"}, headers=auth("alice"))).json()
    assert first["data"]["nextCursor"]
    rest = await (await client.get("/api/events", params={"cursor": first["data"]["nextCursor"]}, headers=auth("alice"))).json()
    assert [e["type"] for e in rest["data"]["items"]] == ["integration.connected"] and rest["data"]["nextCursor"] is None
    typed = await (await client.get("/api/events", params={"type": "integration.connected"}, headers=auth("alice"))).json()
    assert len(typed["data"]["items"]) == 1
    for params, field in (({"status": "LOST"}, "status"), ({"type": "no type"}, "type"), ({"cursor": "x"}, "cursor"), ({"page": "2"}, "page")):
        resp = await client.get("/api/events", params=params, headers=auth("alice"))
        error = (await resp.json())["error"]
        assert resp.status == 400 and error["code"] == "validation_error" and error["details"]["field"] == field, error
    assert (await client.get("/api/events")).status == 401


async def test_token_expiring_is_announced_once_per_token(events_hub, subscriber, clock, fake_slack) -> None:
    from datetime import timedelta

    client = await events_hub(events={"token_expiring_seconds": 86_400})
    await connect_slack(client, auth("alice"))  # Slack without rotation: no refresh token
    sweep = client.hub.events.expiring.sweep
    assert await sweep() == 0  # the token does not expire
    await client.db.set_integration(token_expiry=clock.now + timedelta(days=2))
    assert await sweep() == 0  # not yet within the lead time
    clock.advance(86_400 + 60)
    assert await sweep() == 1
    assert await sweep() == 0
    # A new token, stored (a little later) as a grant stores one.
    clock.advance(1)
    await client.db.set_integration(token_expiry=clock.now + timedelta(hours=12), updated_at=clock.now)
    assert await sweep() == 1
    events = [e for e in await stored_events(client) if e.type == "integration.token_expiring"]
    assert len(events) == 2 and events[0].payload["data"]["expiresAt"]
    await deliver(client)
    assert subscriber.types().count("integration.token_expiring") == 2


async def test_two_hubs_on_one_database_deliver_each_event_once(events_hub, subscriber, fake_slack, make_config) -> None:
    from support import build_hub

    client = await events_hub()
    for user in ("alice", "bob", "carol", "dave"):
        await connect_slack(client, auth(user))
    for _ in range(2):
        for user in ("alice", "bob", "carol", "dave"):
            for status in ("INACTIVE", "ACTIVE"):
                resp = await client.patch("/api/integrations/slack/status", json={"status": status}, headers=auth(user))
                assert resp.status == 200
    other = build_hub(with_subscriber(make_config(), subscriber.url))
    await other.start()
    try:
        other.events.outbox.clock = client.hub.events.outbox.clock
        while (await asyncio.gather(deliver(client), other.events.deliverer.run_once())) != [0, 0]:
            pass
    finally:
        await other.stop()
    events = await stored_events(client)
    assert len(events) == 20
    ids = [r.id for r in subscriber.received]
    assert sorted(ids) == sorted(e.event_id for e in events)  # each once, none twice
    for user in ("alice", "bob", "carol", "dave"):
        mine = [r.type for r in subscriber.received if r.payload["data"]["userId"] == user]
        assert mine == ["integration.connected"] + ["integration.disconnected", "integration.connected"] * 2


async def test_undelivered_deliveries_survive_in_the_outbox(events_hub, subscriber, fake_slack) -> None:
    from sqlalchemy import func, select

    client = await events_hub()
    await connect_slack(client, auth("alice"))
    async with client.hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EventDelivery).where(EventDelivery.state == "PENDING")) == 1


async def test_the_cli_shows_and_redoes_what_the_api_shows(events_hub, subscriber, clock, fake_slack, tmp_path, monkeypatch) -> None:
    import yaml
    from click.testing import CliRunner

    from eventsupport import SECRET, SECRET_ENV
    from hub.cli import main

    client = await events_hub(max_attempts=1)
    subscriber.status = 500
    await connect_slack(client, auth("alice"))
    await deliver(client)
    [event] = await stored_events(client)
    assert event.status == "DEAD"
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": client.hub.config.database.url},
        "events": {"subscribers": {"host": {"url": subscriber.url, "secret_env": SECRET_ENV}}},
    }))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    runner = CliRunner()

    def hub_cli(*args: str) -> str:
        # The CLI runs its own event loop: off this test's loop, in a thread.
        result = runner.invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    listed = await asyncio.to_thread(hub_cli, "events", "list", "--status", "dead")
    assert event.event_id in listed and "integration.connected" in listed and "host: dead after 1" in listed
    assert "1 dead" in await asyncio.to_thread(hub_cli, "events", "retry", event.event_id)
    subscriber.status = 200
    clock.advance(60)  # the CLI put it back due at the real "now"
    await deliver(client)
    assert "1 delivery" in await asyncio.to_thread(hub_cli, "events", "replay", event.event_id)
    await deliver(client)
    assert [r.id for r in subscriber.received] == [event.event_id] * 3


async def test_a_lease_is_taken_by_compare_and_swap_and_only_its_holder_records_the_outcome(events_hub, subscriber, clock, fake_slack) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from hub.events.deliveries import Outcome, _lease

    client = await events_hub()
    await connect_slack(client, auth("alice"))
    store = client.hub.events.deliveries
    lease = timedelta(seconds=60)
    [mine] = await store.claim(["host"], clock.now, lease, 10)
    # Another process read the same candidate just before, and now tries to take it.
    async with client.hub.sessions.begin() as session:
        await _lease(session, [mine.id], "other", clock.now, lease)
    assert await store.claim(["host"], clock.now, lease, 10) == []
    assert not await store.finish(replace(mine, owner="other"), Outcome("DELIVERED", 1, clock.now, 200, None, clock.now))
    # The lease runs out (its holder died): another process takes it, and the first one's
    # late outcome is not recorded over the new holder's.
    clock.advance(61)
    [theirs] = await store.claim(["host"], clock.now, lease, 10)
    assert theirs.id == mine.id and theirs.owner != mine.owner
    assert not await store.finish(mine, Outcome("DEAD", 1, clock.now, 400, "late"))
    assert await store.finish(theirs, Outcome("DELIVERED", 1, clock.now, 200, None, clock.now))
    assert (await stored_events(client))[0].status == "DELIVERED"


async def test_prune_deletes_finished_events_and_keeps_pending_ones(events_hub, subscriber, clock, fake_slack) -> None:
    client = await events_hub()
    await connect_slack(client, auth("alice"))
    await deliver(client)  # delivered
    subscriber.status = 503
    await set_status(client, "INACTIVE")  # pending: its subscriber is down
    clock.advance(31 * 86_400)
    assert await client.hub.events.prune() == 1
    assert [(e.type, e.status) for e in await stored_events(client)] == [("integration.disconnected", "PENDING")]
    async with client.hub.sessions() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(EventDelivery)) == 1


async def test_events_waiting_only_on_a_removed_subscriber_are_shown_then_pruned(events_hub, subscriber, clock, fake_slack) -> None:
    client = await events_hub()
    subscriber.status = 503
    await connect_slack(client, auth("alice"))
    await deliver(client)  # the attempt fails: the event stays pending for "host"
    events = client.hub.events
    assert await events.removed_subscribers() == {}
    # The operator takes "host" out of the config: nothing will ever send its deliveries.
    removed = events.config.subscribers.pop("host")
    assert await events.removed_subscribers() == {"host": 1}
    clock.advance(29 * 86_400)
    assert await events.prune() == 0  # inside the retention: still listed, kept
    clock.advance(2 * 86_400)
    assert await events.prune() == 1
    assert await stored_events(client) == []
    assert await events.removed_subscribers() == {}
    # A configured subscriber's pending event outlives the retention: it is still owed.
    events.config.subscribers["host"] = removed
    await set_status(client, "INACTIVE")
    clock.advance(31 * 86_400)
    assert await events.prune() == 0
    assert [e.type for e in await stored_events(client)] == ["integration.disconnected"]


async def test_each_process_prunes_old_finished_events_in_the_background(events_hub, subscriber, clock, fake_slack) -> None:
    client = await events_hub(events={"prune_interval_seconds": 0.01})
    await connect_slack(client, auth("alice"))
    await deliver(client)
    loop = client.hub.events.prune_passes
    clock.advance(31 * 86_400)
    # A pass that starts after the clock moved deletes the delivered event.
    await asyncio.wait_for(loop.wait_for_passes(loop.passes + 2), BOUND)
    assert await stored_events(client) == []


async def test_a_trello_token_is_announced_before_it_expires(make_config, aiohttp_client, subscriber, clock, fake_trello) -> None:
    from support import trello_section
    from test_trello import connect_by_posting

    config = with_subscriber(make_config(providers={"trello": trello_section(fake_trello)}), subscriber.url,
                             events={"token_expiring_seconds": 2 * 86_400})
    client = await serve_hub(config, aiohttp_client)
    use_clock(client.hub, clock)
    await connect_by_posting(client, fake_trello, expiration="30days")
    row = await client.db.integration(provider="trello")
    assert row.refresh_token is None and row.token_expiry is not None  # Trello's: lasts 30 days, no refresh
    assert await client.hub.events.expiring.sweep() == 0
    clock.advance(28 * 86_400 + 3600)  # within two days of the end
    assert await client.hub.events.expiring.sweep() == 1
    await deliver(client)
    [announced] = [p for p in subscriber.verified() if p["type"] == "integration.token_expiring"]
    assert announced["data"]["provider"] == "trello" and announced["data"]["expiresAt"]

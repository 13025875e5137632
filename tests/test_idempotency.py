"""Issue 16: ``Idempotency-Key`` on writes, through the real HTTP server and the fake Slack,
on SQLite and on PostgreSQL (two hubs on one database stand for two processes)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import serve_hub
from hub.infra.crypto import KeyRing, generate_key
from hub.store.idempotency import Claim, IdempotencyStore, Request
from hub.store.keyrotation import rotate
from hub.store.models import IdempotencyKey, utcnow
from helpers import connect_slack
from support import auth

MESSAGE = "/api/integrations/slack/message"
BODY = {"channel": "general", "text": "deploy finished"}


def key(value: str = "8e03978e-40d5-43e8-bc93-6894a57f9324", user: str = "alice") -> dict[str, str]:
    return {**auth(user), "Idempotency-Key": value}


def posted(fake_slack) -> int:
    return len(fake_slack.calls_to("/api/chat.postMessage"))


async def stored_rows(client) -> list[IdempotencyKey]:
    async with client.hub.sessions() as session:
        return list((await session.scalars(select(IdempotencyKey).order_by(IdempotencyKey.id))).all())


@pytest.fixture
async def app(hub_app):
    await connect_slack(hub_app, auth("alice"))
    return hub_app


async def test_two_posts_with_one_key_post_one_message(app, fake_slack):
    """The issue's reproduction: the retry gets the first answer back, and Slack sees one call."""
    first = await app.post(MESSAGE, json=BODY, headers=key())
    second = await app.post(MESSAGE, json=BODY, headers=key())
    assert first.status == second.status == 200
    assert await first.read() == await second.read()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Content-Type"].startswith("application/json")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]  # each sending is its own request
    assert posted(fake_slack) == 1 and len(fake_slack.messages) == 1


async def test_without_a_key_every_post_runs(app, fake_slack):
    await app.post(MESSAGE, json=BODY, headers=auth("alice"))
    await app.post(MESSAGE, json=BODY, headers=auth("alice"))
    assert posted(fake_slack) == 2


async def test_the_same_key_on_a_different_request_is_422(app, fake_slack):
    assert (await app.post(MESSAGE, json=BODY, headers=key())).status == 200
    other_body = await app.post(MESSAGE, json={**BODY, "text": "something else"}, headers=key())
    other_route = await app.patch("/api/integrations/slack/status", json={"status": "INACTIVE"}, headers=key())
    for resp in (other_body, other_route):
        body = await resp.json()
        assert resp.status == 422, body
        assert body["error"]["code"] == "idempotency_key_reused"
        assert body["error"]["details"]["field"] == "Idempotency-Key"
    assert "a different body" in (await other_body.json())["error"]["message"]
    assert f"POST {MESSAGE}" in (await other_route.json())["error"]["message"]
    assert posted(fake_slack) == 1
    assert (await app.db.integration()).status == "ACTIVE"  # the PATCH did not run


async def test_a_retry_while_the_first_is_in_flight_is_409(app, fake_slack):
    hold = fake_slack.hold_next("/api/chat.postMessage")
    first = asyncio.create_task(app.post(MESSAGE, json=BODY, headers=key()))
    await hold.arrived.wait()  # the first request is inside Slack now
    retry = await app.post(MESSAGE, json=BODY, headers=key())
    body = await retry.json()
    assert retry.status == 409 and body["error"]["code"] == "idempotency_key_in_use", body
    hold.release()
    assert (await first).status == 200
    after = await app.post(MESSAGE, json=BODY, headers=key())
    assert after.status == 200 and after.headers["Idempotent-Replayed"] == "true"
    assert posted(fake_slack) == 1


async def test_keys_belong_to_their_user(hub_app, fake_slack):
    await connect_slack(hub_app, auth("alice"))
    await connect_slack(hub_app, auth("bob"))
    alice = await hub_app.post(MESSAGE, json=BODY, headers=key(user="alice"))
    bob = await hub_app.post(MESSAGE, json=BODY, headers=key(user="bob"))
    assert alice.status == bob.status == 200
    assert "Idempotent-Replayed" not in bob.headers
    assert posted(fake_slack) == 2


async def test_a_quoted_key_and_the_bare_key_are_one_key(app, fake_slack):
    assert (await app.post(MESSAGE, json=BODY, headers=key('"abc-123"'))).status == 200
    again = await app.post(MESSAGE, json=BODY, headers=key("abc-123"))
    assert again.headers["Idempotent-Replayed"] == "true"
    escaped = await app.post(MESSAGE, json=BODY, headers=key('"say \\"hi\\""'))
    assert escaped.status == 200 and "Idempotent-Replayed" not in escaped.headers
    assert (await app.post(MESSAGE, json=BODY, headers=key('say "hi"'))).headers["Idempotent-Replayed"] == "true"
    assert posted(fake_slack) == 2


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ('""', "must not be empty"),
        ("k" * 256, "at most 255 characters"),
        ("caf\u00e9", "printable ASCII"),
        ('"unterminated', "closing quote is missing"),
        ('"a"b', "text follows the closing quote"),
        ('"a\\b"', "may only escape"),
    ],
)
async def test_a_bad_key_is_400_naming_the_header(app, fake_slack, value, problem):
    resp = await app.post(MESSAGE, json=BODY, headers=key(value))
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["message"].startswith("Idempotency-Key: ") and problem in body["error"]["message"]
    assert body["error"]["details"]["field"] == "Idempotency-Key"
    assert posted(fake_slack) == 0


async def test_the_header_sent_twice_is_400(app, fake_slack):
    headers = [("Authorization", auth("alice")["Authorization"]), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    resp = await app.post(MESSAGE, json=BODY, headers=headers)
    assert resp.status == 400 and "once" in (await resp.json())["error"]["message"]
    assert posted(fake_slack) == 0


async def test_a_255_character_key_is_accepted(app, fake_slack):
    assert (await app.post(MESSAGE, json=BODY, headers=key("k" * 255))).status == 200


async def test_reads_ignore_the_header(app):
    resp = await app.get("/api/integrations/slack/channels", headers=key(""))
    assert resp.status == 200 and "Idempotent-Replayed" not in resp.headers


async def test_an_error_answer_is_replayed_too(app, fake_slack):
    missing = {"channel": "no-such-channel", "text": "x"}
    first = await app.post(MESSAGE, json=missing, headers=key())
    again = await app.post(MESSAGE, json=missing, headers=key())
    assert first.status == again.status == 404
    assert await first.read() == await again.read() and again.headers["Idempotent-Replayed"] == "true"
    assert posted(fake_slack) == 1


async def test_a_rate_limited_answer_releases_the_key(app, fake_slack):
    """429 says nothing was done: the retry with the same key runs."""
    fake_slack.rate_limit_next(retry_after=30, path="/api/chat.postMessage")
    first = await app.post(MESSAGE, json=BODY, headers=key())
    assert first.status == 429
    retry = await app.post(MESSAGE, json=BODY, headers=key())
    assert retry.status == 200 and "Idempotent-Replayed" not in retry.headers
    assert posted(fake_slack) == 2 and len(fake_slack.messages) == 1


async def test_core_writes_are_idempotent(app, fake_slack):
    patch = {"status": "INACTIVE", "reason": "paused"}
    first = await app.patch("/api/integrations/slack/status", json=patch, headers=key("status-1"))
    assert first.status == 200
    await app.patch("/api/integrations/slack/status", json={"status": "ACTIVE"}, headers=auth("alice"))
    again = await app.patch("/api/integrations/slack/status", json=patch, headers=key("status-1"))
    assert again.headers["Idempotent-Replayed"] == "true" and await again.read() == await first.read()
    assert (await app.db.integration()).status == "ACTIVE"  # the replay changed nothing
    gone = await app.delete("/api/integrations/slack/disconnect", headers=key("disconnect-1"))
    replay = await app.delete("/api/integrations/slack/disconnect", headers=key("disconnect-1"))
    assert gone.status == replay.status == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert len(fake_slack.calls_to("/api/auth.revoke")) == 1


async def test_a_key_on_a_request_without_a_jwt_is_400(hub_app):
    resp = await hub_app.post("/api/integrations/slack/tokens", json={"token": "x", "state": "y"}, headers={"Idempotency-Key": "k"})
    body = await resp.json()
    assert resp.status == 400 and body["error"]["details"]["field"] == "Idempotency-Key"
    assert "JWT" in body["error"]["message"]


async def test_the_stored_answer_is_encrypted(app):
    await app.post(MESSAGE, json=BODY, headers=key())
    (row,) = await stored_rows(app)
    assert row.status == 200 and row.response_body is not None
    assert BODY["text"] not in row.response_body and row.response_body.startswith("v1.")
    assert "8e03978e" not in row.key_hash  # the key itself is kept only as its hash


# --- expiry and pruning ---------------------------------------------------------------


async def test_an_expired_answer_is_not_replayed_and_is_pruned(app, fake_slack):
    store = app.hub.idempotency.store
    await app.post(MESSAGE, json=BODY, headers=key())
    store.clock = lambda: utcnow() + timedelta(hours=23, minutes=59)
    assert (await app.post(MESSAGE, json=BODY, headers=key())).headers["Idempotent-Replayed"] == "true"
    store.clock = lambda: utcnow() + timedelta(hours=24, seconds=1)
    assert await store.prune() == 1
    assert await stored_rows(app) == []
    resp = await app.post(MESSAGE, json=BODY, headers=key())  # a day later the key is new again
    assert resp.status == 200 and "Idempotent-Replayed" not in resp.headers
    assert posted(fake_slack) == 2


async def test_an_expired_row_not_yet_pruned_is_taken_over(app, fake_slack):
    store = app.hub.idempotency.store
    await app.post(MESSAGE, json=BODY, headers=key())
    store.clock = lambda: utcnow() + timedelta(days=1, seconds=1)
    # Past its day even a different body may use the key: the old answer is gone.
    resp = await app.post(MESSAGE, json={**BODY, "text": "tomorrow"}, headers=key())
    assert resp.status == 200 and "Idempotent-Replayed" not in resp.headers
    assert len(await stored_rows(app)) == 1


async def test_the_prune_loop_deletes_expired_answers(make_config, aiohttp_client, fake_slack):
    client = await serve_hub(make_config(idempotency={"prune_interval_seconds": 1}), aiohttp_client)
    await connect_slack(client, auth("alice"))
    await client.post(MESSAGE, json=BODY, headers=key())
    service = client.hub.idempotency
    service.store.clock = lambda: utcnow() + timedelta(days=2)
    # A pass already under way may have read the clock before it moved: wait for two more.
    await asyncio.wait_for(service.wait_for_prune(service.prune_passes + 2), timeout=30)
    assert await stored_rows(client) == []


async def test_an_abandoned_claim_is_taken_over_after_the_lease(db_url, encryption_keys):
    from hub.store.engine import create_engine, sessionmaker, upgrade

    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        store = IdempotencyStore(sessionmaker(engine), KeyRing.parse(encryption_keys), ttl_seconds=86400, lease_seconds=300)
        req = Request("alice", "k", "POST", "/x", "f" * 64)
        first = await store.claim(req)
        assert isinstance(first, Claim)
        held = await store.claim(req)
        assert not isinstance(held, Claim) and held.status is None  # still in flight
        store.clock = lambda: utcnow() + timedelta(seconds=301)  # its process died meanwhile
        taken = await store.claim(req)
        assert isinstance(taken, Claim) and taken.row_id == first.row_id
        await store.finish(first, 200, {}, b"{}")  # the old owner's late answer does not land
        found = await store.claim(req)
        assert not isinstance(found, Claim) and found.status is None
    finally:
        await engine.dispose()


async def test_key_rotation_keeps_stored_answers_readable(app, make_config, aiohttp_client, encryption_keys):
    first = await app.post(MESSAGE, json=BODY, headers=key())
    new_key = generate_key("k2")
    report = await rotate(app.hub.sessions, KeyRing.parse(f"{new_key},{encryption_keys}"))
    assert report.answers_rotated == 1 and report.answers_dropped == 0
    (row,) = await stored_rows(app)
    assert row.response_body.startswith("v1.k2.")
    # The old key can now leave the ring: a hub with the new key alone still replays.
    rotated = await serve_hub(make_config(security={"encryption_keys": new_key}), aiohttp_client)
    replay = await rotated.post(MESSAGE, json=BODY, headers=key())
    assert replay.headers["Idempotent-Replayed"] == "true" and await replay.read() == await first.read()


async def test_an_answer_whose_key_left_the_ring_is_refused_not_rerun(app, make_config, aiohttp_client, fake_slack):
    await app.post(MESSAGE, json=BODY, headers=key())
    stranger = await serve_hub(make_config(security={"encryption_keys": generate_key("k9")}), aiohttp_client)
    resp = await stranger.post(MESSAGE, json=BODY, headers=key())
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "idempotency_answer_unreadable"
    assert posted(fake_slack) == 1


# --- several processes on one database ------------------------------------------------


async def test_two_hubs_on_one_database_share_keys(make_config, aiohttp_client, fake_slack):
    one = await serve_hub(make_config(), aiohttp_client)
    two = await serve_hub(make_config(), aiohttp_client)
    await connect_slack(one, auth("alice"))
    hold = fake_slack.hold_next("/api/chat.postMessage")
    first = asyncio.create_task(one.post(MESSAGE, json=BODY, headers=key()))
    await hold.arrived.wait()
    busy = await two.post(MESSAGE, json=BODY, headers=key())
    assert busy.status == 409 and (await busy.json())["error"]["code"] == "idempotency_key_in_use"
    other = await two.post(MESSAGE, json={**BODY, "text": "other"}, headers=key())
    assert other.status == 422
    hold.release()
    answer = await first
    replay = await two.post(MESSAGE, json=BODY, headers=key())
    assert replay.headers["Idempotent-Replayed"] == "true" and await replay.read() == await answer.read()
    assert posted(fake_slack) == 1


async def test_racing_requests_across_two_hubs_post_once(make_config, aiohttp_client, fake_slack):
    one = await serve_hub(make_config(), aiohttp_client)
    two = await serve_hub(make_config(), aiohttp_client)
    await connect_slack(one, auth("alice"))
    answers = await asyncio.gather(*(client.post(MESSAGE, json=BODY, headers=key("race")) for client in (one, two) * 10))
    statuses = sorted(a.status for a in answers)
    assert set(statuses) <= {200, 409} and 200 in statuses, statuses
    assert posted(fake_slack) == 1
    async with one.hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1

"""Key rotation (hub.keys.rotate) and what happens to integrations when ciphertexts are
moved, damaged or their key is gone — checked through the HTTP API where it matters."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from helpers import connect_slack
from sqlalchemy import select
from support import Rows, auth, build_hub

from hub.infra.crypto import DecryptionFailed, KeyRing, generate_key, key_id, token_context
from hub.store.keyrotation import RotationReport, rotate
from hub.store.models import Integration, OAuthState, utcnow
from hub.store.states import hash_state, state_context
from hub.store.integrations import decrypt_token, encrypt_into
from hub.types import TokenSet
from hub.web import create_app

KEY_A = generate_key("keyA")
KEY_B = generate_key("keyB")
KEY_C = generate_key("keyC")  # never configured anywhere


@pytest.fixture
def encryption_keys() -> str:
    """The suite's hub (``hub_app``) writes with ring A in this module."""
    return KEY_A


async def serve(make_config, aiohttp_client, keys: str) -> Any:
    """Another hub process on the same database with the given key ring."""
    hub = build_hub(make_config(security={"encryption_keys": keys}))
    client = await aiohttp_client(create_app(hub))
    hub.config.server.public_url = str(client.make_url("")).rstrip("/")
    client.hub = hub
    client.db = Rows(hub)
    return client


def kids(all_rows: list[Integration]) -> Counter[str | None]:
    out: Counter[str | None] = Counter()
    for r in all_rows:
        for value in (r.access_token, r.refresh_token):
            if value is not None:
                out[key_id(value)] += 1
    return out


async def insert(hub, ring: KeyRing, n: int, *, prefix: str = "user", refresh_every: int = 2) -> dict[str, TokenSet]:
    """Integration rows written the way the hub writes them, under ``ring``."""
    tokens = {}
    async with hub.sessions.begin() as session:
        for i in range(n):
            user = f"{prefix}{i:03d}"
            token = TokenSet(
                access_token=f"xoxb-{prefix}-{i}-access",
                refresh_token=f"xoxe-{prefix}-{i}-refresh" if i % refresh_every == 0 else None,
                scopes=("chat:write",),
            )
            row = Integration(user_id=user, provider="slack", status="ACTIVE", version=1, meta={}, scopes=[], created_at=utcnow())
            encrypt_into(ring, row, token)
            session.add(row)
            tokens[user] = token
    return tokens


async def gather_limited(coros: list[Any], limit: int = 8) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def post(client, user: str, text: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": text}, headers=auth(user))
    return resp.status, await resp.json()


# --- the acceptance criterion ---------------------------------------------------------------


async def test_rotate_then_drop_the_old_key_every_integration_still_works(hub_app, fake_slack, make_config, aiohttp_client):
    users = [f"user{i:02d}" for i in range(50)]
    # half the workspace connects without token rotation, half with (so they hold refresh tokens)
    await gather_limited([connect_slack(hub_app, auth(u)) for u in users[:25]])
    fake_slack.rotation = True
    await gather_limited([connect_slack(hub_app, auth(u)) for u in users[25:]])
    # one user disconnected: no tokens left to rotate, and nothing must break on it
    resp = await hub_app.delete("/api/integrations/slack/disconnect", headers=auth(users[-1]))
    assert resp.status == 200
    connected = users[:-1]

    before = await hub_app.db.integrations()
    assert len(before) == 50
    assert kids(before) == {"keyA": 49 + 24}  # 49 access tokens, 24 refresh tokens
    plaintexts = {r.user_id: decrypt_token(hub_app.hub.keyring, r) for r in before if r.access_token}

    # the operator puts the new key first and rotates
    both = await serve(make_config, aiohttp_client, f"{KEY_B},{KEY_A}")
    seen: list[int] = []
    report = await rotate(both.hub.sessions, both.hub.keyring, batch_size=7, progress=lambda r: seen.append(r.rotated))
    assert report == RotationReport(rotated=49, unreadable=0, states_dropped=0)
    assert seen == sorted(seen) and seen[-1] == 49 and len(seen) == 7  # ceil(49 / 7) batches

    after = await both.db.integrations()
    assert kids(after) == {"keyB": 49 + 24}
    by_user = {r.user_id: r for r in before}
    for r in after:
        old = by_user[r.user_id]
        if r.access_token is None:
            assert r.user_id == users[-1] and r.version == old.version
            continue
        assert r.access_token != old.access_token
        assert r.version == old.version + 1
        assert r.status == "ACTIVE"
        assert decrypt_token(both.hub.keyring, r) == plaintexts[r.user_id]

    again = await rotate(both.hub.sessions, both.hub.keyring)
    assert again.rotated == 0 and again.unreadable == 0

    # the old key is removed from the config: a hub with key B alone serves everyone
    only_b = await serve(make_config, aiohttp_client, KEY_B)
    assert only_b.hub.keyring.kids == ("keyB",)
    sent_before = len(fake_slack.messages)
    results = await gather_limited([post(only_b, u, f"after rotation {u}") for u in connected])
    for user, (status, body) in zip(connected, results):
        assert status == 200, (user, body)
        assert body["data"]["ts"]
    texts = {m["text"] for m in fake_slack.messages[sent_before:]}
    assert texts == {f"after rotation {u}" for u in connected}

    # refresh tokens were rotated too: refreshing with key B alone works and stores under B
    resp = await only_b.post("/api/integrations/slack/refresh", headers=auth(users[30]))
    assert resp.status == 200, await resp.text()
    refreshed = next(r for r in await only_b.db.integrations() if r.user_id == users[30])
    assert key_id(refreshed.access_token) == "keyB" and key_id(refreshed.refresh_token) == "keyB"

    resp = await only_b.get("/api/integrations", headers=auth(users[0]))
    assert [i["status"] for i in (await resp.json())["data"]] == ["ACTIVE"]


async def test_dropping_the_old_key_without_rotating_breaks_only_those_rows(hub_app, fake_slack, make_config, aiohttp_client):
    """The control for the test above: without rotation, key B alone cannot read A's rows."""
    await connect_slack(hub_app, auth("alice"))
    only_b = await serve(make_config, aiohttp_client, KEY_B)
    status, body = await post(only_b, "alice", "hi")
    assert status == 409, body
    assert body["error"]["code"] == "token_unreadable"
    # reconnecting under the new key repairs it
    await connect_slack(only_b, auth("alice"))
    status, body = await post(only_b, "alice", "hi again")
    assert status == 200, body


# --- batches, interruption, resumption -------------------------------------------------------


async def test_interrupted_rotation_resumes_where_it_stopped(hub_app, make_config, aiohttp_client):
    ring_a = hub_app.hub.keyring
    tokens = await insert(hub_app.hub, ring_a, 30)
    ring_ba = KeyRing.parse(f"{KEY_B},{KEY_A}")
    sessions = hub_app.hub.sessions

    first = await rotate(sessions, ring_ba, batch_size=4, max_batches=1)
    assert first.rotated == 4
    state = await hub_app.db.integrations()
    moved = [r for r in state if key_id(r.access_token) == "keyB"]
    assert len(moved) == 4
    # batches go in id order, and a row is moved whole (access and refresh together)
    assert [r.id for r in moved] == [r.id for r in state[:4]]
    assert all(r.refresh_token is None or key_id(r.refresh_token) == "keyB" for r in moved)
    assert all(key_id(r.access_token) == "keyA" for r in state[4:])

    # mid-rotation the mixed table is fully readable with [B, A]
    for r in state:
        assert decrypt_token(ring_ba, r) == tokens[r.user_id]

    second = await rotate(sessions, ring_ba, batch_size=4, max_batches=2)
    assert second.rotated == 8
    assert Counter(key_id(r.access_token) for r in await hub_app.db.integrations()) == {"keyB": 12, "keyA": 18}

    rest = await rotate(sessions, ring_ba, batch_size=4)
    assert rest.rotated == 18 and rest.unreadable == 0

    ring_b = KeyRing.parse(KEY_B)
    final = await hub_app.db.integrations()
    assert kids(final) == {"keyB": 30 + 15}
    for r in final:
        assert decrypt_token(ring_b, r) == tokens[r.user_id]


async def test_max_batches_zero_does_nothing(hub_app):
    await insert(hub_app.hub, hub_app.hub.keyring, 3)
    report = await rotate(hub_app.hub.sessions, KeyRing.parse(f"{KEY_B},{KEY_A}"), max_batches=0)
    assert report.rotated == 0
    assert kids(await hub_app.db.integrations()) == {"keyA": 3 + 2}


class RacingSessions:
    """The hub's sessionmaker, with a request sneaking in before rotate's first write."""

    def __init__(self, real: Any, before_first_write: Any) -> None:
        self.real = real
        self.before_first_write = before_first_write

    def __call__(self) -> Any:
        return self.real()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        if self.before_first_write is not None:
            hook, self.before_first_write = self.before_first_write, None
            await hook()
        async with self.real.begin() as session:
            yield session


async def test_a_row_refreshed_during_a_batch_keeps_its_new_token(hub_app):
    """rotate() read the row, then a refresh (by a process still on ring A) stored a new
    token: the stale plaintext must not overwrite it; the row is rotated on the next pass."""
    hub = hub_app.hub
    ring_a = hub.keyring
    tokens = await insert(hub, ring_a, 5)
    target = "user002"
    newer = TokenSet(access_token="xoxb-refreshed-meanwhile", refresh_token="xoxe-new")

    async def concurrent_refresh() -> None:
        async with hub.sessions.begin() as session:
            row = await session.scalar(select(Integration).where(Integration.user_id == target))
            encrypt_into(ring_a, row, newer)
            row.version += 1

    ring_ba = KeyRing.parse(f"{KEY_B},{KEY_A}")
    report = await rotate(RacingSessions(hub.sessions, concurrent_refresh), ring_ba, batch_size=10)
    assert report.rotated == 5 and report.unreadable == 0

    final = {r.user_id: r for r in await hub_app.db.integrations()}
    assert kids(list(final.values())) == {"keyB": 5 + 3}
    assert decrypt_token(ring_ba, final[target]).access_token == "xoxb-refreshed-meanwhile"
    assert decrypt_token(ring_ba, final[target]).refresh_token == "xoxe-new"
    for user, token in tokens.items():
        if user != target:
            assert decrypt_token(ring_ba, final[user]) == token


# --- values that cannot be decrypted ---------------------------------------------------------


async def test_unreadable_rows_are_reported_and_left_alone(hub_app):
    hub = hub_app.hub
    ring_a = hub.keyring
    good = await insert(hub, ring_a, 6)
    await insert(hub, KeyRing.parse(KEY_C), 1, prefix="lostkey")  # its key is not configured
    await insert(hub, ring_a, 2, prefix="damaged", refresh_every=1)
    async with hub.sessions.begin() as session:
        damaged = list((await session.scalars(select(Integration).where(Integration.user_id.like("damaged%")).order_by(Integration.id))).all())
        # one with a flipped ciphertext, one whose refresh token belongs to another row
        blob = damaged[0].access_token
        damaged[0].access_token = blob[:-3] + ("A" if blob[-3] != "A" else "B") + blob[-2:]
        damaged[1].refresh_token = damaged[0].refresh_token
    before = {r.user_id: r for r in await hub_app.db.integrations()}

    ring_ba = KeyRing.parse(f"{KEY_B},{KEY_A}")
    report = await rotate(hub.sessions, ring_ba, batch_size=3)
    assert report.rotated == 6
    assert report.unreadable == 3

    after = {r.user_id: r for r in await hub_app.db.integrations()}
    for user in ("lostkey000", "damaged000", "damaged001"):
        assert (after[user].access_token, after[user].refresh_token, after[user].version) == (
            before[user].access_token,
            before[user].refresh_token,
            before[user].version,
        )
        assert after[user].status == "ACTIVE"  # the tool reports; it does not change states
    for user, token in good.items():
        assert key_id(after[user].access_token) == "keyB"
        assert decrypt_token(ring_ba, after[user]) == token

    # a rerun reports them again and never loops on them
    rerun = await rotate(hub.sessions, ring_ba, batch_size=1)
    assert (rerun.rotated, rerun.unreadable) == (0, 3)


async def test_pending_oauth_states_are_rotated_or_dropped(hub_app):
    hub = hub_app.hub
    ring_a = hub.keyring
    now = utcnow()
    good_hash, bad_hash, plain_hash = hash_state("good"), hash_state("bad"), hash_state("no-pkce")
    async with hub.sessions.begin() as session:
        session.add(OAuthState(state_hash=good_hash, user_id="alice", provider="slack", expires_at=now,
                               code_verifier=ring_a.encrypt("verifier-123", state_context(good_hash))))
        session.add(OAuthState(state_hash=bad_hash, user_id="bob", provider="slack", expires_at=now,
                               code_verifier=KeyRing.parse(KEY_C).encrypt("lost", state_context(bad_hash))))
        session.add(OAuthState(state_hash=plain_hash, user_id="carol", provider="slack", expires_at=now, code_verifier=None))

    report = await rotate(hub.sessions, KeyRing.parse(f"{KEY_B},{KEY_A}"))
    assert report.states_dropped == 1

    states = {s.state_hash: s for s in await hub_app.db.states()}
    assert set(states) == {good_hash, plain_hash}
    assert states[plain_hash].code_verifier is None
    assert KeyRing.parse(KEY_B).decrypt(states[good_hash].code_verifier, state_context(good_hash)) == "verifier-123"


async def test_ciphertext_copied_to_another_users_row_fails_through_the_api(hub_app, fake_slack):
    client = hub_app
    await connect_slack(client, auth("alice"))
    await connect_slack(client, auth("bob"))
    await connect_slack(client, auth("carol"))

    alice = await client.db.integration("alice")
    await client.db.set_integration("bob", access_token=alice.access_token, refresh_token=alice.refresh_token)

    sent = len(fake_slack.messages)
    status, body = await post(client, "bob", "as alice?")
    assert status == 409, body
    assert body["error"]["code"] == "token_unreadable"
    assert alice.access_token not in str(body)
    assert len(fake_slack.messages) == sent  # nothing reached Slack with alice's token

    resp = await client.get("/api/integrations/slack", headers=auth("bob"))
    bob = (await resp.json())["data"]
    assert bob["status"] == "ERROR"
    assert "decrypt" in bob["statusReason"]

    # a later call keeps refusing (ERROR), and says what to do
    status, body = await post(client, "bob", "again")
    assert status == 409
    assert "ERROR" in body["error"]["message"]

    # the owner and a bystander are unaffected
    for user in ("alice", "carol"):
        status, body = await post(client, user, f"hello from {user}")
        assert status == 200, body
        resp = await client.get("/api/integrations/slack", headers=auth(user))
        assert (await resp.json())["data"]["status"] == "ACTIVE"

    # the transition was logged with its reason
    resp = await client.get("/api/integrations/slack/logs", headers=auth("bob"))
    items = (await resp.json())["data"]["items"]
    assert any(i["kind"] == "transition" and "ERROR" in str(i) for i in items), items

    # bob reconnecting repairs his integration
    await connect_slack(client, auth("bob"))
    status, body = await post(client, "bob", "fixed")
    assert status == 200, body


def test_row_context_is_what_binds_the_ciphertext():
    """Unit-level companion of the API test: same ring, another row's context fails."""
    ring = KeyRing.parse(KEY_A)
    value = ring.encrypt("xoxb", token_context("alice", "slack", "access_token"))
    with pytest.raises(DecryptionFailed):
        ring.decrypt(value, token_context("bob", "slack", "access_token"))


# --- key ids that LIKE patterns could misread ----------------------------------------------------


async def test_underscore_in_the_primary_key_id_does_not_hide_rows(hub_app):
    old_entry, new_entry = generate_key("kx1"), generate_key("k_1")
    await insert(hub_app.hub, KeyRing.parse(old_entry), 5)
    report = await rotate(hub_app.hub.sessions, KeyRing.parse(f"{new_entry},{old_entry}"))
    assert report.rotated == 5
    assert kids(await hub_app.db.integrations()) == {"k_1": 5 + 3}


async def test_key_ids_differing_only_in_case_are_distinct(hub_app):
    old_entry, new_entry = generate_key("key1"), generate_key("KEY1")
    await insert(hub_app.hub, KeyRing.parse(old_entry), 4)
    report = await rotate(hub_app.hub.sessions, KeyRing.parse(f"{new_entry},{old_entry}"))
    assert report.rotated == 4
    assert kids(await hub_app.db.integrations()) == {"KEY1": 4 + 2}

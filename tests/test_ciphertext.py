"""Issue 6, item 4: stored ciphertexts that do not authenticate, and key rotation at scale.

* A stored token with one flipped byte, a token copied from another user's row, or one
  moved from another provider's row: the next use of that integration answers 409
  ``token_unreadable`` with a reason, the integration is ERROR with a ``statusReason``
  that says why, nothing reaches the provider, and every other integration - the same
  user's other providers, other users on the same provider - keeps working. The hub keeps
  serving throughout.
* ``hub.keys.rotate`` over 10,000 rows stops after ``max_batches`` with exactly that much
  done, resumes, and ends with every row on the new key and readable with it alone.
* The real ``hub keys rotate`` command, killed with SIGKILL in the middle of a run, leaves
  a table where every row is whole (readable with the old+new ring), and a second run
  finishes the job.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, insert, select

from conftest import serve_hub
from helpers import connect_slack
from hub.infra.crypto import KeyRing, generate_key, key_id, token_context
from hub.store.engine import create_engine, sessionmaker, upgrade
from hub.store.keyrotation import rotate
from hub.store.models import Integration, utcnow
from support import JWT_SECRET, Rows, auth, google_section, trello_section
from test_google import connect_google
from test_trello import connect_by_posting

KEY_A = generate_key("keyA")
KEY_B = generate_key("keyB")
PROVIDERS = ("slack", "trello", "google_calendar")

# One call per provider that needs the stored token, and what it answers when all is well.
USE = {
    "slack": ("POST", "/api/integrations/slack/message", {"json": {"channel": "general", "text": "hi"}}),
    "trello": ("GET", "/api/integrations/trello/boards", {}),
    "google_calendar": ("GET", "/api/integrations/google_calendar/calendars", {}),
}


def flip_one_byte(stored: str) -> str:
    """The same stored value with one bit of its ciphertext changed (not just a base64
    padding bit: the decoded bytes differ)."""
    version, kid, blob = stored.split(".", 2)
    raw = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw[len(raw) // 2] ^= 0x01
    flipped = f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    assert flipped != stored
    return flipped


async def connect(client: Any, fakes: dict[str, Any], provider: str, user: str) -> None:
    if provider == "slack":
        await connect_slack(client, auth(user))
    elif provider == "trello":
        await connect_by_posting(client, fakes["trello"], user=user)
    else:
        await connect_google(client, user=user)


async def use(client: Any, provider: str, user: str) -> tuple[int, dict[str, Any]]:
    method, path, kw = USE[provider]
    resp = await client.request(method, path, headers=auth(user), **kw)
    return resp.status, await resp.json()


async def row_of(db: Rows, user: str, provider: str) -> Integration:
    row = await db.integration(user, provider)
    assert row is not None
    return row


@pytest.fixture
async def three(make_config, fake_slack, fake_trello, fake_google, aiohttp_client) -> tuple[Any, dict[str, Any]]:
    """One hub with all three providers; alice and bob connected to each, carol to Slack."""
    sections = {"trello": trello_section(fake_trello), "google_calendar": google_section(fake_google)}
    client = await serve_hub(make_config(providers=sections), aiohttp_client)
    fakes = {"slack": fake_slack, "trello": fake_trello, "google_calendar": fake_google}
    for user in ("alice", "bob"):
        for provider in PROVIDERS:
            await connect(client, fakes, provider, user)
    await connect(client, fakes, "slack", "carol")
    for user, provider in [("alice", p) for p in PROVIDERS] + [("bob", p) for p in PROVIDERS]:
        status, body = await use(client, provider, user)
        assert status == 200, (user, provider, body)
    return client, fakes


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("damage", ["flipped-byte", "copied-from-another-user", "moved-from-another-provider"])
async def test_unreadable_token_puts_only_that_integration_in_error(three, provider: str, damage: str):
    client, fakes = three
    db = client.db
    victim = "bob"  # the row that gets the damaged value
    target = await row_of(db, victim, provider)
    if damage == "flipped-byte":
        values = {"access_token": flip_one_byte(target.access_token)}
    elif damage == "copied-from-another-user":
        source = await row_of(db, "alice", provider)
        values = {"access_token": source.access_token}
        if source.refresh_token:
            values["refresh_token"] = source.refresh_token
    else:
        other = "trello" if provider != "trello" else "slack"
        source = await row_of(db, victim, other)
        values = {"access_token": source.access_token}
    await db.set_integration(victim, provider, **values)
    others = [(u, p) for u in ("alice", "bob", "carol") for p in PROVIDERS if (u, p) != (victim, provider) and (u != "carol" or p == "slack")]
    before = {(u, p): await row_of(db, u, p) for u, p in others}

    calls = {name: len(fake.calls) for name, fake in fakes.items()}
    status, body = await use(client, provider, victim)
    assert status == 409, body
    assert body["error"]["code"] == "token_unreadable"
    assert "decrypt" in body["error"]["message"] and "connect again" in body["error"]["message"]
    # nothing went to the provider with whatever the damaged value might have decrypted to
    assert {name: len(fake.calls) for name, fake in fakes.items()} == calls
    for value in values.values():
        assert value not in str(body)

    # the integration says what happened and what to do
    resp = await client.get(f"/api/integrations/{provider}", headers=auth(victim))
    view = (await resp.json())["data"]
    assert resp.status == 200 and view["status"] == "ERROR"
    assert "failed to decrypt" in view["statusReason"] and "connect again" in view["statusReason"]
    status, body = await use(client, provider, victim)
    assert status == 409 and "ERROR" in body["error"]["message"]
    moves = await db.activity(user=victim, provider=provider, kind="transition")
    assert moves[-1].request_data["to"] == "ERROR" and "decrypt" in moves[-1].request_data["reason"], moves[-1].request_data

    # every other integration is exactly as it was, and works
    for (user, other), old in before.items():
        now = await row_of(db, user, other)
        assert (now.status, now.access_token, now.refresh_token) == (old.status, old.access_token, old.refresh_token), (user, other)
        status, body = await use(client, other, user)
        assert status == 200, (user, other, body)
    # and the hub as a whole keeps serving
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    resp = await client.get("/api/integrations", headers=auth(victim))
    statuses = {i["provider"]: i["status"] for i in (await resp.json())["data"]}
    assert statuses == {p: ("ERROR" if p == provider else "ACTIVE") for p in PROVIDERS}

    # connecting again repairs it
    await connect(client, fakes, provider, victim)
    status, body = await use(client, provider, victim)
    assert status == 200, body


# --- rotation at scale ----------------------------------------------------------------------

ROWS = 10_000


def plaintext(i: int, field: str) -> str:
    return f"xoxb-{i:05d}-access-secret" if field == "access_token" else f"xoxe-{i:05d}-refresh-secret"


async def bulk_insert(sessions: Any, ring: KeyRing, n: int = ROWS) -> None:
    """n integrations whose tokens are stored as the hub stores them, under ``ring``
    (every third row also holds a refresh token)."""
    now = utcnow()
    batch: list[dict[str, Any]] = []
    async with sessions.begin() as session:
        for i in range(n):
            user = f"user{i:05d}"
            row = {
                "user_id": user, "provider": "slack", "status": "ACTIVE", "version": 1, "meta": {}, "scopes": ["chat:write"],
                "created_at": now, "updated_at": now,
                "access_token": ring.encrypt(plaintext(i, "access_token"), token_context(user, "slack", "access_token")),
                "refresh_token": ring.encrypt(plaintext(i, "refresh_token"), token_context(user, "slack", "refresh_token")) if i % 3 == 0 else None,
            }
            batch.append(row)
            if len(batch) == 1000:
                await session.execute(insert(Integration), batch)
                batch = []
        if batch:
            await session.execute(insert(Integration), batch)


async def key_census(sessions: Any) -> Counter[tuple[str | None, str | None]]:
    """How many rows hold (access key id, refresh key id)."""
    async with sessions() as session:
        rows = (await session.execute(select(Integration.access_token, Integration.refresh_token))).all()
    return Counter((key_id(a) if a else None, key_id(r) if r else None) for a, r in rows)


async def check_all_readable(sessions: Any, ring: KeyRing) -> int:
    async with sessions() as session:
        rows = (await session.execute(select(Integration.user_id, Integration.access_token, Integration.refresh_token))).all()
    for user, access, refresh in rows:
        i = int(user.removeprefix("user"))
        assert ring.decrypt(access, token_context(user, "slack", "access_token")) == plaintext(i, "access_token")
        if i % 3 == 0:
            assert ring.decrypt(refresh, token_context(user, "slack", "refresh_token")) == plaintext(i, "refresh_token")
        else:
            assert refresh is None
    return len(rows)


async def test_rotating_ten_thousand_rows_stops_and_resumes(db_url):
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        sessions = sessionmaker(engine)
        await bulk_insert(sessions, KeyRing.parse(KEY_A))
        assert await key_census(sessions) == {("keyA", "keyA"): 3334, ("keyA", None): 6666}

        both = KeyRing.parse(f"{KEY_B},{KEY_A}")
        first = await rotate(sessions, both, batch_size=500, max_batches=7)
        assert (first.rotated, first.unreadable) == (3500, 0)
        census = await key_census(sessions)
        assert sum(n for (a, _), n in census.items() if a == "keyB") == 3500
        assert sum(n for (a, _), n in census.items() if a == "keyA") == 6500
        # a row is always moved whole: never one field on each key
        assert all(r is None or a == r for (a, r) in census)
        # mid-way, the mixed table is fully readable with the old+new ring
        assert await check_all_readable(sessions, both) == ROWS

        rest = await rotate(sessions, both, batch_size=500)
        assert (rest.rotated, rest.unreadable) == (ROWS - 3500, 0)
        assert await key_census(sessions) == {("keyB", "keyB"): 3334, ("keyB", None): 6666}
        assert await check_all_readable(sessions, KeyRing.parse(KEY_B)) == ROWS  # the old key can go

        again = await rotate(sessions, both, batch_size=500)
        assert again.rotated == 0
    finally:
        await engine.dispose()


async def test_hub_keys_rotate_killed_midway_then_rerun(tmp_path: Path):
    """The CLI on a SQLite file: SIGKILL after a few batches, then a second run."""
    db = tmp_path / "rotate.db"
    url = f"sqlite+aiosqlite:///{db}"
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": url},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": f"{KEY_B},{KEY_A}"},
        "providers": {"slack": {"client_id": "cid", "client_secret": "csecret-value"}},
    }))
    engine = create_engine(url)
    await upgrade(engine)
    sessions = sessionmaker(engine)
    await bulk_insert(sessions, KeyRing.parse(KEY_A))
    await engine.dispose()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HUB_CONFIG", None)
    command = [sys.executable, "-m", "hub", "keys", "rotate", "--config", str(config), "--batch-size", "100"]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    seen = 0
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    while seen < 1000:
        line = (await asyncio.wait_for(proc.stderr.readline(), timeout=max(0.1, deadline - time.monotonic()))).decode()
        assert line, "hub keys rotate ended before it could be interrupted"
        if "re-encrypted" in line:
            seen = int(line.split("re-encrypted")[1].split()[0])
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    engine = create_engine(url)
    try:
        sessions = sessionmaker(engine)
        census = await key_census(sessions)
        done = sum(n for (a, _), n in census.items() if a == "keyB")
        assert 1000 <= done < ROWS, census  # interrupted part-way
        assert all(r is None or a == r for (a, r) in census), census  # no row half-rotated
        assert await check_all_readable(sessions, KeyRing.parse(f"{KEY_B},{KEY_A}")) == ROWS
        async with sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Integration)) == ROWS
    finally:
        await engine.dispose()

    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"re-encrypted {ROWS - done} integration(s) under key 'keyB'" in out.decode(), out.decode()

    engine = create_engine(url)
    try:
        sessions = sessionmaker(engine)
        assert await key_census(sessions) == {("keyB", "keyB"): 3334, ("keyB", None): 6666}
        assert await check_all_readable(sessions, KeyRing.parse(KEY_B)) == ROWS
    finally:
        await engine.dispose()

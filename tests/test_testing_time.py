"""hub.testing's activity read, its time control and the token-paste connect, as a plugin
package's tests use them."""

from __future__ import annotations

from typing import Any

from contract_providers import FakeMemos, FakePasted, Memos, Pasted

from hub.testing import FakeClock, activity, advance_time, auth_headers, connect, expire_access_tokens


async def list_memos(client: Any, user: str = "alice") -> Any:
    return await client.get(f"/api/integrations/{client.provider}/memos", headers=auth_headers(user))


def refreshes(fake: FakeMemos) -> int:
    return sum(1 for c in fake.calls_to("/oauth/token") if c.form.get("grant_type") == "refresh_token")


async def test_activity_waits_for_the_writer_not_for_the_clock(make_hub: Any) -> None:
    # The writer holds each batch back 300 ms, and the logs route waits for it not at all:
    # only activity()'s own wait for the writer's watermark can see the call's row.
    client = await make_hub(Memos(), FakeMemos(), activity={"flush_interval_ms": 300})
    assert (await connect(client)).status == 200
    client.hub.activity.read_wait = 0
    assert (await list_memos(client)).status == 200
    rows = await activity(client, "alice")
    assert [r["action"] for r in rows][:1] == ["list_memos"]
    assert [r["action"] for r in await activity(client, "alice", action="exchange_code")] == ["exchange_code"]


async def test_advance_time_moves_the_fake_and_the_hub_together(make_hub: Any) -> None:
    fake = FakeMemos(expires_in=3600)
    client = await make_hub(Memos(), fake)
    assert (await connect(client)).status == 200
    await advance_time(client, 30)  # well inside the token's life: nothing to do
    assert isinstance(fake.clock, FakeClock)
    assert (await list_memos(client)).status == 200 and refreshes(fake) == 0
    first = next(t for t in fake.tokens.values() if t.kind == "access")
    await advance_time(client, 3600)  # past it, on both sides
    assert not first.usable(fake.clock())
    seen = len(fake.calls)
    assert (await list_memos(client)).status == 200
    assert refreshes(fake) == 1
    # The hub knew the token had expired: it refreshed before using it, not after a 401.
    assert [c.path for c in fake.calls[seen:]] == ["/oauth/token", "/api/memos"]


async def test_expired_without_a_refresh_token_asks_for_a_reconnect(make_hub: Any) -> None:
    client = await make_hub(Pasted(), FakePasted())
    resp = await connect(client)
    assert resp.status == 201, await resp.text()
    await expire_access_tokens(client, user="alice")
    resp = await client.get("/api/integrations/pasted/notes", headers=auth_headers("alice"))
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "reconnect_required"
    view = await (await client.get("/api/integrations/pasted", headers=auth_headers("alice"))).json()
    assert view["data"]["status"] == "EXPIRED"


async def test_token_paste_connect_posts_the_fragments_token_with_the_state(make_hub: Any) -> None:
    fake = FakePasted()
    client = await make_hub(Pasted(), fake)
    resp = await connect(client, user="bob")
    assert resp.status == 201 and (await resp.json())["data"]["status"] == "ACTIVE"
    assert resp.url.path == "/api/integrations/pasted/tokens"
    resp = await connect(client, user="carol", decision="deny")
    assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]  # the page; nothing posted
    assert (await client.get("/api/integrations/pasted", headers=auth_headers("carol"))).status == 404
    assert len(fake.issued) == 1

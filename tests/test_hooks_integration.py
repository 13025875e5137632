"""The hooks that act for one integration outside an action call: ``hub_renew`` (a deadline
set with ``ctx.renew_by``, picked by the background sweep under a lease),
``hub_before_disconnect`` (before the token is revoked) and ``hub_webhook_follow_up`` (a
webhook event completed for each integration it reaches, with the integration's state
checked by the event's ``verify``); and two calls at once for one integration keeping each
other's state changes. Inline plugins beside ``plain``, which implements none
of them and is left alone; the same helpers as tests/test_hooks.py."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from test_hooks import MODES, Plain, implement, paste, request, start, upstream, url  # noqa: F401 - fixtures

from sqlalchemy import select

from hub import Action, CallContext, ProviderError, WebhookEvent, WebhookRequest, WebhookResult, hookimpl, same_digest
from hub.store.models import Event

DEADLINE = datetime(2030, 1, 1, tzinfo=UTC)


async def subscribe(ctx: CallContext) -> Any:
    ctx.update_state(secret_hash=hashlib.sha256(b"s3cret").hexdigest(), cursor=0)
    ctx.renew_by(DEADLINE)
    return {"subscribed": True}


class Upkept(Plain):
    """Sets a deadline and a per-integration secret with its ``subscribe`` action."""

    def __init__(self, name: str, fail: bool = False, again: bool = True) -> None:
        super().__init__(name)
        self.fail, self.again = fail, again

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("subscribe", "POST", "subscribe", subscribe)]

    def renew(self, ctx: CallContext) -> Any:
        self.calls.append((ctx.provider.name, "renew", ctx.user_id, ctx.access_token, dict(ctx.state)))
        if self.fail:
            raise ProviderError("the renewal failed", code="provider_error")
        if self.again:
            ctx.renew_by(DEADLINE + timedelta(days=7))
        ctx.update_state(renewals=int(ctx.state.get("renewals") or 0) + 1)
        return {"renewed": True}

    def before_disconnect(self, ctx: CallContext) -> Any:
        self.calls.append((ctx.provider.name, "before_disconnect", ctx.user_id, ctx.access_token, dict(ctx.state)))
        ctx.update_state(unsubscribed=True)
        return {"unsubscribed": True}

    @hookimpl
    def hub_webhook(self, request: WebhookRequest) -> WebhookResult:
        given = hashlib.sha256((request.header("X-Secret") or "").encode()).hexdigest()
        return WebhookResult(events=(WebhookEvent(
            type="changed", match={"accountId": "u-1"}, data={"n": request.header("X-N")}, dedupe_key=request.header("X-N"),
            verify=lambda state: same_digest(str(state.get("secret_hash") or ""), given), exclusive=True, follow_up=True,
        ),))

    @hookimpl
    async def hub_webhook_follow_up(self, ctx: CallContext, event: WebhookEvent) -> Any:
        self.calls.append((ctx.provider.name, "follow_up", ctx.user_id, ctx.access_token, dict(ctx.input)))
        cursor = int(ctx.state.get("cursor") or 0) + 1
        ctx.update_state(cursor=cursor)
        return {"n": event.data["n"], "cursor": cursor}


def upkept(mode: str = "async", **options: Any) -> Upkept:
    """An Upkept whose hub_renew and hub_before_disconnect are plain functions or async."""

    class Flavoured(Upkept):
        @implement(mode)
        def hub_renew(self, ctx):
            return self.renew(ctx)

        @implement(mode)
        def hub_before_disconnect(self, ctx):
            return self.before_disconnect(ctx)

    return Flavoured("demo", **options)


async def subscribed(starter: Any, mocked: Any, plugin: Upkept) -> Any:
    client = await starter({"demo": plugin})
    for name in ("demo", "plain"):
        mocked.get(url(name, "userinfo"), payload={"sub": "u-1"}, repeat=True)
        assert (await paste(client, name, f"{name}-tok"))[0] == 201
    assert (await request(client, "POST", "demo/subscribe", json={}))[0] == 200
    return client


async def row(client: Any, provider: str = "demo") -> Any:
    return await client.db.integration(provider=provider)


@MODES
async def test_hook_hub_renew(mode, start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = upkept(mode)
    client = await subscribed(start, upstream, plugin)
    assert (await row(client)).renew_by == DEADLINE and (await row(client, "plain")).renew_by is None
    renewals = client.hub.renewals
    renewals.clock = lambda: DEADLINE - timedelta(hours=2)  # ahead_seconds is an hour
    assert await renewals.sweep() == 0 and plugin.calls == []
    renewals.clock = lambda: DEADLINE - timedelta(minutes=30)
    assert await renewals.sweep() == 1
    ((provider, what, user, token, state),) = plugin.calls
    assert (provider, what, user, token, state["cursor"]) == ("demo", "renew", "alice", "demo-tok", 0)
    stored = await row(client)
    assert stored.renew_by == DEADLINE + timedelta(days=7) and stored.renew_lease_until is None
    assert stored.meta["state"]["renewals"] == 1
    assert await renewals.sweep() == 0  # the next deadline is a week on
    assert [r.status for r in await client.db.activity(action="renew")] == ["SUCCESS"]

    plugin.again = False  # renewed, and no new deadline asked: never picked again
    renewals.clock = lambda: DEADLINE + timedelta(days=7)
    assert await renewals.sweep() == 1 and (await row(client)).renew_by is None
    assert await renewals.sweep() == 0


async def test_a_failed_renewal_keeps_its_deadline_and_waits_for_the_lease(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = upkept(fail=True)
    client = await subscribed(start, upstream, plugin)
    renewals = client.hub.renewals
    renewals.clock = lambda: DEADLINE - timedelta(minutes=30)
    assert await renewals.sweep() == 0 and len(plugin.calls) == 1
    stored = await row(client)
    assert stored.renew_by == DEADLINE and stored.renew_lease_until == DEADLINE - timedelta(minutes=25)
    assert await renewals.sweep() == 0 and len(plugin.calls) == 1  # leased
    renewals.clock = lambda: DEADLINE - timedelta(minutes=24)
    plugin.fail = False
    assert await renewals.sweep() == 1 and len(plugin.calls) == 2
    assert [r.status for r in await client.db.activity(action="renew")] == ["FAILED", "SUCCESS"]


@MODES
async def test_hook_hub_before_disconnect(mode, start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = upkept(mode)
    client = await subscribed(start, upstream, plugin)
    upstream.post(url("demo", "revoke"), status=200, repeat=True)
    upstream.post(url("plain", "revoke"), status=200, repeat=True)
    assert (await request(client, "DELETE", "demo/disconnect"))[0] == 200
    ((_, what, user, token, _),) = plugin.calls
    assert (what, user, token) == ("before_disconnect", "alice", "demo-tok")  # while the token still worked
    stored = await row(client)
    assert stored.status == "INACTIVE" and stored.meta["state"]["unsubscribed"] is True and stored.renew_by is None
    assert [r.action for r in await client.db.activity(action="before_disconnect")] == ["before_disconnect"]
    assert (await request(client, "DELETE", "plain/disconnect"))[0] == 200  # no hook: disconnects as before
    assert len(plugin.calls) == 1


async def test_hook_hub_webhook_follow_up(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = upkept()
    client = await subscribed(start, upstream, plugin)
    hook = "/api/integrations/demo/webhook"
    resp = await client.post(hook, data=b"", headers={"X-Secret": "wrong", "X-N": "1"})
    assert resp.status == 401 and plugin.calls == []  # verify refused, exclusive: nothing ran, nothing stored
    resp = await client.post(hook, data=b"", headers={"X-Secret": "s3cret", "X-N": "1"})
    assert (resp.status, (await resp.json())["data"]) == (200, {"routed": 1, "duplicates": 0})
    ((_, what, user, token, data),) = plugin.calls
    assert (what, user, token, data) == ("follow_up", "alice", "demo-tok", {"n": "1"})
    stored = await row(client)
    assert stored.meta["state"]["cursor"] == 1  # kept with the event
    async with client.hub.sessions() as session:
        (event,) = (await session.scalars(select(Event).where(Event.type == "demo.changed"))).all()
    assert event.payload["data"]["event"] == {"n": "1", "cursor": 1}  # what the hook returned
    resp = await client.post(hook, data=b"", headers={"X-Secret": "s3cret", "X-N": "1"})
    assert (await resp.json())["data"] == {"routed": 0, "duplicates": 1} and len(plugin.calls) == 1  # no second follow-up
    rows = await client.db.activity(action="webhook_follow_up")
    assert [r.status for r in rows] == ["SUCCESS"]


class Tagger(Plain):
    """Actions that change one dict (a cursor per tag, changed in place, as a handler may)
    and one list of the state; the tag ``slow`` waits for the test once it has read them."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.waiting, self.release = asyncio.Event(), asyncio.Event()

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("begin", "POST", "begin", self.begin), Action("tag", "POST", "tags/{tag}", self.tag)]

    async def begin(self, ctx: CallContext) -> Any:
        ctx.update_state(cursors={"a": 0}, tags=["a"], count=0)
        return {}

    async def tag(self, ctx: CallContext) -> Any:
        tag = ctx.input["tag"]
        cursors = ctx.state["cursors"]
        cursors[tag] = cursors.get(tag, 0) + 1
        tags, count = [*ctx.state["tags"], tag], ctx.state["count"] + 1
        if tag == "slow":
            self.waiting.set()
            await self.release.wait()
        ctx.update_state(cursors=cursors, tags=tags, count=count)
        return {"tag": tag}


async def test_two_actions_at_once_keep_each_others_state_changes(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = Tagger("demo")
    client = await start({"demo": plugin})
    upstream.get(url("demo", "userinfo"), payload={"sub": "u-1"}, repeat=True)
    assert (await paste(client, "demo", "demo-tok"))[0] == 201
    assert (await request(client, "POST", "demo/begin", json={}))[0] == 200
    slow = asyncio.create_task(request(client, "POST", "demo/tags/slow", json={}))
    await plugin.waiting.wait()  # slow has read the state and changed its copy of it
    assert (await request(client, "POST", "demo/tags/fast", json={}))[0] == 200
    plugin.release.set()
    assert (await slow)[0] == 200
    state = (await row(client)).meta["state"]
    assert state["cursors"] == {"a": 0, "slow": 1, "fast": 1} and state["tags"] == ["a", "fast", "slow"]
    assert state["count"] == 1  # a plain value both changed: the later writer's


class Lingering(Upkept):
    """Renews and asks no further deadline, waiting for the test first; ``extend`` asks one."""

    def __init__(self) -> None:
        super().__init__("demo", again=False)
        self.waiting, self.release = asyncio.Event(), asyncio.Event()

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("subscribe", "POST", "subscribe", subscribe), Action("extend", "POST", "extend", self.extend)]

    async def extend(self, ctx: CallContext) -> Any:
        ctx.renew_by(DEADLINE + timedelta(days=1))
        return {}

    @hookimpl
    async def hub_renew(self, ctx: CallContext) -> Any:
        self.waiting.set()
        await self.release.wait()
        return self.renew(ctx)


async def test_a_deadline_asked_while_a_renewal_runs_outlives_it(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    plugin = Lingering()
    client = await subscribed(start, upstream, plugin)
    client.hub.renewals.clock = lambda: DEADLINE - timedelta(minutes=30)
    sweep = asyncio.create_task(client.hub.renewals.sweep())
    await plugin.waiting.wait()
    assert (await request(client, "POST", "demo/extend", json={}))[0] == 200
    plugin.release.set()
    assert await sweep == 1
    stored = await row(client)
    assert stored.renew_by == DEADLINE + timedelta(days=1) and stored.meta["state"]["renewals"] == 1  # not cancelled by the renewal

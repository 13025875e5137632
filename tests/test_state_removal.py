"""``ctx.remove_state`` through real action calls: a removed top-level key leaves the stored
state when the call succeeds and only then, and two calls at once for one integration merge
a removal with the other's change (docs/plugins.md, "State and calls at once"). An inline
plugin beside ``plain``; the same helpers as tests/test_hooks.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_hooks import Plain, paste, request, start, upstream, url  # noqa: F401 - fixtures

from hub import Action, CallContext, ProviderError, hookimpl

BEGUN = {"channels": {"c1": {"exp": 1}}, "cursor": 0, "legacy": "v1"}


class Pruner(Plain):
    """``begin`` sets the state above; ``change`` sets the values of its body's ``values``,
    ``drop`` removes the keys of its body's ``keys`` (and fails after that when ``fail``).
    With ``"hold": true`` a call waits for the test once it has read the state."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.waiting, self.release = asyncio.Event(), asyncio.Event()

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [Action("begin", "POST", "begin", self.begin), Action("change", "POST", "change", self.change),
                Action("drop", "POST", "drop", self.drop)]

    async def begin(self, ctx: CallContext) -> Any:
        ctx.update_state(**BEGUN)
        return {}

    async def hold(self, ctx: CallContext) -> None:
        if ctx.input.get("hold"):
            self.waiting.set()
            await self.release.wait()

    async def change(self, ctx: CallContext) -> Any:
        await self.hold(ctx)
        ctx.update_state(**ctx.input["values"])
        return {}

    async def drop(self, ctx: CallContext) -> Any:
        await self.hold(ctx)
        ctx.remove_state(*ctx.input["keys"])
        if ctx.input.get("fail"):
            raise ProviderError("upstream refused", code="provider_error")
        return {}


async def begun(starter: Any, mocked: Any) -> tuple[Any, Pruner]:
    plugin = Pruner("demo")
    client = await starter({"demo": plugin})
    mocked.get(url("demo", "userinfo"), payload={"sub": "u-1"}, repeat=True)
    assert (await paste(client, "demo", "demo-tok"))[0] == 201
    assert (await request(client, "POST", "demo/begin", json={}))[0] == 200
    return client, plugin


async def stored(client: Any) -> dict[str, Any]:
    return (await client.db.integration(provider="demo")).meta["state"]


async def test_a_removed_key_is_gone_when_the_call_succeeds_and_kept_when_it_fails(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    client, _ = await begun(start, upstream)
    status, body, _ = await request(client, "POST", "demo/drop", json={"keys": ["legacy"], "fail": True})
    assert (status, body["error"]["code"]) == (502, "provider_error") and await stored(client) == BEGUN
    status, body, _ = await request(client, "POST", "demo/drop", json={"keys": [7]})  # not a key name: the plugin's bug
    assert (status, body["error"]["code"]) == (502, "plugin_error") and await stored(client) == BEGUN
    assert (await request(client, "POST", "demo/drop", json={"keys": ["legacy", "never-set"]}))[0] == 200
    assert await stored(client) == {"channels": {"c1": {"exp": 1}}, "cursor": 0}


async def test_two_calls_at_once_one_removing_a_key_one_updating_another_keep_both(start, upstream) -> None:  # noqa: F811 - the fixtures imported above
    client, plugin = await begun(start, upstream)
    slow = asyncio.create_task(request(client, "POST", "demo/drop", json={"keys": ["legacy"], "hold": True}))
    await plugin.waiting.wait()  # the removing call has read the state
    assert (await request(client, "POST", "demo/change", json={"values": {"cursor": 5}}))[0] == 200
    plugin.release.set()
    assert (await slow)[0] == 200
    assert await stored(client) == {"channels": {"c1": {"exp": 1}}, "cursor": 5}


@pytest.mark.parametrize(("held", "then", "want"), [
    # The removal saved last: the key goes though the other call changed it meanwhile.
    ({"keys": ["channels"]}, ("change", {"values": {"channels": {"c1": {"exp": 1}, "c2": {"exp": 2}}}}), {}),
    # The change saved last: it sets the key the other call removed meanwhile again.
    ({"values": {"channels": {"c1": {"exp": 9}}}}, ("drop", {"keys": ["channels"]}), {"channels": {"c1": {"exp": 9}}}),
], ids=["removal-last", "change-last"])
async def test_a_removal_and_a_change_of_one_key_at_once_the_later_writer_wins(start, upstream, held, then, want) -> None:  # noqa: F811 - the fixtures imported above
    client, plugin = await begun(start, upstream)
    held_action = "drop" if "keys" in held else "change"
    slow = asyncio.create_task(request(client, "POST", f"demo/{held_action}", json={**held, "hold": True}))
    await plugin.waiting.wait()  # the held call has read the state
    assert (await request(client, "POST", f"demo/{then[0]}", json=then[1]))[0] == 200
    plugin.release.set()
    assert (await slow)[0] == 200
    assert await stored(client) == {"cursor": 0, "legacy": "v1", **want}

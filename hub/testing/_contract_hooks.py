"""The tests of :class:`hub.testing.ProviderContract` for the hooks a plugin may lack: webhooks
in (``hub_webhook``) and what is undone before a disconnect (``hub_before_disconnect``), with
the overridable hooks they use. Each test skips, saying why, when the plugin lacks its hook."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ._contract_parts import ContractMixin, error_code, implements, integration_id, traces, upstream_calls, webhook_path
from .fake import FakeProvider
from .kit import auth_headers
from .observe import activity

# How many requests the default provoke_before_disconnect_failure fails: more than a hook's
# calls and the hub's retries of them. Whatever is left is cleared after the disconnect.
BEFORE_DISCONNECT_FAULTS = 10


class HookContract(ContractMixin):
    """The webhook and ``hub_before_disconnect`` part of :class:`hub.testing.ProviderContract`."""

    # ------------------------------------------------------------------ hooks

    def unsigned_delivery(self) -> tuple[Mapping[str, str], bytes]:
        """The ``(headers, body)`` of a webhook delivery with no valid signature or
        verification: by default a small JSON body and none of the provider's headers."""
        return {"Content-Type": "application/json"}, b'{"type": "event", "id": "contract-unsigned-0001", "data": {}}'

    async def signed_delivery(self, client: TestClient) -> tuple[Mapping[str, str], bytes] | None:
        """The ``(headers, body)`` of a genuine webhook delivery of one event for the connected
        integration (signed as the provider signs, with whatever it must name set up first,
        such as a webhook or channel created through an action), or ``None`` to skip the test."""
        return None

    async def prepare_before_disconnect(self, client: TestClient) -> None:
        """Set up what ``hub_before_disconnect`` undoes upstream (a webhook, a push channel),
        so that it has calls to make: by default nothing."""

    def provoke_before_disconnect_failure(self, fake: FakeProvider) -> None:
        """Make the provider fail the calls ``hub_before_disconnect`` makes: by default the next
        requests to ``fake.api_path`` answer 500."""
        fake.fail_next(500, {"error": "contract_failure"}, path=fake.api_path, count=BEFORE_DISCONNECT_FAULTS)

    # ------------------------------------------------------------------ plumbing

    def require_hook(self, hook: str) -> None:
        if not implements(self.plugin, hook):
            pytest.skip(f"the plugin implements no {hook}")

    async def deliver(self, client: Any, headers: Mapping[str, str], body: bytes) -> tuple[int, Any]:
        """POST a webhook delivery to the hub; its status and its JSON answer (or text)."""
        resp = await client.post(webhook_path(client.provider), data=body, headers=dict(headers))
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    # ------------------------------------------------------------------ the contract

    async def test_webhook_refuses_an_unsigned_delivery(self, make_hub: Any) -> None:
        self.require_hook("hub_webhook")
        client = await self.connected(make_hub)
        before = await traces(client)
        status, answer = await self.deliver(client, *self.unsigned_delivery())
        assert status == 401 and error_code(answer) == "webhook_rejected", (
            f"a webhook delivery without a valid signature answered {status}: {answer} (expected 401 webhook_rejected: "
            "raise hub.WebhookRejected)")
        added = (await traces(client)).since(before)
        assert not added.events, f"a refused webhook delivery emitted events: {added.events}"
        assert not added.logs, f"a refused webhook delivery left webhook activity rows: {added.logs}"

    async def test_webhook_delivery_is_routed_once(self, make_hub: Any) -> None:
        self.require_hook("hub_webhook")
        client = await self.connected(make_hub)
        delivery = await self.signed_delivery(client)
        if delivery is None:
            pytest.skip("no genuine delivery to send: override signed_delivery(client) to return the headers and body "
                        "of one the provider would send for the connected integration")
        headers, body = delivery
        mine = await integration_id(client, self.user)
        before = await traces(client)
        status, answer = await self.deliver(client, headers, body)
        assert 200 <= status < 300, f"a genuine webhook delivery answered {status}: {answer}"
        first = await traces(client)
        added = first.since(before)
        assert len(added.events) == 1, f"a genuine webhook delivery emitted {len(added.events)} events, not one: {added.events}"
        (_, to, kind), = added.events
        assert to == mine and kind.startswith(f"{client.provider}."), (
            f"the delivery's event {kind!r} went to integration {to}, not to the connected integration {mine}")
        assert [r[1] for r in added.logs] == [mine], f"expected one webhook activity row for integration {mine}: {added.logs}"
        status, answer = await self.deliver(client, headers, body)
        assert 200 <= status < 300, f"the same delivery sent again answered {status} (a provider retries until a 2xx): {answer}"
        again = (await traces(client)).since(first)
        assert not again.events, (f"the same delivery sent again emitted another event: {again.events} "
                                  "(give the WebhookEvent the provider's event id as its dedupe_key)")

    async def test_disconnect_goes_on_when_before_disconnect_fails(self, make_hub: Any) -> None:
        self.require_hook("hub_before_disconnect")
        client = await self.connected(make_hub)
        await self.prepare_before_disconnect(client)
        fake = client.fake
        seen = len(fake.calls)
        self.provoke_before_disconnect_failure(fake)
        resp = await client.delete(f"/api/integrations/{client.provider}/disconnect", headers=auth_headers(self.user))
        if hasattr(fake, "clear_faults"):
            fake.clear_faults()
        body = await resp.json()
        assert resp.status == 200, f"with hub_before_disconnect failing, the disconnect answered {resp.status}: {body}"
        assert not body["data"]["hasCredentials"], f"with hub_before_disconnect failing, the credentials stayed: {body}"
        rows = await activity(client, self.user, action="before_disconnect")
        assert len(rows) == 1, f"a disconnect should leave one before_disconnect activity row, not {len(rows)}: {rows}"
        upstream = upstream_calls(fake, seen)
        if not upstream:
            pytest.skip("hub_before_disconnect made no call to the provider, so nothing could fail: override "
                        "prepare_before_disconnect(client) to set up what it undoes")
        if rows[0]["status"] != "FAILED":
            pytest.skip(f"hub_before_disconnect absorbed the provider's failures itself (its row is {rows[0]['status']}, "
                        f"calls {upstream}): override provoke_before_disconnect_failure(fake) with one it passes on")
        assert rows[0]["errorMessage"], f"the failed before_disconnect row says nothing of the failure: {rows[0]}"

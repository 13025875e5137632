"""Trello webhooks in (docs/events.md, "Provider webhooks in"): the create action passes
Trello's HEAD check and stores the board; a delivery signed with the app secret over body
+ callback URL reaches the integration that created the webhook as a signed event out;
a bad or missing signature is refused with 401 and stores nothing; a delivery sent again
emits nothing twice; deleting the webhook stops the routing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from conftest import serve_hub
from eventsupport import Subscriber, with_subscriber
from hub.infra.config import HubConfig
from hub.store.models import Event, IntegrationLog
from support import auth, trello_section
from test_trello import connect_by_posting

T = "/api/integrations/trello"
ROADMAP = "5f5e1000c94e25866f000002"


@pytest.fixture
async def trello_hooked(make_config: Callable[..., HubConfig], fake_trello: Any, aiohttp_client: Any, subscriber: Subscriber) -> Any:
    config = with_subscriber(make_config(providers={"trello": trello_section(fake_trello)}), subscriber.url)
    client = await serve_hub(config, aiohttp_client)
    await connect_by_posting(client, fake_trello)
    return client


async def stored(client: Any) -> tuple[list[Event], list[IntegrationLog]]:
    async with client.hub.sessions() as session:
        events = list((await session.scalars(select(Event).where(Event.type.like("trello.%")).order_by(Event.id))).all())
        logs = list((await session.scalars(select(IntegrationLog).where(IntegrationLog.kind == "webhook"))).all())
    return events, logs


async def create(client: Any) -> dict[str, Any]:
    resp = await client.post(f"{T}/webhooks", json={"idModel": ROADMAP}, headers=auth("alice"))
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def test_creating_a_webhook_passes_trellos_head_check_and_deliveries_become_events(trello_hooked, fake_trello, subscriber) -> None:
    hook = await create(trello_hooked)
    assert hook["callbackURL"] == str(trello_hooked.make_url(f"{T}/webhook")) and hook["idModel"] == ROADMAP
    head = trello_hooked.make_url(f"{T}/webhook")
    assert (await trello_hooked.session.head(head)).status == 200  # what Trello checked before creating it

    assert await fake_trello.send_action(ROADMAP, "updateCard", {"card": {"id": "c1", "name": "Renamed"}}, action_id="a" * 24) == [200]
    (event,), (row,) = await stored(trello_hooked)
    integration = await trello_hooked.db.integration(provider="trello")
    assert (event.type, event.integration_id, row.integration_id) == ("trello.updatecard", integration.id, integration.id)
    await trello_hooked.hub.events.deliverer.run_once()
    (payload,) = [p for p in subscriber.verified() if p["type"] == "trello.updatecard"]
    assert payload["data"]["event"]["action"]["data"]["card"]["name"] == "Renamed"
    assert payload["data"]["event"]["modelId"] == ROADMAP

    # Sent again (Trello signs no timestamp): accepted, nothing emitted twice.
    delivery = fake_trello.deliveries[-1]
    resp = await trello_hooked.post(f"{T}/webhook", data=delivery["body"], headers=delivery["headers"])
    assert (resp.status, (await resp.json())["data"]) == (200, {"routed": 0, "duplicates": 1})
    assert len((await stored(trello_hooked))[0]) == 1


async def test_the_fakes_control_routes_list_webhooks_and_send_an_action(trello_hooked, fake_trello) -> None:
    """What a sandbox user does with curl: see the webhook the hub made, then change the board."""
    import aiohttp

    hook = await create(trello_hooked)
    control = fake_trello.base_url.rstrip("/") + "/_fake/webhooks"
    async with aiohttp.ClientSession() as http:
        async with http.get(control) as resp:
            assert (await resp.json())["webhooks"] == [{"id": hook["id"], "idModel": ROADMAP, "callbackURL": hook["callbackURL"], "active": True}]
        for bad in ({"board": "nope"}, {"board": ROADMAP, "type": "update card"}, {"board": ROADMAP, "data": []}, {"board": ROADMAP, "x": 1}, [1]):
            async with http.post(control + "/send", json=bad) as resp:
                assert resp.status == 400, bad
        async with http.post(control + "/send", json={"board": ROADMAP, "type": "createCard", "data": {"card": {"id": "c9", "name": "New"}}}) as resp:
            assert (resp.status, await resp.json()) == (200, {"sent": [200]})
    (event,), (row,) = await stored(trello_hooked)
    assert event.type == "trello.createcard" and event.payload["data"]["event"]["action"]["data"]["card"]["name"] == "New"


@pytest.mark.parametrize("tamper", ["signature", "body", "missing"])
async def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(trello_hooked, fake_trello, tamper) -> None:
    hook = await create(trello_hooked)
    body, headers = fake_trello.delivery(fake_trello.webhooks[hook["id"]], "updateCard", {})
    if tamper == "signature":
        headers["X-Trello-Webhook"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    elif tamper == "body":
        body = body.replace(b"updateCard", b"deleteCard")
    else:
        del headers["X-Trello-Webhook"]
    resp = await trello_hooked.post(f"{T}/webhook", data=body, headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "webhook_rejected")
    assert await stored(trello_hooked) == ([], [])


async def test_a_signature_for_another_callback_url_is_refused(trello_hooked, fake_trello) -> None:
    hook = await create(trello_hooked)
    body, headers = fake_trello.delivery({**fake_trello.webhooks[hook["id"]], "callbackURL": "https://elsewhere.example/hook"}, "updateCard", {})
    resp = await trello_hooked.post(f"{T}/webhook", data=body, headers=headers)
    assert resp.status == 401
    assert await stored(trello_hooked) == ([], [])


async def test_a_failed_head_check_creates_nothing(trello_hooked, fake_trello, monkeypatch) -> None:
    monkeypatch.setitem(trello_hooked.hub.registry.providers["trello"].hooks, "hub_webhook",
                        trello_hooked.hub.registry.providers["slack"].hooks["hub_webhook"])  # answers HEAD 401
    resp = await trello_hooked.post(f"{T}/webhooks", json={"idModel": ROADMAP}, headers=auth("alice"))
    assert resp.status == 400, await resp.text()
    assert "did not return 200" in (await resp.json())["error"]["message"]
    assert fake_trello.webhooks == {}
    integration = await trello_hooked.db.integration(provider="trello")
    assert not (integration.meta.get("state") or {}).get("webhook_models")


async def test_deleting_the_webhook_stops_the_routing(trello_hooked, fake_trello) -> None:
    hook = await create(trello_hooked)
    body, headers = fake_trello.delivery(fake_trello.webhooks[hook["id"]], "updateCard", {})
    resp = await trello_hooked.delete(f"{T}/webhooks/{hook['id']}", headers=auth("alice"))
    assert (resp.status, (await resp.json())["data"]) == (200, {"deleted": hook["id"]})
    assert fake_trello.webhooks == {}
    resp = await trello_hooked.post(f"{T}/webhook", data=body, headers=headers)  # a delivery still in flight
    assert (resp.status, json.loads(await resp.text())["data"]["routed"]) == (200, 0)
    assert await stored(trello_hooked) == ([], [])

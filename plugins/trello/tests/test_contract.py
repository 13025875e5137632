"""The provider contract of hub.testing, run against the fake Trello."""

from typing import Any

import hub_trello
from hub_trello.fake import FakeTrello
from hub_trello.webhooks import CREATE_EXAMPLES

from hub.testing import ProviderContract, auth_headers


class TestTrelloContract(ProviderContract):
    plugin = hub_trello

    def make_fake(self) -> FakeTrello:
        return FakeTrello()

    # Deleting needs a webhook made by this integration first; tests/test_webhooks_trello.py does both.
    skip_actions = {"delete_webhook": "needs a webhook created first (covered by tests/test_webhooks_trello.py)"}

    async def signed_delivery(self, client: Any) -> tuple[dict[str, str], bytes]:
        # Trello routes a delivery to the integrations that created a webhook for its board:
        # create one through the hub's action first, then sign a change on that board as
        # Trello signs it (the app secret over the body and the callback URL).
        resp = await client.post(f"/api/integrations/{client.provider}/webhooks", json=CREATE_EXAMPLES[0], headers=auth_headers(self.user))
        assert resp.status == 200, await resp.text()
        hook = client.fake.webhooks[(await resp.json())["data"]["id"]]
        body, headers = client.fake.delivery(hook, "updateCard", {"card": {"id": "5f5e1000c94e25866f000020", "name": "Contract"}})
        return headers, body

"""The provider contract of hub.testing, run against the fake Trello."""

import hub_trello
from hub_trello.fake import FakeTrello

from hub.testing import ProviderContract


class TestTrelloContract(ProviderContract):
    plugin = hub_trello

    def make_fake(self) -> FakeTrello:
        return FakeTrello()

    # Deleting needs a webhook made by this integration first; tests/test_webhooks_trello.py does both.
    skip_actions = {"delete_webhook": "needs a webhook created first (covered by tests/test_webhooks_trello.py)"}

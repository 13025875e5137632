"""The provider contract of hub.testing, run against the fake Trello."""

import hub_trello
from hub_trello.fake import FakeTrello

from hub.testing import ProviderContract


class TestTrelloContract(ProviderContract):
    plugin = hub_trello

    def make_fake(self) -> FakeTrello:
        return FakeTrello()

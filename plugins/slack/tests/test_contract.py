"""The provider contract of hub.testing, run against the fake Slack."""

import hub_slack
from hub_slack.fake import FakeSlack

from hub.testing import ProviderContract


class TestSlackContract(ProviderContract):
    plugin = hub_slack

    def make_fake(self) -> FakeSlack:
        return FakeSlack(rotation=True)

    def provoke_unauthorized(self, fake: FakeSlack) -> None:
        # Slack refuses a dead token with HTTP 200 and ok: false, not with a 401.
        fake.slack_error_next("conversations.list", "invalid_auth", count=2)

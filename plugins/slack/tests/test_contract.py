"""The provider contract of hub.testing, run against the fake Slack."""

from typing import Any

import hub_slack
from hub_slack.fake import FakeSlack

from hub.testing import ProviderContract

MESSAGE = {"type": "message", "channel": "C0000000001", "user": "U0000000001", "text": "hello from the contract", "ts": "1700000000.000100"}


class TestSlackContract(ProviderContract):
    plugin = hub_slack

    def make_fake(self) -> FakeSlack:
        return FakeSlack(rotation=True)

    def provoke_unauthorized(self, fake: FakeSlack) -> None:
        # Slack refuses a dead token with HTTP 200 and ok: false, not with a 401.
        fake.slack_error_next("conversations.list", "invalid_auth", count=2)

    async def signed_delivery(self, client: Any) -> tuple[dict[str, str], bytes]:
        # An Events API callback for the connected workspace, to its bot user, signed with
        # the app's signing secret (the fake's, which hub_settings gives the hub).
        fake = client.fake
        body = fake.event_body(MESSAGE, team_id=fake.account["team_id"], event_id="Ev0CONTRACT1")
        return fake.signed(body), body

"""The provider contract of hub.testing, run against the fake Google Calendar."""

from typing import Any

import hub_google_calendar
from hub_google_calendar.fake import FakeGoogle
from hub_google_calendar.schemas import AN_EVENT

from hub.testing import ProviderContract, auth_headers


class TestGoogleCalendarContract(ProviderContract):
    plugin = hub_google_calendar

    def make_fake(self) -> FakeGoogle:
        return FakeGoogle()

    async def prepare_example(self, client: Any, action: Any, example: Any) -> Any:
        # The examples that change or delete an event name one: the fake holds it first.
        if action.name in ("update_event", "delete_event"):
            try:
                client.fake.add_event("primary", id=AN_EVENT, summary="Sprint planning")
            except ValueError:  # still there from an earlier example of this test
                pass
        return example

    async def watch(self, client: Any) -> None:
        """A push channel on the primary calendar, opened through the hub's action. The fake
        holds its messages until the test sends them, so none arrives at a moment of its own."""
        client.fake.auto_send = False
        resp = await client.post(f"/api/integrations/{client.provider}/watch", json={}, headers=auth_headers(self.user))
        assert resp.status == 200, await resp.text()

    async def signed_delivery(self, client: Any) -> tuple[dict[str, str], bytes]:
        # Google signs nothing: a message is genuine when it names a channel the integration
        # opened, with that channel's token. Open one, let its sync ping through, change the
        # calendar, and hand over the change message the fake would send.
        fake = client.fake
        await self.watch(client)
        assert await fake.send_pending() == [200]  # the sync ping: logged, no event
        fake.add_event("primary", summary="Contract review")
        (message,) = fake._pending
        fake._pending.clear()
        return dict(message["headers"]), b""

    async def prepare_renewal(self, client: Any) -> bool:
        await self.watch(client)  # the channel asks to be renewed before it expires
        return True

    async def prepare_before_disconnect(self, client: Any) -> None:
        await self.watch(client)  # the hook stops the channel

    def provoke_before_disconnect_failure(self, fake: FakeGoogle) -> None:
        # The plugin absorbs a 5xx on channels.stop (the channel expires on its own) and passes
        # an auth failure on to the hub, which refreshes and calls again: refuse both calls.
        fake.fail_next(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}, path=f"{fake.api_path}/channels/stop", count=2)

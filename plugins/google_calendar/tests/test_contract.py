"""The provider contract of hub.testing, run against the fake Google Calendar."""

from typing import Any

import hub_google_calendar
from hub_google_calendar.fake import FakeGoogle
from hub_google_calendar.schemas import AN_EVENT

from hub.testing import ProviderContract


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

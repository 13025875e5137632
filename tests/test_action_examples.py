"""Every built-in action, called through the hub with each of its declared examples against
its provider's fake, answers 2xx with data its output_schema accepts: the declarations say
what the handlers really return. (The contract suite of hub.testing does the same once a
plugin's fake is built on hub.testing.FakeProvider.)"""

from __future__ import annotations

from typing import Any

import hub_google_calendar
import hub_slack
import hub_trello
import pytest
import support

from hub.testing import connect
from hub.testing._contract_parts import call_action, declared_actions, output_problems


@pytest.fixture(autouse=True)
def _the_suites_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # These hubs are the suite's own (tests/conftest.py), which sign JWTs with its secret.
    monkeypatch.setattr("hub.testing.kit.JWT_SECRET", support.JWT_SECRET)


async def answers(client: Any, provider: str, plugin: object, before: dict[str, Any] | None = None) -> list[str]:
    resp = await connect(client, provider, "alice")
    assert resp.status in (200, 201), await resp.text()
    problems = []
    for action in declared_actions(plugin):
        for i, example in enumerate(action.examples):
            (before or {}).get(action.name, lambda: None)()
            resp = await call_action(client, provider, action, example, "alice")
            body = await resp.json()
            where = f"{provider}.{action.name} examples[{i}]"
            if resp.status >= 300:
                problems.append(f"{where}: {resp.status} {body}")
            elif action.output_schema is not None:
                problems += [f"{where}: {p}" for p in output_problems(action.output_schema, body["data"])]
    return problems


async def test_slack_examples(hub_app: Any, fake_slack: Any) -> None:
    assert await answers(hub_app, "slack", hub_slack) == []


async def test_trello_examples(trello_app: Any, fake_trello: Any) -> None:
    assert await answers(trello_app, "trello", hub_trello) == []


async def test_google_calendar_examples(google_app: Any, fake_google: Any) -> None:
    from hub_google_calendar.schemas import AN_EVENT

    # The event the update and delete examples name: Google's ids are the server's to make.
    seed = {"update_event": lambda: fake_google.add_event("primary", id=AN_EVENT, summary="Sprint planning")}
    assert await answers(google_app, "google_calendar", hub_google_calendar, seed) == []

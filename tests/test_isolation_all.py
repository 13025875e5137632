"""Issue 6, item 3: tenant isolation on every route, for every provider.

Alice connects Slack, Trello and Google Calendar and uses each. Bob, who has connected
nothing, then calls every route of the API - the list comes from the hub's own OpenAPI
document, so a route added later is covered without touching this file - naming Alice's
providers, with input that passes validation (the first example schemathesis generates
from the documented schema), so each request reaches the point where the hub looks up
"the caller's integration".

* The connect-session routes that name a session (``/api/connect-sessions/{id}``) are
  called with the id of one of Alice's sessions and answer 404 ``connect_session_unknown``;
  creating one makes Bob's own.
* Every route that names the caller's integration (the core routes under
  ``/api/integrations/{provider}`` and every provider action) answers 404
  ``integration_not_found``.
* The few routes that do not read an integration answer as they would for any newcomer:
  ``connect`` starts Bob's own flow, ``callback`` and ``tokens`` refuse his made-up state
  and token, ``/api/integrations`` is his own empty list, the catalogue and health checks
  are the same for everyone.
* No answer to Bob mentions anything of Alice's account.
* After each request Alice's integration rows, activity rows and OAuth states are exactly
  as they were, the fake providers hold the same data (messages, cards, comments, events,
  revocations), no request carrying one of Alice's tokens reached a provider, and no
  provider was called at all by a route that names an integration. At the end Alice's
  integrations still work.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, find, settings

from sqlalchemy import select

from conftest import serve_hub
from helpers import connect_slack
from hub.store.models import ConnectSession
from hub.web.app import CORE_ROUTES
from support import auth, google_section, make_registry, trello_section
from test_google import connect_google
from test_trello import connect_by_posting

PROVIDERS = sorted(make_registry().providers)
# Core routes that do not look up the caller's integration, and what a newcomer gets there.
OWN_FLOW = {
    ("GET", "/api/integrations/{provider}/connect"): 200,  # Bob's own authorization starts
    ("GET", "/api/integrations/{provider}/callback"): 400,  # Bob's made-up state is refused
    ("POST", "/api/integrations/{provider}/tokens"): 400,  # Bob's made-up token is refused
    ("POST", "/api/connect-sessions"): 201,  # Bob's own connect session
}
# Routes that name one of Alice's connect sessions by its id.
ALICES_SESSION = {("GET", "/api/connect-sessions/{id}"), ("DELETE", "/api/connect-sessions/{id}")}
# The provider's webhook URL belongs to no user: an unsigned request is refused (401), or the
# provider receives no webhooks (404); Trello's HEAD check is answered (200).
SIGNED_BY_PROVIDER = {
    ("POST", "/api/integrations/{provider}/webhook"): (401, 404),
    ("HEAD", "/api/integrations/{provider}/webhook"): (200, 401, 404),
}
FIRST_EXAMPLE = settings(database=None, derandomize=True, max_examples=50, phases=[Phase.generate, Phase.shrink],
                         suppress_health_check=list(HealthCheck), deadline=None)


def example(operation: Any, provider: str | None, session_id: str | None = None) -> Any:
    """The simplest request the documented schema allows (deterministic); a session id in
    the path is ``session_id``."""
    params = {"provider": provider} if provider and "{provider}" in operation.path else {}
    if "{id}" in operation.path and session_id:
        params["id"] = session_id
    strategy = operation.as_strategy(path_parameters=params or None)
    return find(strategy, lambda case: True, settings=FIRST_EXAMPLE)


def routes_for(doc: dict[str, Any], provider: str | None) -> list[tuple[Any, str]]:
    """(operation, label) for every documented operation that concerns ``provider``; with
    ``provider=None``, every operation that names no provider at all."""
    schema = schemathesis.openapi.from_dict(doc)
    out = []
    for result in schema.get_all_operations():
        op = result.ok()
        own_prefix = f"/api/integrations/{provider}/"
        if provider is None:
            wanted = "{provider}" not in op.path and not any(op.path.startswith(f"/api/integrations/{p}/") for p in PROVIDERS)
        else:
            wanted = "{provider}" in op.path or op.path.startswith(own_prefix)
        if wanted:
            out.append((op, f"{op.method.upper()} {op.path}"))
    return out


class World:
    """Everything of Alice's that Bob must not see or change."""

    def __init__(self, client: Any, fakes: dict[str, Any]) -> None:
        self.client = client
        self.fakes = fakes
        self.alice_tokens: set[str] = set()
        self.markers: set[str] = set()
        self.session_id = ""

    async def snapshot(self) -> dict[str, Any]:
        db = self.client.db
        logs = await db.activity(user="alice")
        rows, states = await db.integrations("alice"), await db.states("alice")
        every_row = [r.user_id for r in await db.integrations()]
        slack, trello, google = self.fakes["slack"], self.fakes["trello"], self.fakes["google_calendar"]
        return {
            "rows": [
                (r.id, r.provider, r.status, r.status_reason, r.access_token, r.refresh_token, r.token_expiry, r.scopes,
                 json.dumps(r.meta, sort_keys=True), r.updated_at, r.last_sync_at, r.version, r.refresh_lease_until)
                for r in rows
            ],
            "logs": [(r.id, r.kind, r.action, r.status, json.dumps([r.request_data, r.response_data]), r.error_message) for r in logs],
            "states": [(o.id, o.provider, o.state_hash, o.consumed_at) for o in states],
            "connect sessions": await self.sessions(),
            "integration owners": sorted(set(every_row)),
            "slack": (copy.deepcopy(slack.messages), sorted(t for t, r in slack.tokens.items() if r.revoked)),
            "trello": (json.dumps([trello.cards, trello.lists, trello.boards], sort_keys=True, default=str),
                       copy.deepcopy(trello.comments), sorted(trello.revoked_tokens)),
            "google": (json.dumps(dict(google.events), sort_keys=True, default=str), sorted(v for v, t in google.tokens.items() if t.revoked), google.refresh_count),
        }

    async def sessions(self) -> list[tuple[Any, ...]]:
        async with self.client.hub.sessions() as session:
            rows = (await session.scalars(select(ConnectSession).where(ConnectSession.user_id == "alice"))).all()
        return sorted((r.id, r.status, r.cookie_hash, r.opened_at, r.finished_at, r.connected_provider) for r in rows)

    def calls(self) -> dict[str, int]:
        return {name: len(fake.calls) for name, fake in self.fakes.items()}

    def new_calls_with_alices_tokens(self, since: dict[str, int]) -> list[str]:
        bad = []
        for name, fake in self.fakes.items():
            for call in fake.calls[since[name]:]:
                seen = json.dumps([call.path, call.headers, call.query, call.form, call.json], default=str)
                bad += [f"{name} {call.method} {call.path}" for t in self.alice_tokens if t in seen]
        return bad


@pytest.fixture
async def world(make_config, fake_slack, fake_trello, fake_google, aiohttp_client) -> World:
    sections = {"trello": trello_section(fake_trello), "google_calendar": google_section(fake_google)}
    client = await serve_hub(make_config(providers=sections), aiohttp_client)
    w = World(client, {"slack": fake_slack, "trello": fake_trello, "google_calendar": fake_google})
    h = auth("alice")
    fake_slack.rotation = True
    await connect_slack(client, h)
    await connect_by_posting(client, fake_trello, user="alice")
    await connect_google(client, user="alice")
    for method, path, body in [
        ("POST", "/api/integrations/slack/message", {"channel": "general", "text": "from alice"}),
        ("GET", "/api/integrations/trello/boards", None),
        ("POST", "/api/integrations/google_calendar/events",
         {"summary": "alice's meeting", "start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}}),
    ]:
        resp = await client.request(method, path, json=body, headers=h)
        assert resp.status == 200, await resp.text()
    # One connect session of Alice's, opened in her browser
    resp = await client.post("/api/connect-sessions", json={"providers": ["slack"]}, headers=h)
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["data"]
    w.session_id = created["id"]
    resp = await client.get(created["url"].removeprefix(client.hub.config.public_url), allow_redirects=False)
    assert resp.status == 303
    # Alice's credentials, as the providers issued them (Bob has none)
    w.alice_tokens = {*fake_slack.issued, *fake_trello.issued, *fake_google.issued}
    assert len(w.alice_tokens) >= 5
    # What identifies Alice's accounts: none of it may reach Bob
    views = (await (await client.get("/api/integrations", headers=h)).json())["data"]
    assert sorted(v["provider"] for v in views) == PROVIDERS
    w.markers = {"alice"} | {
        str(v) for view in views for k, v in view["account"].items() if isinstance(v, str) and len(v) >= 4 and k != "scope"
    }
    assert {"ada@example.com", "Ada Lovelace"} <= w.markers, w.markers
    return w


async def bob_calls(w: World, op: Any, provider: str | None) -> tuple[int, str, Any]:
    case = example(op, provider, w.session_id)
    base = str(w.client.make_url("")).rstrip("/")
    response = await asyncio.to_thread(case.call, base_url=base, headers=auth("bob"))
    return response.status_code, response.text, case


def expected_for(op: Any) -> str:
    key = (op.method.upper(), op.path)
    if key in OWN_FLOW:
        return "own-flow"
    if key in ALICES_SESSION:
        return "alices-session"
    if key in SIGNED_BY_PROVIDER:
        return "signed-by-provider"
    if "{provider}" in op.path or op.path.startswith("/api/integrations/"):
        return "not-found"
    return "global"


@pytest.mark.parametrize("provider", [*PROVIDERS, None], ids=[*PROVIDERS, "no-provider"])
async def test_bob_gets_nothing_of_alices(world: World, provider: str | None):
    w = world
    doc = await (await w.client.get("/api/openapi.json")).json()
    routes = routes_for(doc, provider)

    # the list is the API, not a sample of it
    paths = {label for _, label in routes}
    if provider is None:
        assert {"GET /api/integrations", "GET /api/providers", "GET /healthz"} <= paths, paths
        assert {"POST /api/connect-sessions", "GET /api/connect-sessions/{id}", "DELETE /api/connect-sessions/{id}"} <= paths, paths
    else:
        catalogue = (await (await w.client.get("/api/providers", headers=auth("bob"))).json())["data"]
        actions = next(p["actions"] for p in catalogue["providers"] if p["name"] == provider)
        assert actions, f"{provider} has no actions"
        assert {f"{a['method']} {a['path']}" for a in actions} <= paths
        for tail, methods in CORE_ROUTES.items():
            assert {f"{m} /api/integrations/{{provider}}/{tail}" for m in methods} <= paths, tail
        assert {"GET /api/integrations/{provider}", "DELETE /api/integrations/{provider}"} <= paths
        assert len(routes) >= len(CORE_ROUTES) + 3 + len(actions)

    problems: list[str] = []
    for op, label in routes:
        before = await w.snapshot()
        calls = w.calls()
        status, body, case = await bob_calls(w, op, provider)
        what = f"{label} [{provider}] {case.formatted_path} query={case.query} body={case.body!r:.120}"
        kind = expected_for(op)
        if kind == "not-found":
            code = json.loads(body).get("error", {}).get("code") if body.startswith("{") else None
            if (status, code) != (404, "integration_not_found"):
                problems.append(f"{what}: expected 404 integration_not_found, got {status} {body[:300]}")
            if w.calls() != calls:
                problems.append(f"{what}: reached a provider")
        elif kind == "alices-session":
            code = json.loads(body).get("error", {}).get("code") if body.startswith("{") else None
            if (status, code) != (404, "connect_session_unknown") or w.session_id not in case.formatted_path:
                problems.append(f"{what}: expected 404 connect_session_unknown for Alice's session, got {status} {body[:300]}")
        elif kind == "own-flow":
            if status != OWN_FLOW[(op.method.upper(), op.path)]:
                problems.append(f"{what}: expected {OWN_FLOW[(op.method.upper(), op.path)]}, got {status} {body[:300]}")
        elif kind == "signed-by-provider":
            if status not in SIGNED_BY_PROVIDER[(op.method.upper(), op.path)]:
                problems.append(f"{what}: expected one of {SIGNED_BY_PROVIDER[(op.method.upper(), op.path)]}, got {status} {body[:300]}")
        elif op.path == "/api/integrations":
            if status != 200 or json.loads(body)["data"] != []:
                problems.append(f"{what}: Bob's list is not his own empty list: {body[:300]}")
        elif status >= 500:
            problems.append(f"{what}: {status} {body[:300]}")
        problems += [f"{what}: answer mentions {m!r}" for m in w.markers if m in body]
        problems += [f"{what}: a call with Alice's token reached {c}" for c in w.new_calls_with_alices_tokens(calls)]
        after = await w.snapshot()
        problems += [f"{what}: changed Alice's {k}" for k in before if before[k] != after[k]]
    assert problems == [], "\n".join(problems)

    # Alice was never disturbed
    for method, path, body in [
        ("POST", "/api/integrations/slack/message", {"channel": "general", "text": "alice again"}),
        ("GET", "/api/integrations/trello/boards", None),
        ("GET", "/api/integrations/google_calendar/calendars", None),
    ]:
        resp = await w.client.request(method, path, json=body, headers=auth("alice"))
        assert resp.status == 200, await resp.text()
    views = (await (await w.client.get("/api/integrations", headers=auth("alice"))).json())["data"]
    assert [v["status"] for v in views] == ["ACTIVE"] * len(PROVIDERS)

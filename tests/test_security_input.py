"""Review findings 1, 3 and 10 (2026-12): hostile action input.

1. No input within ``server.max_body_bytes`` (or the longest query line) may hold the
   event loop: sizes are checked before the keywords that cost time, ``uniqueItems`` is
   linear, and a plugin whose action schema admits an unbounded array is refused at load.
3. A body nested deeper than the hub's bound is a 400 before anything runs, and redaction
   cannot fail on any value.
10. No path parameter of any action can change the shape of the upstream path: ``.``,
   ``..``, ``/``, ``\\`` and their percent-encodings are a 400 before anything is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

import hub
from conftest import serve_hub
from helpers import connect_slack
from hub.infra.config import ServerConfig
from hub.errors import BadRequest, ValidationFailed
from hub.store.models import Integration, IntegrationLog
from hub.registry import Registry, StartupError
from hub.redact import capped, redact
from hub.validation import MAX_DEPTH, InputValidator
from hub.upstream import Upstream
from procs import HubProcess, free_port, write_config
from support import auth, google_section, make_registry, slack_section, trello_section
from test_google import connect_google
from test_trello import connect_by_posting

PROVIDERS = make_registry().providers
BODY_CAP = ServerConfig().max_body_bytes
QUERY_CAP = 60_000  # the hub's request line may be 64 KiB; leave room for the path
HEALTH_BOUND = 1.0  # seconds another client may wait for /healthz while an attack is handled
ATTACK_BOUND = 10.0  # seconds the attack itself may take, transfer included


def shipped_actions() -> list[tuple[str, hub.Action]]:
    return [(name, a) for name, p in sorted(PROVIDERS.items()) for a in p.actions]


def subschemas(schema: Any, where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema object inside ``schema`` with its JSON pointer (the shipped schemas
    use no references)."""
    if not isinstance(schema, Mapping):
        return
    yield where, schema
    for key in ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames"):
        yield from subschemas(schema.get(key), f"{where}/{key}")
    for key in ("properties", "patternProperties", "$defs", "dependentSchemas"):
        for name, sub in (schema.get(key) or {}).items():
            yield from subschemas(sub, f"{where}/{key}/{name}")
    for key in ("prefixItems", "allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            yield from subschemas(sub, f"{where}/{key}/{i}")


def kinds(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


# --- finding 1: input validation cannot hold the loop ---------------------------------


def test_every_shipped_array_and_string_is_bounded():
    unbounded = []
    for provider, action in shipped_actions():
        for where, sub in subschemas(action.input_schema):
            if "array" in kinds(sub) and not isinstance(sub.get("maxItems"), int):
                unbounded.append(f"{provider}.{action.name}{where}: array without maxItems")
            if "string" in kinds(sub) and not isinstance(sub.get("maxLength"), int):
                unbounded.append(f"{provider}.{action.name}{where}: string without maxLength")
    assert not unbounded, "\n".join(unbounded)


MIXED = (1, "1", 1.0, True, None, "a", 2, [1], {"a": 1}, False, 0, "b")


def mixed_items(budget: int) -> list[Any]:
    """A JSON array of about ``budget`` bytes whose items mix every type (the slow case of a
    naive ``uniqueItems``), all of them distinct so no early exit helps."""
    out: list[Any] = []
    size = 2
    for i in itertools.count():
        item = (i, str(i), i + 0.5, f"x{i}", [i], {"k": i})[i % 6]
        size += len(json.dumps(item)) + 2
        if size > budget:
            return out
        out.append(item)
    raise AssertionError("unreachable")


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


def worst_bodies(action: hub.Action) -> Iterator[tuple[str, dict[str, Any]]]:
    """Inputs built from the schema to cost the validator as much as the size caps let
    them: every array at the cap with mixed items, every string at the cap, objects very
    deep and very wide, nested ones included."""
    budget = BODY_CAP - 4096
    props = action.input_schema.get("properties", {})
    for name, sub in props.items():
        for where, inner in subschemas(sub):
            path = where.split("/")[1:]
            if "array" in kinds(inner):
                yield f"{name}{where} mixed array", _place(name, path, mixed_items(budget))
            if "string" in kinds(inner):
                yield f"{name}{where} long string", _place(name, path, "a" * budget)
            if "object" in kinds(inner):
                yield f"{name}{where} wide object", _place(name, path, {f"k{i}": i for i in range(budget // 20)})
                yield f"{name}{where} deep object", _place(name, path, nested(500))
    yield "wide top level", {f"k{i}": [i] for i in range(budget // 24)}
    yield "deep top level", {"a": nested(500)}


def _place(name: str, path: list[str], value: Any) -> dict[str, Any]:
    """``value`` put where ``path`` (a pointer inside the property's schema) says, wrapped
    in a one-item array or a one-key object at each level on the way."""
    keys = [k for k in path if k not in ("properties", "allOf", "anyOf", "oneOf", "prefixItems") and not k.isdigit()]
    for key in reversed(keys):
        value = [value] if key == "items" else {key: value} if key != "additionalProperties" else {"x": value}
    return {name: value}


def worst_queries(action: hub.Action) -> Iterator[tuple[str, str]]:
    props = action.input_schema.get("properties", {})
    for name, sub in props.items():
        if "array" in kinds(sub):
            values = ",".join(str(v) for v in itertools.islice(itertools.cycle(["1", "a", "1.0", "true", "b", "2"]), QUERY_CAP // 3))
            yield f"{name} mixed array", urlencode({name: values[:QUERY_CAP]})
        else:
            yield f"{name} long value", urlencode({name: "a" * QUERY_CAP})
    yield "many parameters", "&".join(f"k{i}=1" for i in range(QUERY_CAP // 8))


def attacks() -> Iterator[tuple[str, str, str, bytes | None, str]]:
    """(label, method, path, body, query) for every shipped action."""
    for provider, action in shipped_actions():
        path = f"/api/integrations/{provider}/" + "/".join(
            "a" * 24 if seg.startswith("{") else seg for seg in action.path.split("/")
        )
        label = f"{action.method} {provider}/{action.path}"
        if action.method in ("GET", "DELETE"):
            for what, query in worst_queries(action):
                yield f"{label}: {what}", action.method, path, None, query
        else:
            for what, body in worst_bodies(action):
                raw = json.dumps(body).encode()
                assert len(raw) <= BODY_CAP, (label, what, len(raw))
                yield f"{label}: {what}", action.method, path, raw, ""


async def _attack(session: aiohttp.ClientSession, base: str, method: str, path: str, body: bytes | None, query: str) -> int:
    url = URL(f"{base}{path}" + (f"?{query}" if query else ""), encoded=True)
    headers = {**auth("mallory"), "Content-Type": "application/json"}
    async with session.request(method, url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_worst_input_for_every_action_never_holds_the_loop(tmp_path: Path, db_url, encryption_keys, fake_slack, fake_trello, fake_google):
    port = free_port()
    config = write_config(
        tmp_path / "hub.yaml", db_url=db_url, encryption_keys=encryption_keys, port=port,
        providers={"slack": slack_section(fake_slack), "trello": trello_section(fake_trello),
                   "google_calendar": google_section(fake_google)},
    )
    cases = list(attacks())
    assert {label.split(":")[0] for label, *_ in cases} == {f"{a.method} {p}/{a.path}" for p, a in shipped_actions()}
    async with HubProcess(config, port, workdir=tmp_path / "run") as server:
        await server.start()
        timeout = aiohttp.ClientTimeout(total=ATTACK_BOUND)
        async with aiohttp.ClientSession(timeout=timeout) as attacker, aiohttp.ClientSession() as bystander:
            for label, method, path, body, query in cases:
                started = time.monotonic()
                attack = asyncio.create_task(_attack(attacker, server.url, method, path, body, query))
                probes = 0
                while not attack.done() or probes == 0:
                    try:
                        async with bystander.get(f"{server.url}/healthz", timeout=aiohttp.ClientTimeout(total=HEALTH_BOUND)) as resp:
                            assert resp.status == 200
                    except asyncio.TimeoutError:
                        attack.cancel()
                        pytest.fail(f"{label}: /healthz waited more than {HEALTH_BOUND} s while the hub handled this input")
                    probes += 1
                    if not attack.done():
                        await asyncio.wait([attack], timeout=0.01)
                try:
                    status = await attack
                except asyncio.TimeoutError:
                    pytest.fail(f"{label}: not answered within {ATTACK_BOUND} s")
                assert status in (400, 404, 413, 415), f"{label}: HTTP {status}"
                assert time.monotonic() - started < ATTACK_BOUND
        assert server.returncode is None


def _action(schema: Mapping[str, Any]) -> hub.Action:
    async def handler(ctx: hub.CallContext) -> None:
        return None

    return hub.Action("probe", "POST", "probe", handler, {"type": "object", "properties": {"v": schema}})


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),  # one number, however spelled
        ([1, True], True),  # a boolean is not a number in JSON
        ([0, False], True),
        ([None, False, 0, "", [], {}], True),
        (["1", 1], True),
        ([{"a": 1, "b": [1, 2]}, {"b": [1, 2.0], "a": 1.0}], False),  # member order does not matter
        ([[1, 2], [2, 1]], True),  # item order does
        ([[1], [True]], True),
        ([{"a": True}, {"a": 1}], True),
        ([1, "a", 2, "b", 1.0], False),
    ],
)
def test_unique_items_is_json_equality(items: list[Any], unique: bool):
    validator = InputValidator(_action({"type": "array", "maxItems": 10, "uniqueItems": True}))
    if unique:
        validator.validate({"v": items})
    else:
        with pytest.raises(ValidationFailed) as caught:
            validator.validate({"v": items})
        assert caught.value.details[0]["field"] == "v"


def test_sizes_are_checked_before_anything_else_and_named():
    validator = InputValidator(_action({"type": "array", "maxItems": 5, "uniqueItems": True, "items": {"type": "string", "pattern": "^a+$"}}))
    with pytest.raises(ValidationFailed) as caught:
        validator.validate({"v": mixed_items(20_000)})
    # one problem: neither the items nor their uniqueness were looked at
    assert caught.value.details == [{"field": "v", "problem": caught.value.details[0]["problem"]}]
    assert "at most 5" in caught.value.details[0]["problem"]


def test_an_action_schema_with_an_unbounded_array_is_refused_at_load():
    async def handler(ctx: hub.CallContext) -> None:
        return None

    class Plugin:
        def __init__(self, schema: Mapping[str, Any]) -> None:
            self.schema = schema

        @hub.hookimpl
        def hub_provider(self) -> hub.ProviderInfo:
            return hub.ProviderInfo(name="acme", title="Acme", endpoints=hub.Endpoints(api="https://acme.invalid"))

        @hub.hookimpl
        def hub_actions(self) -> list[hub.Action]:
            return [hub.Action("tag", "POST", "tags", handler, self.schema)]

    loose = {"type": "object", "properties": {"filter": {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}}}
    registry = Registry()
    assert registry.add("acme", Plugin(loose), source="hub_acme (acme-hub 1.0)") is None
    failure = registry.failures[-1]
    assert failure.name == "acme" and failure.source == "hub_acme (acme-hub 1.0)"
    assert "'tag'" in failure.error and "/properties/filter/properties/tags" in failure.error and "maxItems" in failure.error
    with pytest.raises(StartupError, match="acme.*maxItems"):
        Registry(strict=True).add("acme", Plugin(loose))

    bounded = json.loads(json.dumps(loose))
    bounded["properties"]["filter"]["properties"]["tags"]["maxItems"] = 20
    assert Registry().add("acme", Plugin(bounded)) is not None
    # the default schema, and arrays the schema never looks into, cost nothing: still fine
    assert Registry().add("acme", Plugin({"type": "object"})) is not None


# --- finding 3: nesting ---------------------------------------------------------------


async def _logs_of(client: Any, provider: str, action: str) -> list[IntegrationLog]:
    await client.hub.activity.flush()
    async with client.hub.sessions() as s:
        return list((await s.scalars(
            select(IntegrationLog).join(Integration, IntegrationLog.integration_id == Integration.id)
            .where(Integration.provider == provider, IntegrationLog.action == action)
        )).all())


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 600])
async def test_a_deeply_nested_body_is_refused_before_anything_runs(hub_app, fake_slack, depth: int):
    await connect_slack(hub_app, auth())
    # written out by hand: the test's own json.dumps would run out of stack first
    fields = "[{\"a\": " * (depth // 2) + "1" + "}]" * (depth // 2)
    body = f'{{"channel": "general", "blocks": [{{"type": "section", "fields": {fields}}}]}}'
    resp = await hub_app.post("/api/integrations/slack/message", data=body, headers={**auth(), "Content-Type": "application/json"})
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["details"]["field"] == "blocks", answer
    assert f"deeper than {MAX_DEPTH}" in answer["error"]["message"]
    assert not fake_slack.calls_to("/api/chat.postMessage") and not fake_slack.messages
    assert await _logs_of(hub_app, "slack", "post_message") == []


async def test_nesting_up_to_the_bound_is_accepted(hub_app, fake_slack):
    await connect_slack(hub_app, auth())
    # the body, its blocks array and a block take three levels
    body = {"channel": "general", "blocks": [{"type": "section", "fields": nested(MAX_DEPTH - 3)}]}
    resp = await hub_app.post("/api/integrations/slack/message", json=body, headers=auth())
    assert resp.status == 200, await resp.text()
    assert len(fake_slack.messages) == 1
    [row] = await _logs_of(hub_app, "slack", "post_message")
    assert row.status == "SUCCESS"


@pytest.mark.parametrize("shape", ["lists", "objects", "mixed"])
def test_redaction_cannot_fail_on_any_depth(shape: str):
    value: Any = {"access_token": "xoxb-123456789-secret", "text": "Bearer abcdefghijkl"}
    for i in range(10_000):
        value = [value] if shape == "lists" or (shape == "mixed" and i % 2) else {"k": value}
    cleaned = redact({"deep": value, "token": "xoxp-1234567890-abc"}, ["xoxb-123456789-secret"])
    assert cleaned["token"] == "[REDACTED]"
    stored = capped(cleaned, 64 * 1024)
    text = json.dumps(stored)
    assert "xoxb-123456789-secret" not in text and "xoxp-1234567890-abc" not in text
    # a value nobody redacted first is capped without an error too
    assert capped({"deep": value}, 64 * 1024)


def test_redaction_keeps_ordinary_values_whole():
    value = {"a": [1, 2.5, None, True, {"b": "c", "password": "hunter22"}], "n": {"m": "ok"}, "t": ("x", "y")}
    assert redact(value) == {"a": [1, 2.5, None, True, {"b": "c", "password": "[REDACTED]"}], "n": {"m": "ok"}, "t": ["x", "y"]}
    deep = nested(100)
    assert redact(deep) == deep


# --- finding 10: path parameters ------------------------------------------------------

# An empty segment is refused too, except in the hub's own URL, where "events/" has always
# meant "events".
BAD_SEGMENTS = [".", "..", "%2e", "%2E%2e", "/", "%2F", "%2f", "\\", "%5C", "a/b"]


@pytest.fixture
async def everyone(make_config, fake_slack, fake_trello, fake_google, aiohttp_client) -> Any:
    sections = {"trello": trello_section(fake_trello), "google_calendar": google_section(fake_google)}
    client = await serve_hub(make_config(providers=sections), aiohttp_client)
    await connect_slack(client, auth())
    await connect_by_posting(client, fake_trello)
    await connect_google(client)
    client.fakes = {"slack": fake_slack, "trello": fake_trello, "google_calendar": fake_google}
    return client


def minimal_inputs(fakes: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each shipped action's smallest valid input, path parameters included."""
    trello = fakes["trello"]
    board = next(b["id"] for b in trello.boards.values() if not b["closed"])
    lst = next(x["id"] for x in trello.lists.values() if x["idBoard"] == board and not x["closed"])
    card = next(c["id"] for c in trello.cards.values() if c["idList"] == lst)
    event = fakes["google_calendar"].add_event(summary="probe")["id"]
    hook = "5f5e1000" + "0" * 15 + "9"  # a webhook Trello already has, for delete_webhook
    trello.webhooks[hook] = {"id": hook, "idModel": board, "callbackURL": "http://127.0.0.1:9/", "active": True}
    day = {"start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}}
    return {
        ("slack", "post_message"): {"channel": "general", "text": "hi"},
        ("slack", "list_channels"): {},
        ("slack", "get_user"): {"user_id": "U0000000001"},
        ("trello", "list_boards"): {},
        ("trello", "get_board"): {"board_id": board},
        ("trello", "list_lists"): {"board_id": board},
        ("trello", "list_cards"): {"board_id": board},
        ("trello", "create_card"): {"idList": lst, "name": "probe"},
        ("trello", "update_card"): {"card_id": card, "name": "probe"},
        ("trello", "add_comment"): {"card_id": card, "text": "probe"},
        ("trello", "create_webhook"): {"idModel": board},
        ("trello", "delete_webhook"): {"webhook_id": hook},
        ("google_calendar", "list_calendars"): {},
        ("google_calendar", "list_events"): {},
        ("google_calendar", "create_event"): dict(day),
        ("google_calendar", "update_event"): {"event_id": event, "summary": "probe"},
        ("google_calendar", "delete_event"): {"event_id": event},
        ("google_calendar", "availability"): {"timeMin": "2026-06-08T00:00:00Z", "timeMax": "2026-06-09T00:00:00Z", "timeZone": "UTC"},
        ("google_calendar", "sync"): {},
        ("google_calendar", "watch_calendar"): {},
        ("google_calendar", "unwatch_calendar"): {},
    }


async def _run(client: Any, provider: str, action: hub.Action, data: Mapping[str, Any]) -> tuple[int, Any]:
    """Call ``action`` with ``data``; path parameters are percent-encoded into the URL as
    one segment each, and the URL is sent exactly as built (no client-side clean-up)."""
    segments = [quote(str(data[s[1:-1]]), safe="") if s.startswith("{") else s for s in action.path.split("/")]
    rest = {k: v for k, v in data.items() if k not in action.path_params}
    url = str(client.make_url(f"/api/integrations/{provider}/")) + "/".join(segments)
    kw: dict[str, Any] = {"headers": auth()}
    if action.method in ("GET", "DELETE"):
        if rest:
            url += "?" + urlencode({k: json.dumps(v) if not isinstance(v, str) else v for k, v in rest.items()})
    else:
        kw["json"] = rest
    async with client.session.request(action.method, URL(url, encoded=True), **kw) as resp:
        return resp.status, await resp.json()


def _calls(fakes: Mapping[str, Any]) -> int:
    return sum(len(f.calls) for f in fakes.values())


async def path_inputs(client: Any, provider: str, action: hub.Action, base: dict[str, Any]) -> set[str]:
    """The inputs that land in the upstream request's path: the action's own path
    parameters, and every free-text property whose value, sent as a marker, shows up in
    a path the fake received."""
    names = set(action.path_params)
    for name, sub in action.input_schema.get("properties", {}).items():
        if name in names or kinds(sub) != {"string"} or {"format", "enum"} & set(sub):
            continue
        marker = f"zq{len(name)}probe"
        fake = client.fakes[provider]
        seen = len(fake.calls)
        await _run(client, provider, action, {**base, name: marker})
        if any(marker in call.path for call in fake.calls[seen:]):
            names.add(name)
    return names


async def test_no_path_parameter_can_change_the_upstream_path(everyone):
    fakes = everyone.fakes
    inputs = minimal_inputs(fakes)
    assert set(inputs) == {(p, a.name) for p, a in shipped_actions()}, "a shipped action has no minimal input here"
    found: dict[str, set[str]] = {}
    for provider, action in shipped_actions():
        base = inputs[(provider, action.name)]
        status, answer = await _run(everyone, provider, action, base)
        assert status == 200, (provider, action.name, answer)
        found[f"{provider}.{action.name}"] = await path_inputs(everyone, provider, action, base)
    # the discovery sees what the plugins do: Google's calendar id is part of its paths
    assert "calendarId" in found["google_calendar.list_events"] and "calendarId" in found["google_calendar.create_event"]
    assert "board_id" in found["trello.get_board"] and "event_id" in found["google_calendar.delete_event"]

    failures = []
    for provider, action in shipped_actions():
        for name in sorted(found[f"{provider}.{action.name}"]):
            for bad in BAD_SEGMENTS + ([] if name in action.path_params else [""]):
                before = _calls(fakes)
                status, answer = await _run(everyone, provider, action, {**inputs[(provider, action.name)], name: bad})
                named = name in json.dumps(answer.get("error", {}))
                if status != 400 or not named or _calls(fakes) != before:
                    failures.append(f"{provider}.{action.name} {name}={bad!r}: HTTP {status}, named={named}, "
                                    f"upstream calls {_calls(fakes) - before}: {answer.get('error', answer)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("calendar", [".", "..", "%2e%2E", "a/..", "..\\x"])
async def test_dot_calendar_ids_never_reach_google(everyone, calendar: str):
    fake = everyone.fakes["google_calendar"]
    before = len(fake.calls)
    for method, path, kw in [
        ("GET", "events", {"params": {"calendarId": calendar}}),
        ("POST", "events", {"json": {"calendarId": calendar, "start": {"date": "2026-06-08"}, "end": {"date": "2026-06-09"}}}),
        ("POST", "sync", {"json": {"calendarId": calendar}}),
        ("GET", "availability", {"params": {"calendarIds": calendar, "timeMin": "2026-06-08T00:00:00Z", "timeMax": "2026-06-09T00:00:00Z"}}),
    ]:
        resp = await everyone.request(method, f"/api/integrations/google_calendar/{path}", headers=auth(), **kw)
        answer = await resp.json()
        assert resp.status == 400, (path, answer)
        assert "calendarId" in answer["error"]["message"], answer
    assert len(fake.calls) == before


async def test_the_core_refuses_unsafe_segments_before_sending():
    upstream = Upstream()
    await upstream.start()
    try:
        http = upstream.for_provider("acme", base_url="http://127.0.0.1:9/v1")
        for bad in [*BAD_SEGMENTS, ""]:
            with pytest.raises(BadRequest) as caught:
                await http.get("items/{item_id}/tags", path_params={"item_id": bad})
            assert caught.value.details == {"field": "item_id"}
            assert caught.value.message.startswith("item_id: ")
        with pytest.raises(BadRequest) as caught:  # the value may be a credential: never echoed
            await http.get("tokens/{token}", path_params={"token": "tok-7f3a9c/.."})
        assert "tok-7f3a9c" not in caught.value.message
        # whatever a plugin builds by hand, a dot segment never leaves the hub
        for path in ["items/../admin", "items/./x", "items/%2e%2E/admin", "items/.%2e", "..", "a\\b", "a/%5cb"]:
            with pytest.raises(BadRequest):
                await http.get(path)
        assert http.path("items/{item_id}/tags", item_id="a b?#&é") == "items/a%20b%3F%23%26%C3%A9/tags"
        with pytest.raises(KeyError):
            http.path("items/{item_id}", other="x")
    finally:
        await upstream.close()

"""What an action declares about itself: ``output_schema`` and ``examples`` are checked when
the plugin loads, and every built-in action declares both."""

from __future__ import annotations

from typing import Any

import pytest
from support import auth, make_registry

from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl
from hub.registry import Registry, StartupError


async def handler(ctx: CallContext) -> Any:
    return {}


ITEM_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["item_id"],
    "properties": {
        "item_id": {"type": "string", "pattern": "^i[0-9]+$", "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5},
        "filter": {"type": "object"},
    },
}


class Declaring:
    def __init__(self, *actions: Action) -> None:
        self.actions = list(actions)

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return ProviderInfo(name="demo", title="Demo", endpoints=Endpoints(api="https://api.demo.test"))

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return self.actions


def item(method: str = "GET", **declared: Any) -> Action:
    return Action("get_item", method, "items/{item_id}", handler, ITEM_INPUT, **declared)


def test_valid_declarations_load_and_examples_become_a_tuple() -> None:
    action = item(output_schema={"type": "object", "required": ["id"]}, examples=[{"item_id": "i1"}, {"item_id": "i2", "tags": ["a", "b"]}])
    registry = make_registry()
    loaded = registry.add("demo", Declaring(action))
    assert loaded is not None, registry.failures
    assert loaded.actions[0].examples == ({"item_id": "i1"}, {"item_id": "i2", "tags": ["a", "b"]})
    assert Action("plain", "GET", "plain", handler).output_schema is None and Action("plain", "GET", "plain", handler).examples == ()


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"output_schema": {"type": "objekt"}}, "output_schema is not a valid JSON Schema at /type"),
        ({"output_schema": {"properties": {"id": {"minLength": -1}}}}, "output_schema is not a valid JSON Schema at /properties/id/minLength"),
        ({"output_schema": ["not", "a", "schema"]}, "output_schema must be a JSON Schema object"),
        ({"examples": [{"item_id": "i1"}, {"item_id": "x1"}]}, "examples[1] is not valid against input_schema: item_id: 'x1' does not match"),
        ({"examples": [{"item_id": "i1", "colour": "red"}]}, "examples[0] is not valid against input_schema: colour: is not a known field"),
        ({"examples": [{"item_id": "i1", "tags": ["t"] * 6}]}, "examples[0] is not valid against input_schema: tags"),
        ({"examples": [{"tags": ["a"]}]}, "examples[0] needs the path parameter 'item_id' as a non-empty string"),
        ({"examples": [{"item_id": "i1", "filter": {"a": 1}}]}, "examples[0] field 'filter' cannot travel in a query string"),
        ({"examples": ["item_id=i1"]}, "examples[0] is not an object of input fields"),
        ({"examples": [{"item_id": "i1", "tags": [float("nan")]}]}, "examples[0] is not JSON"),
        ({"output_schema": {"type": "object", "required": ["id"], "examples": [{"name": "x"}]}},
         "output_schema examples[0] does not pass output_schema at /: 'id' is a required property"),
    ],
    ids=["bad-type", "bad-keyword", "not-a-mapping", "breaks-pattern", "unknown-field", "too-many", "no-path-param",
         "object-in-query", "not-an-object", "not-json", "answer-example-breaks-output"],
)
def test_a_bad_declaration_is_a_load_failure_naming_plugin_action_and_problem(declared: dict[str, Any], problem: str) -> None:
    registry = make_registry()
    assert registry.add("demo", Declaring(item(**declared))) is None
    (failure,) = [f for f in registry.failures if f.name == "demo"]
    assert failure.error.startswith("action 'get_item': ")
    assert problem in failure.error, failure.error
    with pytest.raises(StartupError, match=r"provider plugin 'demo' .*get_item"):
        Registry(strict=True).add("demo", Declaring(item(**declared)))


def test_an_object_travels_in_a_json_body() -> None:
    action = item("PATCH", examples=[{"item_id": "i1", "filter": {"a": 1}}])
    registry = make_registry()
    assert registry.add("demo", Declaring(action)) is not None, registry.failures


BUILT_IN = ("slack", "trello", "google_calendar")


@pytest.mark.parametrize("provider", BUILT_IN)
def test_every_built_in_action_declares_examples_and_an_output_schema(provider: str) -> None:
    registry = Registry()
    registry.load_entry_points(only=[provider])
    assert registry.failures == []
    for action in registry.providers[provider].actions:
        assert action.examples, f"{provider}.{action.name} has no examples"
        assert action.output_schema is not None, f"{provider}.{action.name} has no output_schema"
        assert action.output_schema.get("examples"), f"{provider}.{action.name} has no example answer"


async def test_the_catalogue_lists_what_each_action_declares(hub_app: Any) -> None:
    body = await (await hub_app.get("/api/providers", headers=auth("alice"))).json()
    (slack,) = [p for p in body["data"]["providers"] if p["name"] == "slack"]
    get_user = next(a for a in slack["actions"] if a["name"] == "get_user")
    assert get_user["examples"] == [{"user_id": "U0000000001"}]
    assert get_user["outputSchema"]["required"] == ["id", "name"]

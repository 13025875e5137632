"""Finding provider plugins and refusing the ones that would break routing.

The Slack plugin is installed for real, so its entry point is read from the installed
distribution. Other plugins come from modules written into a temporary folder and fake
``importlib.metadata`` entry points, or are registered inline with ``Registry.add``.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support import auth, build_hub, make_registry

from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl
from hub.cli import main
from hub.registry import ENTRY_POINT_GROUP, RESERVED, LoadFailure, Registry, StartupError
from hub.web import create_app
from hub.web.app import CORE_ROUTES

GOOD_PLUGIN = '''
from hub import Endpoints, ProviderInfo, hookimpl

@hookimpl
def hub_provider():
    return ProviderInfo(name="good", title="Good", endpoints=Endpoints(api="https://api.good.test"))
'''

EXPLODING_PLUGIN = '''
raise RuntimeError("boom at import")
'''

MISSPELLED_PLUGIN = GOOD_PLUGIN.replace('name="good"', 'name="typo"') + '''
@hookimpl
def hub_auth_header(provider, token):  # should be hub_auth_headers
    return {}
'''


def info(name: str) -> ProviderInfo:
    return ProviderInfo(name=name, title=name.title(), endpoints=Endpoints(api=f"https://api.{name}.test"))


async def handler(ctx: CallContext) -> Any:
    return {}


class WithActions:
    """A provider offering the given actions."""

    def __init__(self, name: str, *actions: Action) -> None:
        self.name = name
        self.actions = list(actions)

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return info(self.name)

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return self.actions


# --- fake entry points -------------------------------------------------------------------


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Write an importable module into a temporary folder on sys.path."""
    written: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make ``hub.providers`` list the given entry points, in order; ``slack`` stands for
    the real, installed Slack entry point. Other groups are left alone."""
    real = importlib.metadata.entry_points

    def install(*names_and_values: str | tuple[str, str]) -> None:
        installed = {ep.name: ep for ep in real(group=ENTRY_POINT_GROUP)}
        listed = []
        for item in names_and_values:
            if item == "slack":
                listed.append(installed["slack"])
            else:
                name, value = item
                listed.append(importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP))

        def fake(**params: Any) -> Any:
            if params.get("group") == ENTRY_POINT_GROUP:
                return importlib.metadata.EntryPoints(listed)
            return real(**params)

        monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    return install


# --- discovery -------------------------------------------------------------------------


def test_installed_slack_plugin_is_found_through_its_entry_point() -> None:
    installed = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert installed["slack"].value == "hub_slack"
    assert installed["slack"].dist is not None and installed["slack"].dist.name == "hub-slack"

    registry = Registry()
    registry.load_entry_points()
    slack = registry.providers["slack"]
    assert slack.info.name == "slack" and slack.info.title == "Slack"
    assert [a.name for a in slack.actions] == ["post_message", "list_channels", "get_user"]
    assert [(a.method, a.path) for a in slack.actions] == [("POST", "message"), ("GET", "channels"), ("GET", "users/{user_id}")]
    assert slack.source == "hub_slack (hub-slack)"
    assert "slack" not in {f.name for f in registry.failures}
    registry.check_pending()  # the shipped plugin spells every hook right


def test_a_plugin_that_fails_to_import_is_recorded_and_the_others_still_load(entry_points, plugin_module) -> None:
    plugin_module("hub_test_exploding", EXPLODING_PLUGIN)
    plugin_module("hub_test_good", GOOD_PLUGIN)
    entry_points(
        ("exploding", "hub_test_exploding"),
        "slack",
        ("missing", "hub_test_not_installed_anywhere"),
        ("good", "hub_test_good"),
        ("wrong_attr", "hub_test_good:no_such_attribute"),
    )
    registry = Registry()
    registry.load_entry_points()

    assert sorted(registry.providers) == ["good", "slack"]
    failures = {f.name: f for f in registry.failures}
    assert failures["exploding"] == LoadFailure(
        "exploding", "hub_test_exploding (unknown distribution)", "import failed: RuntimeError: boom at import"
    )
    assert failures["missing"].error.startswith("import failed: ModuleNotFoundError")
    assert failures["wrong_attr"].error.startswith("import failed: AttributeError")
    assert list(failures) == ["exploding", "missing", "wrong_attr"]  # in discovery order

    # ``only`` picks entry points by name; the broken ones are then never imported.
    registry = Registry()
    registry.load_entry_points(only=["good"])
    assert list(registry.providers) == ["good"] and registry.failures == []


def test_strict_mode_makes_any_load_failure_a_startup_error(entry_points, plugin_module) -> None:
    plugin_module("hub_test_exploding", EXPLODING_PLUGIN)
    entry_points("slack", ("exploding", "hub_test_exploding"))
    with pytest.raises(StartupError, match=r"'exploding' from hub_test_exploding .*boom at import"):
        Registry(strict=True).load_entry_points()
    with pytest.raises(StartupError, match="does not implement hub_provider"):
        Registry(strict=True).add("empty", object())


# --- what stops start-up -------------------------------------------------------------------


def test_every_core_route_name_is_reserved() -> None:
    # A core route that is not reserved could be shadowed by a provider action.
    assert set(CORE_ROUTES) <= RESERVED


@pytest.mark.parametrize("reserved", sorted(RESERVED))
def test_an_action_named_like_a_core_route_makes_that_plugin_broken(reserved: str) -> None:
    registry = make_registry()
    plugin = WithActions("demo", Action(reserved, "GET", "things", handler))
    assert registry.add("demo", plugin) is None
    (failure,) = registry.failures
    assert failure.name == "demo" and repr(reserved) in failure.error and "reserved" in failure.error
    assert "demo" not in registry.providers and registry.pm.get_plugin("demo") is None
    assert "slack" in registry.providers  # the hub goes on with the others
    with pytest.raises(StartupError, match=r"'demo'.*reserved"):  # unless told to be strict
        Registry(strict=True).add("demo", plugin)


def test_an_action_path_under_a_core_route_makes_that_plugin_broken() -> None:
    registry = Registry()
    assert registry.add("demo", WithActions("demo", Action("item_status", "GET", "status/{id}", handler))) is None
    assert "'status/{id}'" in registry.failures[0].error and "reserved" in registry.failures[0].error


def test_duplicate_actions_and_routes_make_that_plugin_broken() -> None:
    registry = Registry()
    assert registry.add("demo", WithActions("demo", Action("items", "GET", "items", handler), Action("items", "POST", "items", handler))) is None
    assert "declares action 'items' twice" in registry.failures[0].error
    # Same method, same path shape: the second could never be reached.
    registry = Registry()
    assert registry.add("demo", WithActions(
        "demo", Action("get_item", "GET", "items/{id}", handler), Action("fetch_item", "GET", "items/{item_id}", handler)
    )) is None
    assert "declares GET items/{item_id} twice" in registry.failures[0].error
    # One path, two methods: both reachable.
    loaded = Registry().add("demo", WithActions(
        "demo", Action("list_items", "GET", "items", handler), Action("create_item", "POST", "items", handler)
    ))
    assert loaded is not None and [a.name for a in loaded.actions] == ["list_items", "create_item"]


def test_two_plugins_claiming_one_provider_name_is_a_startup_error_naming_both() -> None:
    class Original(WithActions):
        pass

    class Fork(WithActions):
        pass

    registry = Registry()
    registry.add("demo", Original("demo"))
    with pytest.raises(StartupError, match=r"'demo' is offered by both Original and Fork"):
        registry.add("demo", Fork("demo"))
    assert isinstance(registry.providers["demo"].plugin, Original)


class HeaderTypo(WithActions):
    @hookimpl
    def hub_auth_header(self, provider, token):  # should be hub_auth_headers
        return {}


class ProviderTypo(WithActions):
    @hookimpl
    def hub_provder(self) -> ProviderInfo:  # a leftover next to the real hub_provider
        return info(self.name)


@pytest.mark.parametrize(("plugin", "misspelled", "hint"), [
    (HeaderTypo("typo"), "hub_auth_header", "hub_auth_headers"),
    (ProviderTypo("typo"), "hub_provder", "hub_provider"),
])
def test_a_misspelled_hook_makes_that_plugin_broken(plugin: object, misspelled: str, hint: str) -> None:
    registry = make_registry()
    assert registry.add("typo", plugin) is None
    (failure,) = registry.failures
    assert failure.name == "typo" and misspelled in failure.error and f"did you mean {hint}?" in failure.error
    assert "slack" in registry.providers  # the others are untouched
    registry.check_pending()  # and nothing misspelled is left registered
    with pytest.raises(StartupError, match=rf"\b{misspelled}\b"):
        Registry(strict=True).add("typo", plugin)


def test_the_cli_reports_a_misspelled_hook_and_a_lone_misspelling_is_a_broken_plugin(tmp_path, entry_points, plugin_module) -> None:
    # The CLI reports it as a plugin that failed to load, cleanly, and says the config has a problem.
    plugin_module("hub_test_typo", MISSPELLED_PLUGIN)
    entry_points("slack", ("typo", "hub_test_typo"))
    config = tmp_path / "hub.yaml"
    config.write_text("server: {}\n")
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert "hub_auth_header" in result.output and "FAILED TO LOAD" in result.output and "Traceback" not in result.output

    # A plugin whose only hook is misspelled is broken the same way.
    class OnlyTypo:
        @hookimpl
        def hub_provder(self) -> ProviderInfo:
            return info("only_typo")

    registry = Registry()
    assert registry.add("only_typo", OnlyTypo()) is None
    assert "hub_provder, which is not a hub hook" in registry.failures[0].error


class Mislabelled:
    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return info("other")


class Undescribed:
    @hookimpl
    def hub_provider(self) -> Any:
        return {"name": "demo", "title": "Demo"}


class Crashing:
    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        raise ValueError("no endpoints configured")


class ExtraArgument(WithActions):
    @hookimpl
    def hub_auth_headers(self, provider, token, user):  # the spec has no ``user``
        return {}


def _invalid(action: Action) -> WithActions:
    return WithActions("demo", action)


def sync_handler(ctx: CallContext) -> Any:
    return {}


@pytest.mark.parametrize(
    ("plugin", "name", "error"),
    [
        (object(), "demo", "does not implement hub_provider"),
        (Mislabelled(), "demo", "describes itself as 'other' but is installed as 'demo'"),
        (Undescribed(), "demo", "hub_provider must return a hub.ProviderInfo"),
        (Crashing(), "demo", "failed while describing itself: ValueError: no endpoints configured"),
        (ExtraArgument("demo"), "demo", "registration failed"),
        (WithActions("Demo-Provider"), "Demo-Provider", "a provider name is lowercase letters"),
        (_invalid(Action("fetch", "FETCH", "items", handler)), "demo", "method must be one of"),
        (_invalid(Action("items", "GET", "items", sync_handler)), "demo", "handler must be an async function"),
        (_invalid(Action("items", "GET", "items/{Item-Id}", handler)), "demo", "is not a valid route"),
        (_invalid(Action("items", "GET", "items", handler, {"type": "array"})), "demo", "input_schema must be a JSON Schema of type 'object'"),
        (WithActions("demo", {"name": "items"}), "demo", "hub_actions must return hub.Action objects"),  # type: ignore[arg-type]
    ],
    ids=["no-hub_provider", "wrong-name", "not-ProviderInfo", "raises", "bad-signature", "bad-name",
         "bad-method", "sync-handler", "bad-path", "bad-schema", "not-Action"],
)
def test_a_broken_plugin_is_recorded_and_never_routed(plugin: object, name: str, error: str) -> None:
    registry = make_registry()
    assert registry.add(name, plugin) is None
    (failure,) = [f for f in registry.failures if f.name == name]
    assert error in failure.error
    assert name not in registry.providers
    assert registry.pm.get_plugin(name) is None  # none of its hooks can ever be reached
    assert "slack" in registry.providers
    with pytest.raises(StartupError, match=error.split(":")[0]):
        Registry(strict=True).add(name, plugin)


def test_a_wrapper_implementation_is_refused_at_load() -> None:
    class Wrapping(WithActions):
        @hookimpl(wrapper=True)
        def hub_auth_headers(self, provider, token):
            headers = yield
            return {**headers, "X-Extra": "1"}

    registry = Registry()
    assert registry.add("demo", Wrapping("demo")) is None
    assert "hub_auth_headers" in registry.failures[0].error


def test_an_async_hub_provider_is_refused_without_leaking_a_coroutine() -> None:
    class Eager:
        @hookimpl
        async def hub_provider(self) -> ProviderInfo:
            return info("eager")

    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert registry.add("eager", Eager()) is None
        gc.collect()
    assert "hub_provider must be a plain function, not async" in registry.failures[0].error
    assert not [w for w in caught if "never awaited" in str(w.message)]


# --- where failures show ---------------------------------------------------------------


async def test_the_catalogue_shows_load_failures_and_the_hub_serves_the_rest(
    make_config, aiohttp_client, entry_points, plugin_module
) -> None:
    plugin_module("hub_test_exploding", EXPLODING_PLUGIN)
    entry_points(("exploding", "hub_test_exploding"), "slack")
    registry = Registry()
    registry.load_entry_points()
    registry.check_pending()
    # Its config section does not stop start-up: it is reported, not fatal.
    client = await aiohttp_client(create_app(build_hub(make_config(providers={"exploding": {"enabled": True}}), registry)))

    body = await (await client.get("/api/providers", headers=auth())).json()
    assert [p["name"] for p in body["data"]["providers"]] == ["slack"]
    assert body["data"]["failures"] == [
        {"name": "exploding", "source": "hub_test_exploding (unknown distribution)", "error": "import failed: RuntimeError: boom at import"}
    ]
    resp = await client.get("/api/integrations/exploding/connect", headers=auth())
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_provider"
    assert (await client.get("/api/integrations/slack/connect", headers=auth())).status == 200


def test_hub_plugins_lists_providers_and_failures(entry_points, plugin_module) -> None:
    plugin_module("hub_test_exploding", EXPLODING_PLUGIN)
    entry_points("slack", ("exploding", "hub_test_exploding"))

    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "slack  Slack  [oauth2]  from hub_slack (hub-slack)"
    assert any(line.split() == ["GET", "users/{user_id}", "get_user"] for line in lines)
    assert "exploding  FAILED: import failed: RuntimeError: boom at import  (from hub_test_exploding (unknown distribution))" in lines

    result = CliRunner().invoke(main, ["plugins", "--json"])
    data = json.loads(result.output)
    assert [p["name"] for p in data["providers"]] == ["slack"]
    assert [a["name"] for a in data["providers"][0]["actions"]] == ["post_message", "list_channels", "get_user"]
    assert data["failures"] == [
        {"name": "exploding", "source": "hub_test_exploding (unknown distribution)", "error": "import failed: RuntimeError: boom at import"}
    ]


# --- routing follows the config ----------------------------------------------------------


async def test_only_providers_enabled_in_config_are_routed(make_config, aiohttp_client) -> None:
    registry = make_registry(
        disabled=WithActions("disabled", Action("things", "GET", "things", handler)),
        unlisted=WithActions("unlisted", Action("things", "GET", "things", handler)),
    )
    config = make_config(providers={"disabled": {"enabled": False}})  # no section at all for "unlisted"
    client = await aiohttp_client(create_app(build_hub(config, registry)))

    body = await (await client.get("/api/providers", headers=auth())).json()
    assert [p["name"] for p in body["data"]["providers"]] == ["slack"]
    for name in ("disabled", "unlisted"):
        for path in ("things", "connect"):
            resp = await client.get(f"/api/integrations/{name}/{path}", headers=auth())
            assert resp.status == 404, path
            assert (await resp.json())["error"]["code"] == "unknown_provider"
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert not [p for p in paths if "/disabled/" in p or "/unlisted/" in p]
    assert (await client.get("/api/integrations/slack/connect", headers=auth())).status == 200

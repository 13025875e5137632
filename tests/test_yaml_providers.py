"""YAML providers: the file's checks, loading beside plugins, pasted keys verified before
they are stored, every paging style as nextCursor, declared errors as the hub's errors."""

from __future__ import annotations

import copy
import importlib.metadata
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import registry as registry_module
from hub.registry import FILES_GROUP, Registry
from hub.testing import auth_headers, connect, start_hub
from hub.testing.yamlfake import NEXT_CURSOR, GeneratedFake
from hub.web import create_app
from hub.yamlprov import CATALOGUE, DefinitionError, load_file, parse
from hub.yamlprov.load import RESERVED
from support import auth, build_hub, make_registry

OBJECT = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
ITEMS = {"type": "array", "items": OBJECT}

BASE: dict[str, Any] = {
    "name": "tasks",
    "title": "Tasks",
    "api": "https://tasks.example.com/v1",
    "auth": {"kind": "api_key", "key": {"header": "X-Api-Key"}},
    "identity": {"path": "me", "id": "data.id", "name": "data.name", "example": {"data": {"id": "u-1", "name": "Ada"}}},
    "actions": [
        {
            "name": "get_task", "method": "GET", "path": "tasks/{task_id}",
            "input": {"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "string"}}},
            "examples": [{"task_id": "t-1"}],
            "output": {"pick": "data", "schema": OBJECT, "example": {"data": {"id": "t-1"}}},
        },
    ],
}


def definition(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d.update(changes)
    return d


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def problems_of(data: Any) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse(data, "x.yaml")
    return caught.value.problems


# --- the file's checks ---------------------------------------------------------------------


def action_with(**changes: Any) -> dict[str, Any]:
    return definition(actions=[{**BASE["actions"][0], **changes}])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (definition(auth={"kind": "saml"}), "auth.kind: must be 'oauth2', 'api_key' or 'basic'"),
        (action_with(path="tasks/{task_id}/notes/{note_id}"), "actions.0.path: the parameter {note_id} is not in input.properties"),
        (action_with(name="status", path="status"), "actions.0.name: 'status' at path 'status' uses a name of the hub's own routes"),
        (action_with(input={"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "strin"}}}),
         "actions.0.input: not a valid JSON Schema at /properties/task_id/type"),
        (action_with(summry="typo"), "actions.0.summry: unknown key"),
        (action_with(method="FETCH"), "actions.0.method: must be one of GET, POST, PUT, PATCH, DELETE"),
        (action_with(output={"pick": "result", "schema": OBJECT, "example": {"data": {}}}), "actions.0.output.pick: 'result' names nothing"),
        (definition(auth={"kind": "oauth2", "token": "https://x.example.com/token"}), "auth: an oauth2 provider needs authorize"),
        (definition(auth={"kind": "api_key"}), "auth: an api_key provider needs key"),
        (definition(errors=[{"kind": "auth"}]), "errors.0: a rule that may apply to a successful status needs a match"),
        (definition(errors=[{"status": 401, "match": "(", "kind": "auth"}]), "errors.0.match: not a regular expression"),
        (definition(name="Tasks!"), "name: lowercase letters"),
        (definition(identity={**BASE["identity"], "id": "data.uid"}), "identity.id: 'data.uid' names nothing in identity.example"),
    ],
)
def test_a_malformed_definition_names_the_yaml_path(data: dict[str, Any], expected: str) -> None:
    where, message = expected.split(": ", 1)
    found = problems_of(data)
    assert any(p.startswith(f"{where}: ") and message in p for p in found), found


def test_the_reserved_names_are_the_registrys() -> None:
    assert RESERVED == registry_module.RESERVED


def test_a_file_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_file(write(tmp_path, "broken", "name: [unclosed\n"))
    assert str(tmp_path / "broken.yaml") in str(caught.value) and "not valid YAML at line" in str(caught.value)


async def test_broken_files_are_recorded_and_the_hub_serves_the_rest(tmp_path: Path, make_config: Any, aiohttp_client: Any) -> None:
    write(tmp_path, "tasks", definition())
    write(tmp_path, "kinds", definition(name="kinds", auth={"kind": "saml"}))
    write(tmp_path, "params", {**action_with(path="tasks/{nope}"), "name": "params"})
    registry = make_registry()
    registry.load_provider_files(["tasks.yaml", "kinds.yaml", "params.yaml", "github"], base=tmp_path)
    assert sorted(registry.providers) == ["github", "google_calendar", "slack", "tasks", "trello"]
    assert registry.providers["github"].source == "catalogue:github"
    failures = {f.name: f for f in registry.failures}
    assert failures["kinds"].source == "kinds.yaml" and failures["kinds"].error.startswith("auth.kind: must be")
    assert "actions.0.path: the parameter {nope} is not in input.properties" in failures["params"].error

    config = make_config(providers={"tasks": {"enabled": True}, "github": {"client_id": "id", "client_secret": "secret-value"}})
    client = await aiohttp_client(create_app(build_hub(config, registry)))
    body = (await (await client.get("/api/providers", headers=auth())).json())["data"]
    assert {"github", "tasks"} <= {p["name"] for p in body["providers"]}
    assert {f["name"] for f in body["failures"]} == {"kinds", "params"}
    spec = await (await client.get("/api/openapi.json")).json()
    assert "/api/integrations/github/repos/{owner}/{repo}/issues" in spec["paths"]


def test_packages_name_their_files_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("hub_test_provider_files")
    module.FILES = [str(write(tmp_path, "tasks", definition())), str(write(tmp_path, "bad", {"name": "bad"}))]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points

    def listed(**params: Any) -> Any:
        if params.get("group") == FILES_GROUP:
            return importlib.metadata.EntryPoints([importlib.metadata.EntryPoint("tasks", f"{module.__name__}:FILES", FILES_GROUP)])
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", listed)
    registry = Registry()
    registry.load_entry_points()
    assert "tasks" in registry.providers and {"slack", "trello", "google_calendar"} <= set(registry.providers)
    assert [f.name for f in registry.failures] == ["bad"] and "title: required" in registry.failures[0].error


# --- pasted keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("place", [{"header": "Authorization", "prefix": "Key "}, {"query": "api_key"}])
async def test_a_pasted_key_is_verified_by_the_identity_call_before_it_is_stored(tmp_path: Path, make_hub: Any, place: dict[str, str]) -> None:
    plugin = load_file(write(tmp_path, "tasks", definition(auth={"kind": "api_key", "key": place})))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    fake = client.fake
    resp = await client.post("/api/integrations/tasks/tokens", json={"token": "not-a-key-0000"}, headers=auth_headers("alice"))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "token_rejected"
    assert (await client.get("/api/integrations/tasks", headers=auth_headers("alice"))).status == 404
    assert [c.path for c in fake.calls] == ["/api/me"]  # checked upstream, then nothing stored

    key = fake.mint("access", dict(fake.account), "").value
    resp = await client.post("/api/integrations/tasks/tokens", json={"token": key}, headers=auth_headers("alice"))
    assert resp.status == 201, await resp.text()
    view = (await resp.json())["data"]
    assert view["status"] == "ACTIVE" and view["account"]["accountId"] == "u-1" and view["account"]["accountName"] == "Ada"
    resp = await client.get("/api/integrations/tasks/tasks/t-1", headers=auth_headers("alice"))
    assert resp.status == 200 and (await resp.json())["data"] == {"id": "t-1"}
    last = fake.calls[-1]
    sent = last.query.get("api_key") if "query" in place else last.headers.get("Authorization")
    assert sent == (key if "query" in place else f"Key {key}")


async def test_basic_credentials_connect_through_the_fakes_page(tmp_path: Path, make_hub: Any) -> None:
    plugin = load_file(write(tmp_path, "tasks", definition(auth={"kind": "basic"})))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    resp = await connect(client)
    assert resp.status == 201, await resp.text()
    assert client.fake.calls[-1].headers["Authorization"].startswith("Basic ")


# --- paging ---------------------------------------------------------------------------------


def paged(name: str, paging: dict[str, Any], example: Any, pick: str | None = "items") -> dict[str, Any]:
    props = {"limit": {"type": "integer", "minimum": 1, "maximum": 50}} if paging.get("size_param") == "limit" else {}
    return {
        "name": name, "method": "GET", "path": name, "input": {"type": "object", "properties": props},
        "examples": [{}], "paging": paging,
        "output": {"pick": pick, "schema": ITEMS, "example": example},
    }


PAGED = definition(actions=[
    paged("by_cursor", {"style": "cursor", "param": "cursor", "next_field": "meta.next"}, {"items": [{"id": "a"}], "meta": {"next": None}}),
    paged("by_link", {"style": "link", "param": "page"}, [{"id": "a"}], pick=None),
    paged("by_offset", {"style": "offset", "param": "offset", "size_param": "limit", "page_size": 2}, {"items": [{"id": "a"}, {"id": "b"}]}),
    paged("by_page", {"style": "page", "param": "page", "more_field": "has_more"}, {"items": [{"id": "a"}], "has_more": False}),
])


@pytest.mark.parametrize(("action", "first", "param", "sent"), [
    ("by_cursor", NEXT_CURSOR, "cursor", NEXT_CURSOR),
    ("by_link", "2", "page", "2"),
    ("by_offset", "2", "offset", "2"),
    ("by_page", "2", "page", "2"),
])
async def test_each_paging_style_surfaces_as_next_cursor(tmp_path: Path, make_hub: Any, action: str, first: str, param: str, sent: str) -> None:
    plugin = load_file(write(tmp_path, "tasks", PAGED))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 201
    resp = await client.get(f"/api/integrations/tasks/{action}", headers=auth_headers("alice"))
    body = (await resp.json())["data"]
    assert resp.status == 200 and body["nextCursor"] == first and body["items"], body
    resp = await client.get(f"/api/integrations/tasks/{action}", params={"cursor": first}, headers=auth_headers("alice"))
    body = (await resp.json())["data"]
    assert resp.status == 200 and body["nextCursor"] is None, body
    assert client.fake.calls[-1].query[param] == sent


async def test_a_page_cursor_must_be_a_number(tmp_path: Path, make_hub: Any) -> None:
    plugin = load_file(write(tmp_path, "tasks", PAGED))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 201
    resp = await client.get("/api/integrations/tasks/by_page", params={"cursor": "../x"}, headers=auth_headers("alice"))
    assert resp.status == 400 and "cursor" in (await resp.json())["error"]["message"]


async def test_body_inputs_go_under_the_body_key_and_paging_of_a_post_in_the_body(tmp_path: Path, make_hub: Any) -> None:
    action = {
        "name": "search", "method": "POST", "path": "search", "body_key": "data",
        "input": {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}, "lang": {"type": "string"}}},
        "inputs": {"lang": "query"}, "examples": [{"q": "x"}], "paging": {"style": "cursor", "param": "start", "next_field": "next"},
        "output": {"pick": "hits", "schema": ITEMS, "example": {"hits": [{"id": "a"}], "next": None}},
    }
    plugin = load_file(write(tmp_path, "tasks", definition(actions=[action])))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 201
    resp = await client.post("/api/integrations/tasks/search", json={"q": "x", "lang": "en", "cursor": "c-2"}, headers=auth_headers("alice"))
    assert resp.status == 200, await resp.text()
    sent = client.fake.calls[-1]
    assert sent.json == {"data": {"q": "x", "start": "c-2"}} and sent.query == {"lang": "en"}


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "status", "code"), [
    (0, 429, "rate_limited"), (1, 403, "provider_forbidden"), (2, 404, "provider_not_found"), (3, 400, "provider_rejected_input"),
])
async def test_declared_errors_become_the_hubs_typed_errors(make_hub: Any, index: int, status: int, code: str) -> None:
    plugin = load_file(CATALOGUE / "github.yaml")
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 200
    client.fake.error_next(index, count=3)
    resp = await client.get("/api/integrations/github/repos", headers=auth_headers("alice"))
    body = await resp.json()
    assert resp.status == status and body["error"]["code"] == code, body
    if status == 429:
        assert resp.headers["Retry-After"] == "60"


async def test_a_rate_limit_that_names_no_wait_gets_the_declared_one(make_hub: Any) -> None:
    plugin = load_file(CATALOGUE / "airtable.yaml")
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 200
    client.fake.error_next(3, count=3)
    resp = await client.get("/api/integrations/airtable/bases", headers=auth_headers("alice"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "30", await resp.text()


async def test_an_error_in_a_200_body_is_a_failure(tmp_path: Path, make_hub: Any) -> None:
    rule = {"status": 200, "match": '"ok": ?false', "kind": "not_found", "code": "error", "example": {"ok": False, "error": "task_not_found"}}
    plugin = load_file(write(tmp_path, "tasks", definition(errors=[rule])))
    client = await make_hub(plugin, GeneratedFake(plugin.definition))
    assert (await connect(client)).status == 201
    client.fake.fail_next(200, {"ok": False, "error": "task_not_found"}, path="/api/tasks")
    resp = await client.get("/api/integrations/tasks/tasks/t-1", headers=auth_headers("alice"))
    body = await resp.json()
    assert resp.status == 404 and body["error"]["code"] == "provider_not_found", body
    assert body["error"]["details"]["providerError"] == "task_not_found"


async def test_the_hub_serves_a_yaml_provider_with_start_hub(tmp_path: Path, hub_database_url: str) -> None:
    plugin = load_file(write(tmp_path, "tasks", definition()))
    client = await start_hub(plugin, GeneratedFake(plugin.definition), hub_database_url)
    try:
        assert (await connect(client)).status == 201
    finally:
        await client.close()
        await client.fake.stop()


# --- the sandbox and the commands ------------------------------------------------------------


async def test_the_sandbox_serves_yaml_providers_through_their_fakes(tmp_path: Path, db_url: str, encryption_keys: str, aiohttp_client: Any) -> None:
    from hub.core.hub import Hub
    from hub.infra.config import config_from_dict
    from hub.infra.secrets import Secrets
    from hub.sandbox import start_fakes
    from hub.testing import finish_connect, press_consent
    from support import JWT_SECRET

    write(tmp_path, "tasks", definition())
    registry = make_registry()
    registry.load_provider_files(["github", "tasks.yaml"], base=tmp_path)
    config = config_from_dict({
        "database": {"url": db_url}, "auth": {"jwt_secret": JWT_SECRET}, "security": {"encryption_keys": encryption_keys},
        "server": {"public_url": "http://127.0.0.1:9"}, "providers": {"github": {}, "tasks": {}, "slack": {"enabled": False},
                                                                       "trello": {"enabled": False}, "google_calendar": {"enabled": False}},
    }, env={})
    fakes = await start_fakes(config, registry)
    try:
        assert set(fakes.urls) == {"github", "tasks"}
        hub = Hub(config, registry, Secrets(JWT_SECRET, encryption_keys))
        client = await aiohttp_client(create_app(hub))
        hub.config.server.public_url = str(client.make_url("")).rstrip("/")
        for name, connected in (("github", 200), ("tasks", 201)):
            resp = await client.get(f"/api/integrations/{name}/connect", headers=auth("alice"))
            location = await press_consent((await resp.json())["data"]["authUrl"])
            resp = await finish_connect(client, location, name)
            assert resp.status == connected, await resp.text()
            view = await (await client.get(f"/api/integrations/{name}", headers=auth("alice"))).json()
            assert view["data"]["status"] == "ACTIVE"
    finally:
        await fakes.stop()


def test_hub_plugins_lists_yaml_providers_and_broken_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    write(tmp_path, "tasks", definition())
    write(tmp_path, "kinds", definition(name="kinds", auth={"kind": "saml"}))
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"provider_files": ["github", "tasks.yaml", "kinds.yaml"], "providers": {"tasks": {}}}), encoding="utf-8")
    result = CliRunner().invoke(main, ["plugins", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "github  GitHub  [oauth2]  from catalogue:github  NOT ENABLED" in result.output
    assert "tasks  Tasks  [token]  from tasks.yaml" in result.output
    assert "kinds  FAILED: auth.kind: must be 'oauth2', 'api_key' or 'basic'" in result.output


async def test_the_sandbox_offers_the_whole_catalogue_and_connects_each_provider(tmp_path: Path, db_url: str, encryption_keys: str, aiohttp_client: Any) -> None:
    from hub.core.hub import Hub
    from hub.infra.config import config_from_dict
    from hub.infra.secrets import Secrets
    from hub.sandbox import offer_catalogue, start_fakes
    from hub.testing import finish_connect, press_consent
    from hub.yamlprov import catalogue_names
    from support import JWT_SECRET

    registry = make_registry()
    registry.load_provider_files(["zoom"])
    config = config_from_dict({
        "database": {"url": db_url}, "auth": {"jwt_secret": JWT_SECRET}, "security": {"encryption_keys": encryption_keys},
        "server": {"public_url": "http://127.0.0.1:9"}, "providers": {"slack": {}, "trello": {}, "google_calendar": {}, "zoom": {"enabled": False}},
    }, env={})
    added = offer_catalogue(config, registry)
    # What the config names stays as it is: zoom is loaded but switched off there, so it is not offered.
    assert sorted(added) == [name for name in catalogue_names() if name != "zoom"] and len(added) >= 11
    assert config.providers["zoom"].enabled is False
    fakes = await start_fakes(config, registry)
    try:
        assert set(fakes.urls) == {"slack", "trello", "google_calendar", *added}, fakes.skipped
        assert not set(added) & set(fakes.unlisted)  # enabled, so the banner does not ask to enable them
        hub = Hub(config, registry, Secrets(JWT_SECRET, encryption_keys))
        client = await aiohttp_client(create_app(hub))
        hub.config.server.public_url = str(client.make_url("")).rstrip("/")
        listed = (await (await client.get("/api/providers", headers=auth("alice"))).json())["data"]
        names = {p["name"] for p in (listed["providers"] if isinstance(listed, dict) else listed)}
        assert {"slack", "trello", "google_calendar", *added} <= names and len(names) >= 14
        for name in added:
            resp = await client.get(f"/api/integrations/{name}/connect", headers=auth("alice"))
            location = await press_consent((await resp.json())["data"]["authUrl"])
            resp = await finish_connect(client, location, name)
            assert resp.status in (200, 201), (name, await resp.text())
            view = await (await client.get(f"/api/integrations/{name}", headers=auth("alice"))).json()
            assert view["data"]["status"] == "ACTIVE", name
    finally:
        await fakes.stop()


def test_hub_plugins_names_the_catalogue_entries_the_config_does_not_load(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from hub.cli import main
    from hub.yamlprov import catalogue_names

    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"provider_files": ["github"], "providers": {"github": {}}}), encoding="utf-8")
    result = CliRunner().invoke(main, ["plugins", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "gitlab  GitLab  [oauth2]  from catalogue:gitlab  NOT LOADED" in result.output
    assert "from catalogue:github  NOT LOADED" not in result.output  # loaded: listed with the others
    listed = json.loads(CliRunner().invoke(main, ["plugins", "--config", str(config), "--json"]).output)
    names = [p["name"] for p in listed["providers"]] + [c["name"] for c in listed["catalogue"]]
    assert sorted(names) == sorted({"slack", "trello", "google_calendar", *catalogue_names()}) and len(names) >= 15

"""Configuration: YAML, interpolation, validation messages that name the YAML path, and
what the config does to a built hub (URL overrides, unconfigured providers)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import JWT_SECRET, auth, build_hub, make_registry

from hub.infra.config import (
    ConfigError,
    HubConfig,
    config_from_dict,
    interpolate,
    load_config,
)
from hub.core.runtime import check_providers
from hub.web import create_app


def write(tmp_path: Path, text: str, name: str = "hub.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(raw: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, env=env or {})
    return info.value.problems


def provider_problems(providers: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    config = config_from_dict({"providers": providers}, env={})
    return check_providers(config, make_registry())


# --- loading -------------------------------------------------------------------------


def test_load_a_yaml_file_with_interpolation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        server:
          host: ${HUB_HOST:-0.0.0.0}
          port: ${HUB_PORT:-9090}
          public_url: https://${PUBLIC_HOST}/hub
          production: ${HUB_PRODUCTION:-false}
        database:
          url: sqlite+aiosqlite:///${DATA_DIR:-/var/lib/hub}/hub.db
        auth:
          jwt_secret: ${HUB_JWT_SECRET}
        security:
          encryption_keys: ${HUB_ENCRYPTION_KEYS}
        activity:
          retention_days: 30
        providers:
          slack:
            client_id: ${SLACK_CLIENT_ID}
            client_secret: ${SLACK_CLIENT_SECRET}
            scopes: [chat:write]
        """,
    )
    env = {
        "HUB_PORT": "8181",
        "PUBLIC_HOST": "hub.example.com",
        "HUB_JWT_SECRET": "j" * 40,
        "SLACK_CLIENT_ID": "cid",
        "SLACK_CLIENT_SECRET": "csecret",
    }
    config = load_config(path, env=env)
    assert config.source == str(path)
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8181
    assert config.server.public_url == "https://hub.example.com/hub"
    assert config.public_url == "https://hub.example.com/hub"
    assert config.server.production is False
    assert config.database.url == "sqlite+aiosqlite:////var/lib/hub/hub.db"
    assert config.auth.jwt_secret == "j" * 40
    assert config.security.encryption_keys is None  # exact ${VAR}, unset
    assert config.activity.retention_days == 30
    slack = config.providers["slack"]
    assert slack.enabled is True
    assert slack.scopes == ["chat:write"]
    assert slack.settings == {"client_id": "cid", "client_secret": "csecret"}


def test_hub_config_env_var_and_explicit_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path, "server: {port: 1111}\n", "a.yaml")
    b = write(tmp_path, "server: {port: 2222}\n", "b.yaml")
    assert load_config(env={"HUB_CONFIG": str(a)}).server.port == 1111
    assert load_config(b, env={"HUB_CONFIG": str(a)}).server.port == 2222
    # no file anywhere: built-in defaults
    monkeypatch.chdir(tmp_path)
    defaults = load_config(env={})
    assert defaults.source is None
    assert defaults.server.port == 8080
    assert defaults.database.url == "sqlite+aiosqlite:///data/hub.db"


def test_the_shipped_config_loads_without_any_environment() -> None:
    config = load_config(Path(__file__).parent.parent / "config" / "hub.yaml", env={})
    assert config.server.port == 8080 and config.server.production is False
    assert config.auth.jwt_secret is None and config.security.encryption_keys is None
    assert config.providers["slack"].settings == {"client_id": None, "client_secret": None}
    errors, unconfigured = check_providers(config, make_registry())
    assert errors == []
    assert set(unconfigured) == {"slack", "trello", "google_calendar"}


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A}", {}, None),
        ("${A}", {"A": ""}, None),
        ("  ${A}  ", {}, None),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-http://x:1/p}", {}, "http://x:1/p"),
        ("pre-${A}-post", {"A": "mid"}, "pre-mid-post"),
        ("pre-${A}-post", {}, "pre--post"),
        ("${A}${B:-b}", {"A": "a"}, "ab"),
        ("postgresql+asyncpg://u:${PW}@db/${NAME:-hub}", {"PW": "p@ss"}, "postgresql+asyncpg://u:p@ss@db/hub"),
        ("no variables", {"A": "x"}, "no variables"),
        ("$A and {A}", {"A": "x"}, "$A and {A}"),
        (42, {}, 42),
        (True, {}, True),
        (None, {}, None),
    ],
)
def test_interpolate(value: Any, env: dict[str, str], expected: Any) -> None:
    assert interpolate(value, env) == expected


def test_interpolate_walks_lists_and_mappings() -> None:
    tree = {"a": ["${X}", {"b": "${Y:-y}"}], "c": {"d": "${X}-${Y:-z}"}}
    assert interpolate(tree, {"X": "x"}) == {"a": ["x", {"b": "y"}], "c": {"d": "x-z"}}


def test_interpolated_values_are_typed_by_validation() -> None:
    config = config_from_dict(
        {"server": {"port": "${P}", "production": "${PROD}"}, "activity": {"retention_days": "${DAYS:-7}"}},
        env={"P": "9999", "PROD": "true"},
    )
    assert config.server.port == 9999 and config.server.production is True
    assert config.activity.retention_days == 7


def test_unset_credentials_leave_the_provider_section_valid() -> None:
    config = config_from_dict({"providers": {"slack": {"client_id": "${NOPE}", "client_secret": "${NOPE2}"}}}, env={})
    assert config.providers["slack"].settings == {"client_id": None, "client_secret": None}


def test_empty_provider_section_is_enabled_with_defaults() -> None:
    config = config_from_dict({"providers": {"slack": None}}, env={})
    assert config.providers["slack"].enabled is True
    assert config.enabled_providers().keys() == {"slack"}
    off = config_from_dict({"providers": {"slack": {"enabled": False}}}, env={})
    assert off.enabled_providers() == {}


# --- errors name the YAML path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"foo": 1}, "foo: unknown key"),
        ({"server": {"prot": 80}}, "server.prot: unknown key"),
        ({"server": {"port": 70000}}, "server.port: "),
        ({"server": {"port": -1}}, "server.port: "),
        ({"server": {"port": "eighty"}}, "server.port: "),
        ({"server": {"public_url": "hub.example.com"}}, "server.public_url: must start with http:// or https://"),
        ({"server": 5}, "server: "),
        ({"database": {"url": "mysql://root@localhost/hub"}}, "database.url: must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"),
        ({"database": {"url": "postgresql://u@h/db"}}, "database.url: "),
        ({"database": {"url": "sqlite:///data/hub.db"}}, "database.url: "),
        ({"auth": {"jwt_secret": "short"}}, "auth.jwt_secret: must be at least 32 characters"),
        ({"auth": {"leeway_seconds": -1}}, "auth.leeway_seconds: "),
        ({"security": {"state_ttl_seconds": 5}}, "security.state_ttl_seconds: "),
        ({"activity": {"retention_days": 0}}, "activity.retention_days: "),
        ({"upstream": {"total_timeout": 0}}, "upstream.total_timeout: "),
        ({"providers": {"slack": {"enabled": "perhaps"}}}, "providers.slack.enabled: "),
        ({"providers": {"slack": {"scopes": "chat:write"}}}, "providers.slack.scopes: "),
        ({"providers": {"slack": {"urls": {"api": 5}}}}, "providers.slack.urls.api: "),
        ({"providers": {"slack": 5}}, "providers.slack: "),
    ],
)
def test_validation_errors_name_the_path(raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("providers", [["slack"], "slack"])
def test_providers_must_be_a_mapping(providers: Any) -> None:
    problems = problems_of({"providers": providers})
    assert any(p.startswith("providers: ") for p in problems), problems


def test_a_short_secret_from_the_environment_is_reported_without_its_value() -> None:
    problems = problems_of({"auth": {"jwt_secret": "${S}"}}, env={"S": "tiny-secret"})
    assert problems == [p for p in problems if "tiny-secret" not in p]
    assert problems[0].startswith("auth.jwt_secret:")


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 99999\nfoo: 1\ndatabase:\n  url: mysql://x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = info.value.problems
    assert len(problems) == 3
    assert {p.split(":", 1)[0] for p in problems} == {"server.port", "foo", "database.url"}
    text = str(info.value)
    assert str(path) in text and "server.port" in text and "foo: unknown key" in text


def test_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 8080\n  host: [unclosed\ndatabase:\n  url: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.startswith("not valid YAML at line ")
    assert "column" in problem
    assert info.value.source == str(path)

    tabs = write(tmp_path, "server:\n\tport: 1\n", "tabs.yaml")
    with pytest.raises(ConfigError, match=r"line 2, column 1"):
        load_config(tabs, env={})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- server\n- database\n"), env={})
    # an empty file is the defaults
    assert load_config(write(tmp_path, "", "empty.yaml"), env={}).server.port == 8080


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as info:
        load_config(tmp_path / "missing.yaml", env={})
    assert info.value.source == str(tmp_path / "missing.yaml")


# --- providers: checked against the installed plugins -----------------------------------


def test_client_id_without_secret_names_the_missing_key() -> None:
    errors, unconfigured = provider_problems({"slack": {"client_id": "cid"}})
    assert unconfigured == {}
    assert len(errors) == 1
    assert errors[0].startswith("providers.slack.client_secret: required by slack")


def test_secret_without_client_id_names_the_missing_key() -> None:
    errors, _ = provider_problems({"slack": {"client_secret": "s", "client_id": ""}})
    assert [e.split(":", 1)[0] for e in errors] == ["providers.slack.client_id"]


def test_no_credentials_at_all_is_not_configured_not_an_error() -> None:
    errors, unconfigured = provider_problems({"slack": {}})
    assert errors == []
    assert unconfigured == {"slack": ["providers.slack.client_id is not set", "providers.slack.client_secret is not set"]}
    # a disabled provider with half its credentials is not checked for them
    errors, unconfigured = provider_problems({"slack": {"enabled": False, "client_id": "cid"}})
    assert errors == [] and unconfigured == {}


def test_unknown_provider_lists_the_installed_ones() -> None:
    errors, _ = provider_problems({"github": {"client_id": "x"}})
    assert len(errors) == 1
    assert errors[0].startswith("providers.github: ")
    assert "installed: google_calendar, slack, trello" in errors[0]


def test_unknown_provider_key_lists_the_known_ones() -> None:
    errors, _ = provider_problems({"slack": {"client_id": "a", "client_secret": "b", "clientsecret": "c"}})
    assert len(errors) == 1
    assert errors[0].startswith("providers.slack.clientsecret: unknown key for slack")
    for known in ("client_id", "client_secret", "scopes", "urls", "user_scopes", "team"):
        assert known in errors[0]


def test_bad_urls_keys_and_values() -> None:
    errors, _ = provider_problems(
        {"slack": {"client_id": "a", "client_secret": "b", "urls": {"authorise": "https://x", "api": "ftp://slack.example"}}}
    )
    assert any(e.startswith("providers.slack.urls.authorise: unknown URL") and "authorize" in e for e in errors), errors
    assert any(e.startswith("providers.slack.urls.api: must be an http:// or https:// URL") for e in errors), errors


def test_hub_refuses_to_build_with_provider_errors(make_config) -> None:
    config = make_config(providers={"slack": {"client_id": "only-the-id"}})
    with pytest.raises(ConfigError, match=r"providers\.slack\.client_secret: required by slack"):
        build_hub(config)


# --- what the config does to a running hub ------------------------------------------------


async def test_url_overrides_reach_the_provider(make_config, fake_slack) -> None:
    base = fake_slack.base_url
    config = make_config(
        providers={
            "slack": {
                "client_id": "slack-client",
                "client_secret": "slack-secret-value-123",
                "urls": {"authorize": "https://proxy.example/authz", "api": f"{base}/api", "revoke": "https://proxy.example/revoke"},
            }
        }
    )
    hub = build_hub(config)
    try:
        endpoints = hub.providers["slack"].provider.endpoints
        assert endpoints.authorize == "https://proxy.example/authz"
        assert endpoints.api == f"{base}/api"
        assert endpoints.revoke == "https://proxy.example/revoke"
        assert endpoints.token == "https://slack.com/api/oauth.v2.access"  # not overridden: the default
        assert hub.providers["slack"].configured
    finally:
        await hub.stop()  # built but never started: stop() still closes its pools

    # without overrides the plugin's real endpoints are used
    plain = build_hub(make_config(providers={"slack": {"client_id": "a", "client_secret": "b"}}))
    try:
        assert plain.providers["slack"].provider.endpoints.authorize == "https://slack.com/oauth/v2/authorize"
        assert plain.providers["slack"].provider.endpoints.api == "https://slack.com/api"
    finally:
        await plain.stop()


async def test_authorize_override_is_used_by_connect(hub_app, fake_slack) -> None:
    resp = await hub_app.get("/api/integrations/slack/connect", headers=auth("alice"))
    assert resp.status == 200
    url = (await resp.json())["data"]["authUrl"]
    assert url.startswith(f"{fake_slack.base_url}/oauth/v2/authorize?")


async def test_provider_without_credentials_is_not_configured(make_config, aiohttp_client, fake_slack) -> None:
    config = make_config(providers={"slack": {"client_id": "${SLACK_CLIENT_ID}", "client_secret": "${SLACK_CLIENT_SECRET}"}})
    hub = build_hub(config)
    assert not hub.providers["slack"].configured
    client = await aiohttp_client(create_app(hub))

    resp = await client.get("/api/providers", headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 200
    slack = next(p for p in body["data"]["providers"] if p["name"] == "slack")
    assert slack["configured"] is False
    assert any("providers.slack.client_id" in p for p in slack["problems"])
    assert {a["name"] for a in slack["actions"]} >= {"post_message", "list_channels"}

    resp = await client.get("/api/integrations/slack/connect", headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "provider_not_configured"
    assert "client_id" in body["error"]["message"]

    resp = await client.post("/api/integrations/slack/message", json={"channel": "general", "text": "x"}, headers=auth("alice"))
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "provider_not_configured"
    assert fake_slack.calls == []


async def test_disabled_provider_is_not_routed(make_config, aiohttp_client) -> None:
    hub = build_hub(make_config(providers={"slack": {"enabled": False}}))
    client = await aiohttp_client(create_app(hub))
    resp = await client.get("/api/providers", headers=auth("alice"))
    assert (await resp.json())["data"]["providers"] == []
    resp = await client.get("/api/integrations/slack/connect", headers=auth("alice"))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "unknown_provider"


def test_data_dir_follows_the_sqlite_file(tmp_path: Path) -> None:
    config = HubConfig(database={"url": f"sqlite+aiosqlite:///{tmp_path}/sub/hub.db"})
    assert config.data_dir == tmp_path / "sub"
    assert JWT_SECRET  # the suite's secret is long enough for the validator
    config_from_dict({"auth": {"jwt_secret": JWT_SECRET}}, env={})

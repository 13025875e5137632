"""``events:`` in the config: subscribers validated with the YAML path of each problem, the
signing secret read from the environment, never from the file; and ``hub events``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from eventsupport import SECRET, SECRET_ENV
from hub.cli import main
from hub.infra.config import ConfigError, config_from_dict


def sub(**kw: Any) -> dict[str, Any]:
    return {"events": {"subscribers": {"host": {"url": "https://app.example.com/hooks", "secret_env": SECRET_ENV, **kw}}}}


def problems(raw: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, env={SECRET_ENV: SECRET} if env is None else env)
    return str(caught.value)


def test_a_subscriber_reads_its_secret_from_the_environment() -> None:
    config = config_from_dict(sub(events=["integration.*"]), env={SECRET_ENV: SECRET})
    host = config.events.subscribers["host"]
    assert host.secret == SECRET and host.wants("integration.expired") and not host.wants("slack.message")
    assert SECRET not in config.model_dump_json()


@pytest.mark.parametrize(
    ("raw", "env", "expected"),
    [
        (sub(), {}, f"events.subscribers.host.secret_env: the environment variable {SECRET_ENV} is not set"),
        (sub(), {SECRET_ENV: "not-a-secret"}, f"events.subscribers.host.secret_env: {SECRET_ENV} must hold whsec_"),
        (sub(secret_env=SECRET), None, "events.subscribers.host.secret_env: must be the name of an environment variable"),
        (sub(url="ftp://x"), None, "events.subscribers.host.url: must be an http:// or https:// URL"),
        (sub(events=["integration.conected"]), None, "events.subscribers.host.events: 'integration.conected' is not an event the hub emits"),
        (sub(max_attempts=0), None, "events.subscribers.host.max_attempts:"),
        (sub(backoff_min_seconds=100, backoff_max_seconds=10), None, "backoff_min_seconds must not exceed backoff_max_seconds"),
        (sub(secret="whsec_x"), None, "events.subscribers.host.secret: unknown key"),
        ({"events": {"subscribers": {"Bad Name": {"url": "https://x", "secret_env": "X"}}}}, None, "events.subscribers:"),
    ],
)
def test_bad_subscribers_are_refused_naming_the_path(raw: dict[str, Any], env: dict[str, str] | None, expected: str) -> None:
    assert expected in problems(raw, env)


def test_the_cli_lists_retries_replays_and_makes_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite+aiosqlite:///{tmp_path}/hub.db"}, **sub()}))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    listed = runner.invoke(main, ["events", "list", "--config", str(config)])
    assert listed.exit_code == 0 and listed.output == ""
    missing = runner.invoke(main, ["events", "replay", "evt_nope", "--config", str(config)])
    assert missing.exit_code == 2 and "evt_nope" in missing.output
    assert runner.invoke(main, ["events", "retry", "--config", str(config)]).exit_code == 2
    retried = runner.invoke(main, ["events", "retry", "--all-dead", "--config", str(config)])
    assert retried.exit_code == 0 and "0 dead" in retried.output
    subs = runner.invoke(main, ["events", "subscribers", "--config", str(config)])
    assert "host  https://app.example.com/hooks" in subs.output and "active" in subs.output
    secret = runner.invoke(main, ["events", "secret"]).output.strip()
    assert secret.startswith("whsec_") and config_from_dict(sub(), env={SECRET_ENV: secret})


def test_the_cli_names_a_removed_subscriber_that_still_has_deliveries_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from hub.store.models import Event, EventDelivery

    config = tmp_path / "hub.yaml"
    url = f"sqlite+aiosqlite:///{tmp_path}/hub.db"
    config.write_text(yaml.safe_dump({"database": {"url": url}, **sub()}))
    monkeypatch.setenv(SECRET_ENV, SECRET)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0

    async def owed_to_old_host() -> None:
        engine = create_async_engine(url)
        async with async_sessionmaker(engine).begin() as session:
            event = Event(event_id="evt_1", type="integration.connected", user_id="alice", provider="slack", status="PENDING", payload={})
            session.add(event)
            await session.flush()
            session.add(EventDelivery(event_id=event.id, subscriber="old-host"))
        await engine.dispose()

    asyncio.run(owed_to_old_host())
    subs = runner.invoke(main, ["events", "subscribers", "--config", str(config)])
    assert subs.exit_code == 0, subs.output
    assert "old-host  not in the config any more: 1 delivery(ies) wait for nothing" in subs.output

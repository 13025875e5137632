"""The ``hub`` command, driven through click's CliRunner on temporary SQLite databases."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from hub.infra.auth import JWTVerifier
from hub.infra.secrets import JWT_FILE
from hub.cli import main
from hub.infra.crypto import KeyRing, generate_key, key_id
from hub.store.engine import create_engine, sessionmaker
from hub.errors import Unauthorized
from hub.activity import rebuild_rollups
from hub.store.models import ActivityHour, Integration, IntegrationLog, utcnow
from hub.store.integrations import decrypt_token, encrypt_into
from hub.types import TokenSet

SECRET = "cli-test-secret-" + "q" * 32
KEY_A = generate_key("keyA")
KEY_B = generate_key("keyB")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Some commands configure the root logger for a terminal; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write_config(tmp_path: Path, *, keys: str | None = KEY_A, secret: str | None = SECRET, slack: dict | None = None,
                 extra: dict | None = None, text: str = "", name: str = "hub.yaml") -> Path:
    """A config file on a temporary SQLite database. ``extra`` sections are merged in;
    ``text`` is appended as raw YAML (for broken files)."""
    raw: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/hub.db"},
        "providers": {"slack": {"client_id": "cid", "client_secret": "csecret-value"} if slack is None else slack},
    }
    if secret:
        raw["auth"] = {"jwt_secret": secret}
    if keys:
        raw["security"] = {"encryption_keys": keys}
    for section, values in (extra or {}).items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) + textwrap.dedent(text))
    return path


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(main, list(args), env={"HUB_CONFIG": None, **(env or {})}, catch_exceptions=False)


def db_of(config: Path) -> str:
    return yaml.safe_load(config.read_text())["database"]["url"]


def run_db(url: str, fn: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            return await fn(sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def all_rows(url: str) -> list[Integration]:
    async def fn(sessions: Any) -> list[Integration]:
        async with sessions() as s:
            return list((await s.scalars(select(Integration).order_by(Integration.id))).all())

    return run_db(url, fn)


def insert_rows(url: str, ring: KeyRing, n: int, prefix: str = "u") -> dict[str, TokenSet]:
    tokens: dict[str, TokenSet] = {}

    async def fn(sessions: Any) -> None:
        async with sessions.begin() as s:
            for i in range(n):
                token = TokenSet(access_token=f"xoxb-{prefix}{i}", refresh_token=f"xoxe-{prefix}{i}" if i % 2 else None)
                row = Integration(user_id=f"{prefix}{i}", provider="slack", status="ACTIVE", version=1, meta={}, scopes=[])
                encrypt_into(ring, row, token)
                s.add(row)
                tokens[row.user_id] = token

    run_db(url, fn)
    return tokens


# --- hub check --------------------------------------------------------------------------------


def test_check_good_config(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = invoke(runner, "check", "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"config:   {config}" in out
    assert re.search(r"^  slack: ready, \d+ actions$", out, re.MULTILINE), out
    assert "1 key(s), primary 'keyA'" in out
    assert "shared secret" in out
    assert out.rstrip().endswith("ok")
    # no secret is printed
    for secret in (SECRET, KEY_A.partition(":")[2], "csecret-value"):
        assert secret not in result.output


def test_check_reads_hub_config_from_the_environment(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = invoke(runner, "check", env={"HUB_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert str(config) in result.stdout


def test_check_reports_an_unconfigured_provider_without_failing(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, keys=None, secret=None, slack={"enabled": True})
    result = invoke(runner, "check", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "slack: enabled, not configured (providers.slack.client_id is not set" in result.stdout
    assert "generated secret" in result.stdout and "generated key" in result.stdout


def test_check_names_installed_providers_the_config_does_not_enable(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, extra={"providers": {"google_calendar": {"enabled": False}}})
    result = invoke(runner, "check", "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "  trello: installed, NOT ENABLED (not in the config: the hub does not route it)" in out
    assert "  google_calendar: disabled (set providers.google_calendar.enabled: true to enable it)" in out
    assert f"add under providers: in {config}" in out
    assert "  trello:\n    api_key: ${TRELLO_API_KEY}\n" in out
    assert out.rstrip().endswith("ok")


def test_plugins_marks_the_installed_providers_the_config_does_not_enable(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = invoke(runner, "plugins", "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not any(line.startswith("slack ") and "NOT ENABLED" in line for line in lines)
    assert any(line.startswith("trello ") and "NOT ENABLED" in line for line in lines), result.stdout
    assert "  google_calendar:\n    client_id: ${GOOGLE_CALENDAR_CLIENT_ID}\n    client_secret: ${GOOGLE_CALENDAR_CLIENT_SECRET}\n" in result.stdout
    data = json.loads(invoke(runner, "plugins", "--json", "--config", str(config)).stdout)
    assert {p["name"]: p["enabled"] for p in data["providers"]} == {"slack": True, "trello": False, "google_calendar": False}


@pytest.mark.parametrize(
    ("slack", "expected"),
    [
        ({"client_id": "cid"}, "providers.slack.client_secret: required by slack"),
        ({"client_id": "a", "client_secret": "b", "colour": "blue"}, "providers.slack.colour: unknown key for slack"),
        ({"client_id": "a", "client_secret": "b", "urls": {"apii": "https://x"}}, "providers.slack.urls.apii: unknown URL"),
    ],
)
def test_check_provider_problems_exit_1(runner: CliRunner, tmp_path: Path, slack: dict, expected: str) -> None:
    result = invoke(runner, "check", "--config", str(write_config(tmp_path, slack=slack)))
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "problems:" in result.output


def test_check_unknown_provider_lists_installed(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, extra={"providers": {"github": {"client_id": "x", "client_secret": "y"}}})
    result = invoke(runner, "check", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert "providers.github: no provider plugin named 'github' is installed" in result.output
    assert "slack" in result.output.split("providers.github", 1)[1]


def test_check_bad_key_ring_names_the_setting_not_the_key(runner: CliRunner, tmp_path: Path) -> None:
    material = "c2hvcnQta2V5LW1hdGVyaWFs"  # 18 bytes
    result = invoke(runner, "check", "--config", str(write_config(tmp_path, keys=f"weak:{material}")))
    assert result.exit_code == 1, result.output
    assert "security.encryption_keys: key 'weak'" in result.output
    assert material not in result.output


def test_check_production_without_secrets(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, keys=None, secret=None, extra={"server": {"production": True}})
    result = invoke(runner, "check", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert "production" in result.output and "security.encryption_keys" in result.output
    assert not (tmp_path / "db" / JWT_FILE).exists()  # check never generates anything


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("server:\n  port: 99999\n", "server.port:"),
        ("foo: 1\n", "foo: unknown key"),
        ("server:\n  port: [1\n", "not valid YAML at line"),
    ],
)
def test_check_invalid_config_exit_2_with_the_path(runner: CliRunner, tmp_path: Path, extra: str, expected: str) -> None:
    result = invoke(runner, "check", "--config", str(write_config(tmp_path, text=extra)))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "check", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr


# --- hub plugins ------------------------------------------------------------------------------


def test_plugins_lists_slack_and_its_actions(runner: CliRunner) -> None:
    result = invoke(runner, "plugins")
    assert result.exit_code == 0, result.output
    slack_line = next(line for line in result.stdout.splitlines() if line.startswith("slack "))
    assert "Slack" in slack_line and "hub_slack" in slack_line
    for action, method, path in (("post_message", "POST", "message"), ("list_channels", "GET", "channels"), ("get_user", "GET", "users/{user_id}")):
        assert any(action in line and method in line and path in line for line in result.stdout.splitlines()), action


def test_plugins_json(runner: CliRunner) -> None:
    result = invoke(runner, "plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    slack = next(p for p in data["providers"] if p["name"] == "slack")
    assert slack["auth"] == "oauth2"
    assert {a["name"] for a in slack["actions"]} == {"post_message", "list_channels", "get_user"}
    assert isinstance(data["failures"], list)


# --- hub keys generate ------------------------------------------------------------------------


def test_keys_generate_prints_a_usable_entry(runner: CliRunner) -> None:
    result = invoke(runner, "keys", "generate")
    assert result.exit_code == 0, result.output
    entry = result.stdout.strip()
    assert len(result.stdout.strip().splitlines()) == 1
    ring = KeyRing.parse(entry)
    assert ring.primary == entry.split(":", 1)[0]

    named = invoke(runner, "keys", "generate", "--id", "prod-2026")
    assert named.exit_code == 0
    assert KeyRing.parse(named.stdout.strip()).primary == "prod-2026"
    assert invoke(runner, "keys", "generate").stdout != result.stdout


@pytest.mark.parametrize("kid", ["bad id!", "x" * 33, "dots.are.bad", "colon:no"])
def test_keys_generate_refuses_a_bad_id_cleanly(runner: CliRunner, kid: str) -> None:
    result = invoke(runner, "keys", "generate", "--id", kid)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


# --- hub db -----------------------------------------------------------------------------------


def test_db_upgrade_then_current(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    empty = invoke(runner, "db", "current", "--config", str(config))
    assert empty.exit_code == 0 and empty.stdout.strip() == "(empty database)"

    from alembic.script import ScriptDirectory

    from hub.store.engine import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    up = invoke(runner, "db", "upgrade", "--config", str(config))
    assert up.exit_code == 0, up.output
    assert up.stdout.strip() == f"database at revision {head}"
    assert (tmp_path / "db" / "hub.db").exists()

    current = invoke(runner, "db", "current", "--config", str(config))
    assert current.exit_code == 0
    assert current.stdout.strip() == head

    again = invoke(runner, "db", "upgrade", "--config", str(config))  # idempotent
    assert again.exit_code == 0 and again.stdout.strip() == f"database at revision {head}"


# --- hub keys rotate --------------------------------------------------------------------------


def test_keys_rotate_end_to_end(runner: CliRunner, tmp_path: Path) -> None:
    old = write_config(tmp_path, keys=KEY_A, name="old.yaml")
    assert invoke(runner, "db", "upgrade", "--config", str(old)).exit_code == 0
    url = db_of(old)
    tokens = insert_rows(url, KeyRing.parse(KEY_A), 11)

    new = write_config(tmp_path, keys=f"{KEY_B},{KEY_A}", name="new.yaml")
    result = invoke(runner, "keys", "rotate", "--config", str(new), "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 11 integration(s) under key 'keyB'" in result.stdout
    assert "older keys may now be removed" in result.stdout
    assert result.stderr.count("re-encrypted") == 4  # progress per batch of 3
    for secret in (KEY_A.partition(":")[2], KEY_B.partition(":")[2], *(t.access_token for t in tokens.values())):
        assert secret not in result.output

    ring_b = KeyRing.parse(KEY_B)
    rows = all_rows(url)
    assert {key_id(r.access_token) for r in rows} == {"keyB"}
    for r in rows:
        assert decrypt_token(ring_b, r) == tokens[r.user_id]

    rerun = invoke(runner, "keys", "rotate", "--config", str(new))
    assert rerun.exit_code == 0 and "re-encrypted 0 integration(s)" in rerun.stdout

    # a row no configured key can read: reported, exit 1, left as it was
    insert_rows(url, KeyRing.parse(generate_key("gone")), 1, prefix="lost")
    bad = invoke(runner, "keys", "rotate", "--config", str(new))
    assert bad.exit_code == 1
    assert "1 integration(s) hold values no configured key can decrypt" in bad.stdout
    assert key_id(next(r for r in all_rows(url) if r.user_id == "lost0").access_token) == "gone"


def test_keys_rotate_refuses_a_bad_key_ring(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "keys", "rotate", "--config", str(write_config(tmp_path, keys="nokey")))
    assert result.exit_code == 2
    assert "security.encryption_keys" in result.stderr
    assert "Traceback" not in result.output


# --- hub token --------------------------------------------------------------------------------


def test_token_is_verified_by_the_configured_secret(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = invoke(runner, "token", "--config", str(config), "--user", "alice", "--ttl", "600")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    caller = JWTVerifier(secret=SECRET).verify(f"Bearer {token}")
    assert caller.user_id == "alice"
    assert caller.claims["exp"] - caller.claims["iat"] == 600
    with pytest.raises(Unauthorized):
        JWTVerifier(secret="another-secret-" + "w" * 32).verify(f"Bearer {token}")


def test_token_carries_configured_issuer_and_audience(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/hub.db'}}\n"
        f"auth: {{jwt_secret: {SECRET}, issuer: https://idp.example, audience: hub}}\n"
    )
    result = invoke(runner, "token", "--config", str(config), "--user", "bob")
    assert result.exit_code == 0, result.output
    verifier = JWTVerifier(secret=SECRET, issuer="https://idp.example", audience="hub")
    assert verifier.verify("Bearer " + result.stdout.strip()).user_id == "bob"


def test_token_with_a_generated_secret(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, secret=None)
    result = invoke(runner, "token", "--config", str(config), "--user", "carol")
    assert result.exit_code == 0, result.output
    secret = (tmp_path / "db" / JWT_FILE).read_text().strip()
    assert len(result.stdout.strip().splitlines()) == 1  # stdout holds the token alone: TOKEN=$(hub token ...)
    token = result.stdout.strip()
    assert JWTVerifier(secret=secret).verify(f"Bearer {token}").user_id == "carol"


def test_token_refused_with_a_public_key(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/hub.db'}}\nauth: {{jwt_public_key: /etc/hub/jwt.pem}}\n")
    result = invoke(runner, "token", "--config", str(config), "--user", "dave")
    assert result.exit_code == 2
    assert "public key" in result.stderr
    assert result.stdout == ""


def test_token_requires_a_user(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["token", "--config", str(write_config(tmp_path))])
    assert result.exit_code == 2
    assert "--user" in result.output


# --- hub logs prune ---------------------------------------------------------------------------


def test_logs_prune_deletes_only_old_rows(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, extra={"activity": {"retention_days": 3}})
    assert invoke(runner, "db", "upgrade", "--config", str(config)).exit_code == 0
    url = db_of(config)
    now = utcnow()
    ages = {"fresh": timedelta(minutes=5), "yesterday": timedelta(hours=23), "old": timedelta(hours=25),
            "older": timedelta(days=2, hours=1), "ancient": timedelta(days=10)}

    async def seed(sessions: Any) -> None:
        async with sessions.begin() as s:
            row = Integration(user_id="alice", provider="slack", status="ACTIVE", version=1, meta={}, scopes=[])
            s.add(row)
            await s.flush()
            for action, age in ages.items():
                s.add(IntegrationLog(integration_id=row.id, action=action, status="SUCCESS", duration_ms=1, created_at=now - age))
            await s.flush()
            # Written around the activity writer: count them into the hourly rollup as well.
            await rebuild_rollups(s)

    run_db(url, seed)

    def remaining() -> set[str]:
        async def fn(sessions: Any) -> set[str]:
            async with sessions() as s:
                actions = set((await s.scalars(select(IntegrationLog.action))).all())
                rolled = set((await s.scalars(select(ActivityHour.action).where(ActivityHour.succeeded > 0))).all())
            assert rolled == actions, "the rollup no longer matches the rows that are left"
            return actions

        return run_db(url, fn)

    assert remaining() == set(ages)

    # default: activity.retention_days (3) from the config
    result = invoke(runner, "logs", "prune", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "deleted 1 activity row(s) older than 3 days" in result.stdout
    assert remaining() == {"fresh", "yesterday", "old", "older"}

    result = invoke(runner, "logs", "prune", "--config", str(config), "--days", "1")
    assert result.exit_code == 0, result.output
    assert "deleted 2 activity row(s) older than 1 days" in result.stdout
    assert remaining() == {"fresh", "yesterday"}

    # the integration itself is untouched
    async def count(sessions: Any) -> int:
        async with sessions() as s:
            return await s.scalar(select(func.count()).select_from(Integration))

    assert run_db(url, count) == 1


def test_logs_recount_counts_rows_written_around_the_hub(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert invoke(runner, "db", "upgrade", "--config", str(config)).exit_code == 0
    url = db_of(config)
    now = utcnow()

    async def seed(sessions: Any) -> None:
        # A bulk load straight into the table: the rollup knows nothing of these rows.
        async with sessions.begin() as s:
            for user, provider, n in (("alice", "slack", 3), ("bob", "slack", 2), ("bob", "trello", 4)):
                row = Integration(user_id=user, provider=provider, status="ACTIVE", version=1, meta={}, scopes=[])
                s.add(row)
                await s.flush()
                for i in range(n):
                    s.add(IntegrationLog(integration_id=row.id, action=f"a{i % 2}", status="SUCCESS", duration_ms=5, created_at=now))

    run_db(url, seed)

    def counted() -> dict[tuple[str, str], int]:
        async def fn(sessions: Any) -> dict[tuple[str, str], int]:
            async with sessions() as s:
                rows = await s.execute(
                    select(Integration.user_id, Integration.provider, func.sum(ActivityHour.succeeded))
                    .join(ActivityHour, ActivityHour.integration_id == Integration.id)
                    .group_by(Integration.user_id, Integration.provider)
                )
                return {(u, p): int(n) for u, p, n in rows.all()}

        return run_db(url, fn)

    assert counted() == {}
    result = invoke(runner, "logs", "recount", "--config", str(config), "--user", "bob", "--provider", "trello")
    assert result.exit_code == 0, result.output
    assert "recounted 4 call(s) of 1 integration(s)" in result.stdout
    assert counted() == {("bob", "trello"): 4}
    result = invoke(runner, "logs", "recount", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "recounted 9 call(s) of 3 integration(s)" in result.stdout
    assert counted() == {("alice", "slack"): 3, ("bob", "slack"): 2, ("bob", "trello"): 4}
    # Recounting again changes nothing: it rebuilds, it does not add.
    assert invoke(runner, "logs", "recount", "--config", str(config)).exit_code == 0
    assert counted() == {("alice", "slack"): 3, ("bob", "slack"): 2, ("bob", "trello"): 4}

    result = runner.invoke(main, ["logs", "recount", "--config", str(config), "--user", "carol"])
    assert result.exit_code == 2 and "no integration matches --user 'carol'" in result.output


def test_logs_prune_refuses_zero_days(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["logs", "prune", "--config", str(write_config(tmp_path)), "--days", "0"])
    assert result.exit_code == 2
    assert "--days" in result.output


def test_version_and_help(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0 and "0.1.0" in result.stdout
    helptext = invoke(runner, "--help").stdout
    for command in ("serve", "check", "plugins", "db", "keys", "logs", "token"):
        assert command in helptext


def test_serve_moves_what_start_up_made_out_of_the_collectors_sight() -> None:
    """A full collection must not walk the process's modules and schemas on every pass:
    ``hub serve`` freezes what exists once the hub has started (docs/performance.md)."""
    import gc

    from hub.cli.server import YOUNG_COLLECTION_THRESHOLD, _freeze_startup_objects

    gc.unfreeze()
    threshold = gc.get_threshold()
    try:
        asyncio.run(_freeze_startup_objects(None))
        assert gc.get_freeze_count() > 1000
        # and the young collection waits for more than a few requests' objects
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *threshold[1:])
        assert YOUNG_COLLECTION_THRESHOLD > threshold[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

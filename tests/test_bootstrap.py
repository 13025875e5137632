"""Generated secrets for the embedded default (hub.bootstrap), and ``hub serve`` started
for real on a fresh machine: no secrets configured, Slack enabled without credentials."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hub.infra.auth import JWTVerifier, issue_token
from hub.infra.secrets import JWT_FILE, KEYS_FILE, resolve_secrets
from hub.infra.config import ConfigError, HubConfig, config_from_dict
from hub.infra.crypto import KeyRing, generate_key
from procs import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent


def sqlite_config(data: Path, **sections: dict) -> HubConfig:
    raw: dict = {"database": {"url": f"sqlite+aiosqlite:///{data}/hub.db"}}
    raw.update(sections)
    return config_from_dict(raw, env={})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_fresh_machine_gets_generated_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    data = tmp_path / "state" / "data"  # does not exist yet
    config = sqlite_config(data)
    assert config.data_dir == data

    secrets = resolve_secrets(config)

    jwt_file, keys_file = data / JWT_FILE, data / KEYS_FILE
    assert set(secrets.generated) == {jwt_file, keys_file}
    for path in (jwt_file, keys_file):
        assert path.is_file()
        assert mode(path) == 0o600, oct(mode(path))
    assert jwt_file.read_text().strip() == secrets.jwt_secret
    assert keys_file.read_text().strip() == secrets.encryption_keys

    # usable: a long enough HS256 secret and a parseable one-key ring
    assert len(secrets.jwt_secret) >= 32
    config_from_dict({"auth": {"jwt_secret": secrets.jwt_secret}}, env={})
    ring = KeyRing.parse(secrets.encryption_keys)
    assert len(ring.kids) == 1
    verifier = JWTVerifier(secret=secrets.jwt_secret)
    assert verifier.verify("Bearer " + issue_token(secrets.jwt_secret, "alice")).user_id == "alice"

    # loud: a WARNING per generated secret, naming the setting and the file, never the value
    loud = warnings_of(caplog)
    assert any("auth.jwt_secret" in m and str(jwt_file) in m and "production" in m.lower() for m in loud), loud
    assert any("security.encryption_keys" in m and str(keys_file) in m for m in loud), loud
    assert all(r.levelno == logging.WARNING for r in caplog.records if "GENERATED" in r.getMessage())
    material = secrets.encryption_keys.partition(":")[2]
    assert secrets.jwt_secret not in caplog.text and material not in caplog.text


def test_second_call_returns_the_same_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = sqlite_config(tmp_path / "data")
    first = resolve_secrets(config)
    stamps = {p: p.stat().st_mtime_ns for p in first.generated}
    caplog.clear()
    caplog.set_level(logging.WARNING)

    second = resolve_secrets(config)
    assert (second.jwt_secret, second.encryption_keys) == (first.jwt_secret, first.encryption_keys)
    assert second.generated == ()
    assert {p: p.stat().st_mtime_ns for p in first.generated} == stamps  # not rewritten
    # still a warning on every start: these secrets are for trying the hub only
    loud = warnings_of(caplog)
    assert any("auth.jwt_secret" in m for m in loud) and any("security.encryption_keys" in m for m in loud)

    # a value encrypted on the first start decrypts on the second
    ctx = "ctx"
    assert KeyRing.parse(second.encryption_keys).decrypt(KeyRing.parse(first.encryption_keys).encrypt("tok", ctx), ctx) == "tok"


def test_configured_secrets_are_used_and_nothing_is_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    keys = generate_key("prod1")
    config = sqlite_config(tmp_path / "data", auth={"jwt_secret": "z" * 40}, security={"encryption_keys": keys})
    secrets = resolve_secrets(config)
    assert (secrets.jwt_secret, secrets.encryption_keys, secrets.generated) == ("z" * 40, keys, ())
    assert not (tmp_path / "data" / JWT_FILE).exists()
    assert not (tmp_path / "data" / KEYS_FILE).exists()
    assert warnings_of(caplog) == []


def test_public_key_means_no_jwt_secret_is_generated(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "data", auth={"jwt_public_key": "-----BEGIN PUBLIC KEY-----\n..."})
    secrets = resolve_secrets(config)
    assert secrets.jwt_secret is None
    assert not (tmp_path / "data" / JWT_FILE).exists()
    assert (tmp_path / "data" / KEYS_FILE).exists()


def test_only_the_missing_secret_is_generated(tmp_path: Path) -> None:
    keys = generate_key("mine")
    secrets = resolve_secrets(sqlite_config(tmp_path / "data", security={"encryption_keys": keys}))
    assert secrets.encryption_keys == keys
    assert secrets.generated == (tmp_path / "data" / JWT_FILE,)
    assert not (tmp_path / "data" / KEYS_FILE).exists()


def test_an_operator_provided_file_is_used_as_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = f"{generate_key('placed')}"
    (data / KEYS_FILE).write_text(keys + "\n")
    secrets = resolve_secrets(sqlite_config(data))
    assert secrets.encryption_keys == keys
    assert (data / KEYS_FILE) not in secrets.generated


def test_non_sqlite_database_uses_data_under_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_from_dict({"database": {"url": "postgresql+asyncpg://hub@db.example/hub"}}, env={})
    secrets = resolve_secrets(config)
    assert set(secrets.generated) == {tmp_path / "data" / JWT_FILE, tmp_path / "data" / KEYS_FILE}


@pytest.mark.parametrize(
    ("sections", "named", "not_named"),
    [
        ({}, ["auth.jwt_secret", "security.encryption_keys"], []),
        ({"auth": {"jwt_secret": "p" * 40}}, ["security.encryption_keys"], ["auth.jwt_secret"]),
        ({"security": {"encryption_keys": generate_key("p")}}, ["auth.jwt_secret"], ["security.encryption_keys"]),
    ],
)
def test_production_refuses_to_generate(tmp_path: Path, sections: dict, named: list[str], not_named: list[str]) -> None:
    data = tmp_path / "data"
    config = sqlite_config(data, server={"production": True}, **sections)
    with pytest.raises(ConfigError) as info:
        resolve_secrets(config)
    text = str(info.value)
    for name in named:
        assert any(p.startswith(name) for p in info.value.problems), info.value.problems
    for name in not_named:
        assert name not in text
    assert "production" in text
    assert not (data / JWT_FILE).exists() and not (data / KEYS_FILE).exists()


def test_production_with_everything_configured_is_fine(tmp_path: Path) -> None:
    config = sqlite_config(
        tmp_path / "data", server={"production": True}, auth={"jwt_secret": "p" * 40}, security={"encryption_keys": generate_key("p")}
    )
    assert resolve_secrets(config).generated == ()


@pytest.mark.parametrize("name", [KEYS_FILE, JWT_FILE])
def test_an_empty_secret_file_is_not_an_empty_secret(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / name).touch(mode=0o600)
    try:
        secrets = resolve_secrets(sqlite_config(data))
    except ConfigError as exc:  # refusing, naming the file, is acceptable too
        assert str(data / name) in str(exc)
        return
    assert secrets.jwt_secret and len(secrets.jwt_secret) >= 32
    KeyRing.parse(secrets.encryption_keys)


# --- the real process ---------------------------------------------------------------------


def _hub_executable() -> Path:
    candidate = ROOT / ".venv" / "bin" / "hub"
    return candidate if candidate.exists() else Path(sys.executable).with_name("hub")


def test_hub_serve_on_a_fresh_machine(tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    data = tmp_path / "var"
    config = work / "hub.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server:
              host: 127.0.0.1
              port: 1
              shutdown_timeout: 5
            database:
              url: sqlite+aiosqlite:///{data}/hub.db
            auth:
              jwt_secret: ${{HUB_JWT_SECRET}}
            security:
              encryption_keys: ${{HUB_ENCRYPTION_KEYS}}
            providers:
              slack:
                enabled: true
                client_id: ${{SLACK_CLIENT_ID}}
                client_secret: ${{SLACK_CLIENT_SECRET}}
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "SLACK_"))}
    env["PYTHONUNBUFFERED"] = "1"
    port = _free_port()
    stderr_path, stdout_path = tmp_path / "stderr.log", tmp_path / "stdout.log"
    with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
        proc = subprocess.Popen(
            [str(_hub_executable()), "serve", "--config", str(config), "--port", str(port)],
            cwd=work, env=env, stdout=out, stderr=err,
        )
        try:
            deadline = time.monotonic() + 20
            health = None
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"hub serve exited early with {proc.returncode}:\n{stderr_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                        health = (resp.status, json.loads(resp.read()))
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.2)  # a poll interval: the loop waits on /healthz, up to the deadline
            if health is None:
                pytest.fail(f"/healthz did not answer within 20 s:\n{stderr_path.read_text()}")
            assert health == (200, {"success": True, "data": {"status": "ok"}, "message": "OK"})

            # Slack is listed but not configured; the API works with the generated secret
            jwt_secret = (data / JWT_FILE).read_text().strip()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/providers",
                headers={"Authorization": "Bearer " + issue_token(jwt_secret, "alice")},
            )
            with urllib.request.urlopen(request, timeout=5) as resp:
                catalogue = json.loads(resp.read())["data"]["providers"]
            assert [(p["name"], p["configured"]) for p in catalogue] == [("slack", False)]

            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"hub serve did not exit within 15 s of SIGTERM:\n{stderr_path.read_text()}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    stderr = stderr_path.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "GENERATED auth.jwt_secret" in stderr, stderr
    assert "GENERATED security.encryption_keys" in stderr, stderr
    assert "WARNING" in stderr
    for name in (JWT_FILE, KEYS_FILE):
        assert mode(data / name) == 0o600
    # the generated secrets themselves never reach the log
    assert jwt_secret not in stderr
    assert (data / KEYS_FILE).read_text().strip().partition(":")[2] not in stderr
    assert (data / "hub.db").exists()
    assert not (work / "data").exists()  # the secrets live beside the SQLite file, not in cwd

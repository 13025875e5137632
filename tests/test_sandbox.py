"""hub sandbox: every provider pointed at its built-in fake, unless it has real credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

from helpers import callback_path, consent
from hub.infra.secrets import Secrets
from hub.infra.config import config_from_dict
from hub import Endpoints, ProviderInfo, hookimpl
from hub.sandbox import provider_lines, start_fakes
from hub.core.hub import Hub
from hub.types import Sandbox
from hub.web import create_app
from hub.yamlprov import catalogue_names
from support import JWT_SECRET, auth, make_registry
from procs import free_port

HUB = Path(sys.executable).with_name("hub")


def config_for(db_url, keys, **providers):
    return config_from_dict(
        {"database": {"url": db_url}, "auth": {"jwt_secret": JWT_SECRET}, "security": {"encryption_keys": keys},
         "providers": providers, "server": {"public_url": "http://127.0.0.1:9"}},
        env={},
    )


async def test_hook_hub_sandbox(db_url, encryption_keys, aiohttp_client):
    registry = make_registry()
    config = config_for(db_url, encryption_keys)
    fakes = await start_fakes(config, registry)
    try:
        assert set(fakes.urls) == {"slack", "trello", "google_calendar"}
        for name, base in fakes.urls.items():
            assert base.startswith("http://127.0.0.1:")
            assert all(url.startswith(base) for url in config.providers[name].urls.values())
        assert "http://127.0.0.1:9/" in config.server.allowed_redirects
        hub = Hub(config, registry, Secrets(JWT_SECRET, encryption_keys))
        assert all(rt.configured for rt in hub.providers.values())
        client = await aiohttp_client(create_app(hub))
        hub.config.server.public_url = str(client.make_url("")).rstrip("/")
        # a person's connect, through the fake's real consent page
        resp = await client.get("/api/integrations/slack/connect", headers=auth("alice"))
        location = await consent((await resp.json())["data"]["authUrl"])
        resp = await client.get(callback_path(location), headers={"Accept": "application/json"})
        assert resp.status == 200 and (await resp.json())["data"]["status"] == "ACTIVE"
    finally:
        await fakes.stop()


async def test_real_credentials_keep_the_real_service(db_url, encryption_keys):
    registry = make_registry()
    config = config_for(db_url, encryption_keys, slack={"client_id": "real-id", "client_secret": "real-secret-value"}, trello={"enabled": False})
    fakes = await start_fakes(config, registry)
    try:
        assert fakes.real == ["slack"] and set(fakes.urls) == {"google_calendar"}
        assert config.providers["slack"].urls == {}  # the plugin's real endpoints
        assert config.providers["trello"].enabled is False
    finally:
        await fakes.stop()


async def test_a_plugin_without_a_fake_is_left_as_configured(db_url, encryption_keys):
    from hub import Endpoints, ProviderInfo, hookimpl

    class NoFake:
        @hookimpl
        def hub_provider(self):
            return ProviderInfo(name="nofake", title="No Fake", endpoints=Endpoints(api="https://example.invalid"))

    class BadFake(NoFake):
        @hookimpl
        def hub_provider(self):
            return ProviderInfo(name="badfake", title="Bad Fake", endpoints=Endpoints(api="https://example.invalid"))

        @hookimpl
        def hub_sandbox(self):
            return "not a sandbox"

    registry = make_registry(nofake=NoFake(), badfake=BadFake())
    config = config_for(db_url, encryption_keys)
    fakes = await start_fakes(config, registry)
    try:
        assert "nofake" not in fakes.urls and "badfake" not in fakes.urls
        assert isinstance(await registry.call("slack", "hub_sandbox"), Sandbox)
    finally:
        await fakes.stop()



async def read_until_login(proc: asyncio.subprocess.Process) -> bytes:
    """The sandbox's output up to its banner's last line (or its end, if it exits first)."""
    out = b""
    while b"Press Ctrl-C" not in out:
        line = await proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        out += line
    return out

async def test_sandbox_command_prints_a_working_dev_login_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    (tmp_path / "hub.yaml").write_text(f"server: {{port: {port}}}\ndatabase: {{url: 'sqlite+aiosqlite:///{tmp_path}/data/hub.db'}}\n")
    env = {**os.environ, "HUB_CONFIG": str(tmp_path / "hub.yaml")}
    proc = await asyncio.create_subprocess_exec(str(HUB), "sandbox", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out = await asyncio.wait_for(read_until_login(proc), 30)
        text = out.decode()
        assert "slack" in text and "fake at http://127.0.0.1:" in text
        url = re.search(r"(http://\S+)/#token=(\S+)", text)
        assert url, text
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url.group(1)}/api/providers", headers={"Authorization": f"Bearer {url.group(2)}"}) as resp:
                body = await resp.json()
        assert resp.status == 200 and all(p["configured"] for p in body["data"]["providers"])
        assert {p["name"] for p in body["data"]["providers"]} == {"slack", "trello", "google_calendar", *catalogue_names()}
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr


class Exploding:
    """A provider whose fake cannot start: the rest of the sandbox must."""

    @hookimpl
    def hub_provider(self):
        return ProviderInfo(name="exploding", title="Exploding", endpoints=Endpoints(api="https://example.invalid"))

    @hookimpl
    def hub_sandbox(self):
        raise RuntimeError("the fake's seed file is missing\n  and this second line stays out")


class WrongType:
    @hookimpl
    def hub_provider(self):
        return ProviderInfo(name="wrongtype", title="Wrong Type", endpoints=Endpoints(api="https://example.invalid"))

    @hookimpl
    def hub_sandbox(self):
        return {"app": None}


async def test_a_failing_hub_sandbox_hook_skips_that_provider_with_a_one_line_reason(db_url, encryption_keys, caplog):
    registry = make_registry(exploding=Exploding(), wrongtype=WrongType())
    config = config_for(db_url, encryption_keys)
    with caplog.at_level(logging.INFO, logger="hub.sandbox"):
        fakes = await start_fakes(config, registry)
    try:
        assert set(fakes.urls) == {"slack", "trello", "google_calendar"}
        assert fakes.skipped == {
            "exploding": "hub_sandbox raised RuntimeError: the fake's seed file is missing",
            "wrongtype": "hub_sandbox returned a dict, not a hub.Sandbox",
        }
        for name in fakes.skipped:
            said = [r for r in caplog.records if name in r.getMessage()]
            assert len(said) == 1 and said[0].exc_info is None and "\n" not in said[0].getMessage()
        lines = "\n".join(provider_lines(fakes, ["slack", "exploding"]))
        assert "exploding" in lines and "NO FAKE: hub_sandbox raised RuntimeError: the fake's seed file is missing" in lines
        assert "second line" not in lines
    finally:
        await fakes.stop()


async def test_installed_providers_missing_from_the_config_are_named_with_the_yaml_to_add(db_url, encryption_keys):
    registry = make_registry()
    config = config_for(db_url, encryption_keys, slack={"enabled": True}, google_calendar={"enabled": False})
    fakes = await start_fakes(config, registry)
    try:
        assert fakes.unlisted == ["trello"] and fakes.disabled == ["google_calendar"]
        text = "\n".join(provider_lines(fakes, ["slack", "trello"]))
        assert "not in the config" in text
        assert "google_calendar" in text and "providers.google_calendar.enabled: true" in text
        assert "  trello:\n    api_key: ${TRELLO_API_KEY}" in text
    finally:
        await fakes.stop()


def plugin_dir(tmp_path: Path) -> Path:
    """An installed plugin (a dist-info with an entry point) whose hub_sandbox raises."""
    site = tmp_path / "site"
    (site / "exploding_fake-0.1.dist-info").mkdir(parents=True)
    (site / "exploding_fake-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: exploding-fake\nVersion: 0.1\n")
    (site / "exploding_fake-0.1.dist-info" / "entry_points.txt").write_text("[hub.providers]\nexploding = exploding_fake\n")
    (site / "exploding_fake.py").write_text(
        "from hub import Endpoints, ProviderInfo, hookimpl\n"
        "@hookimpl\n"
        "def hub_provider():\n"
        "    return ProviderInfo(name='exploding', title='Exploding', endpoints=Endpoints(api='https://example.invalid'))\n"
        "@hookimpl\n"
        "def hub_sandbox():\n"
        "    raise RuntimeError('no seed data')\n"
    )
    return site


async def test_the_sandbox_command_starts_without_a_provider_whose_fake_fails(tmp_path):
    site = plugin_dir(tmp_path)
    async with sandbox_command(tmp_path, PYTHONPATH=str(site)) as (text, login, _):
        assert "exploding" in text and "NO FAKE: hub_sandbox raised RuntimeError: no seed data" in text
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{login[0]}/api/providers", headers={"Authorization": f"Bearer {login[1]}"}) as resp:
                body = await resp.json()
        assert resp.status == 200
        assert {p["name"] for p in body["data"]["providers"]} == {"slack", "trello", "google_calendar", *catalogue_names()}
    assert "Traceback" not in sandbox_command.stderr


async def test_the_sandbox_keeps_what_its_fakes_issued_across_a_restart(tmp_path):
    """Connect Slack, stop the sandbox, start it again: the integration still works, on the same port."""
    async with sandbox_command(tmp_path) as (text, (base, jwt), _):
        slack_url = re.search(r"slack\s+fake at (http://\S+)", text).group(1)
        headers = {"Authorization": f"Bearer {jwt}"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/integrations/slack/connect", headers=headers) as resp:
                auth_url = (await resp.json())["data"]["authUrl"]
            location = await consent(auth_url)
            async with session.get(location, headers={"Accept": "application/json"}) as resp:
                assert (await resp.json())["data"]["status"] == "ACTIVE"
            async with session.post(f"{base}/api/integrations/slack/message", json={"channel": "general", "text": "before"}, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
    assert (tmp_path / "data" / "sandbox" / "slack.json").exists()
    async with sandbox_command(tmp_path) as (text, (base, jwt), _):
        assert re.search(r"slack\s+fake at (http://\S+)", text).group(1) == slack_url
        headers = {"Authorization": f"Bearer {jwt}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/integrations/slack/message", json={"channel": "general", "text": "after"}, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"{base}/api/integrations/slack/status", headers=headers) as resp:
                assert (await resp.json())["data"]["status"] == "ACTIVE"
    saved = json.loads((tmp_path / "data" / "sandbox" / "slack.json").read_text())
    assert [m["text"] for m in saved["state"]["messages"]] == ["before", "after"]


class _SandboxCommand:
    """``hub sandbox`` as a subprocess on a config in ``tmp_path``: yields (banner, (base URL, JWT), process)
    once the login link is printed, and stops it with Ctrl-C on the way out."""

    stderr = ""

    @contextlib.asynccontextmanager
    async def __call__(self, tmp_path: Path, **env: str):
        config = tmp_path / "hub.yaml"
        if not config.exists():
            config.write_text(f"server: {{port: {free_port()}}}\ndatabase: {{url: 'sqlite+aiosqlite:///{tmp_path}/data/hub.db'}}\n")
        proc = await asyncio.create_subprocess_exec(
            str(HUB), "sandbox", cwd=tmp_path, env={**os.environ, "HUB_CONFIG": str(config), **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out = await asyncio.wait_for(read_until_login(proc), 30)
            text = out.decode()
            login = re.search(r"(http://\S+)/#token=(\S+)", text)
            assert login, text + (await proc.stderr.read()).decode()
            yield text, (login.group(1), login.group(2)), proc
        finally:
            proc.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(proc.wait(), 15)
            type(self).stderr = (await proc.stderr.read()).decode()
        assert code == 0, self.stderr


sandbox_command = _SandboxCommand()

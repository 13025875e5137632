"""hub sandbox: every provider pointed at its built-in fake, unless it has real credentials."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from helpers import callback_path, consent
from hub.infra.secrets import Secrets
from hub.infra.config import config_from_dict
from hub.sandbox import start_fakes
from hub.core.hub import Hub
from hub.types import Sandbox
from hub.web import create_app
from support import JWT_SECRET, auth, make_registry

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sandbox_command_prints_a_working_dev_login_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    (tmp_path / "hub.yaml").write_text(f"server: {{port: {port}}}\ndatabase: {{url: 'sqlite+aiosqlite:///{tmp_path}/data/hub.db'}}\n")
    env = {**os.environ, "HUB_CONFIG": str(tmp_path / "hub.yaml")}
    proc = await asyncio.create_subprocess_exec(str(HUB), "sandbox", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out = b""
        async def read_until_login() -> bytes:
            nonlocal out
            while b"Press Ctrl-C" not in out:
                line = await proc.stdout.readline()
                if not line:
                    break
                out += line
            return out
        await asyncio.wait_for(read_until_login(), 30)
        text = out.decode()
        assert "slack" in text and "fake at http://127.0.0.1:" in text
        url = re.search(r"(http://\S+)/#token=(\S+)", text)
        assert url, text
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url.group(1)}/api/providers", headers={"Authorization": f"Bearer {url.group(2)}"}) as resp:
                body = await resp.json()
        assert resp.status == 200 and all(p["configured"] for p in body["data"]["providers"])
        assert {p["name"] for p in body["data"]["providers"]} == {"slack", "trello", "google_calendar"}
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr

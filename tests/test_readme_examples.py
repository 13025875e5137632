"""The README's API examples run as written against the sandbox: the fakes every built-in
plugin serves through ``hub_sandbox``, and a hub pointed at them. Each ``curl`` line of the
README's example block is run in order and must succeed; the only stand-ins are the ones a
reader fills in too (``$H``, the host, ``<nextCursor>`` from the previous page, ``<token>``
obtained from the provider), and the browser's visit to ``authUrl`` after ``connect``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from helpers import callback_path, consent
from support import JWT_SECRET, auth, make_registry

from hub.core.hub import Hub
from hub.infra.config import config_from_dict
from hub.infra.secrets import Secrets
from hub.sandbox import start_fakes
from hub.web import create_app

README = Path(__file__).resolve().parent.parent / "README.md"


def example_commands() -> list[str]:
    """The curl commands of the README's example block (the one that sets ``$H``), with
    continuation lines joined and comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    block = next(b for b in blocks if 'curl -H "$H"' in b)
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def parse(command: str) -> dict[str, Any]:
    words = shlex.split(command, comments=True)[1:]
    out: dict[str, Any] = {"method": None, "headers": {}, "data": None, "url": None}
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-H", "-X", "-d"):
            value = words[i + 1]
            if word == "-H":
                name, _, text = value.partition(":")
                out["headers"][name.strip()] = text.strip()
            elif word == "-X":
                out["method"] = value
            else:
                out["data"] = value
            i += 2
            continue
        if not word.startswith("-"):
            out["url"] = word
        i += 1
    out["method"] = out["method"] or ("POST" if out["data"] is not None else "GET")
    return out


async def token_from_the_provider(config: Any) -> str:
    """What a host does to obtain a Slack token outside the hub: consent, then exchange the code."""
    slack = config.providers["slack"]
    redirect = "https://app.example.com/cb"
    query = urlencode({"client_id": slack.client_id, "redirect_uri": redirect, "scope": "chat:write,channels:read,users:read", "state": "x"})
    location = await consent(f"{slack.urls['authorize']}?{query}")
    code = dict(p.split("=", 1) for p in urlsplit(location).query.split("&"))["code"]
    form = {"code": code, "redirect_uri": redirect, "client_id": slack.client_id, "client_secret": slack.client_secret}
    async with aiohttp.ClientSession() as session:
        async with session.post(slack.urls["token"], data=form) as resp:
            return (await resp.json())["access_token"]


def test_the_examples_are_found() -> None:
    commands = example_commands()
    assert len(commands) >= 15, commands
    assert all(parse(c)["url"] for c in commands)


async def test_every_readme_example_runs_as_written(db_url: str, encryption_keys: str, aiohttp_client: Any) -> None:
    registry = make_registry()
    config = config_from_dict(
        {"database": {"url": db_url}, "auth": {"jwt_secret": JWT_SECRET}, "security": {"encryption_keys": encryption_keys},
         "server": {"public_url": "http://127.0.0.1:9", "allowed_redirects": ["https://app.example.com/"]}},
        env={},
    )
    fakes = await start_fakes(config, registry)
    try:
        hub = Hub(config, registry, Secrets(JWT_SECRET, encryption_keys))
        client = await aiohttp_client(create_app(hub))
        hub.config.server.public_url = str(client.make_url("")).rstrip("/")
        bearer = auth("alice")["Authorization"]
        last: Any = None
        for command in example_commands():
            req = parse(command)
            url = req["url"].replace("localhost:8080", "")
            if "<nextCursor>" in url:
                cursor = (last or {}).get("nextCursor")
                assert cursor, f"{command}: the command before it gave no nextCursor: {last}"
                url = url.replace("<nextCursor>", cursor)
            headers = {("Authorization" if v == "$H" or k == "$H" else k): (bearer if "$H" in (k, v) else v) for k, v in req["headers"].items()}
            data = req["data"]
            if data and "<token>" in data:
                data = data.replace("<token>", await token_from_the_provider(config))
            resp = await client.request(req["method"], url, headers=headers, data=data)
            text = await resp.text()
            assert resp.status < 300, f"{command}\n-> {resp.status} {text}"
            if resp.content_type == "application/json":
                body = await resp.json()
                last = body.get("data") if isinstance(body, dict) else None
            if url.split("?")[0].endswith("/connect"):  # the browser goes to authUrl and comes back
                location = await consent(last["authUrl"])
                resp = await client.get(callback_path(location), allow_redirects=False)
                assert resp.status == 302 and "status=connected" in resp.headers["Location"], await resp.text()
    finally:
        await fakes.stop()

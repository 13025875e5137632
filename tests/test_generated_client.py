"""The OpenAPI document as a host developer uses it: a client generated from the live
/api/openapi.json with openapi-python-client, a small host program written against it
(tests/client_host/host_app.py) type-checked with ``mypy --strict``, and then run against
the hub and the fake Slack: connect, post a message, read the logs, handle a typed error.
A copy of the program with a type mistake must fail the type check, so the check is real."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import callback_path, consent
from support import auth

HOST_APP = Path(__file__).resolve().parent / "client_host" / "host_app.py"
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
async def generated(hub_app: Any, tmp_path: Path) -> Path:
    """The client package ``hub_client`` and the host program, side by side in tmp_path."""
    doc = await (await hub_app.get("/api/openapi.json")).json()
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    (tmp_path / "generator.yaml").write_text("post_hooks: []\n")  # no formatter run: nothing but the generator
    made = await asyncio.to_thread(run, [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--meta", "none",
                                         "--output-path", "hub_client", "--config", "generator.yaml"], tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    # Every schema became a class: the generator dropped nothing it could not read.
    assert "Warning" not in made.stdout + made.stderr, made.stdout + made.stderr
    shutil.copy(HOST_APP, tmp_path / "host_app.py")
    return tmp_path


def mypy(where: Path, module: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "mypy"), "--strict", "--no-incremental", "--cache-dir", str(where / ".mypy_cache"), module], where)


async def test_a_generated_client_type_checks_and_runs_against_the_hub(generated: Path, hub_app: Any, fake_slack: Any) -> None:
    checked = await asyncio.to_thread(mypy, generated, "host_app.py")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A host that takes the message's timestamp for a number does not compile.
    source = (generated / "host_app.py").read_text()
    wrong = source.replace("return answer.data.ts\n", "return answer.data.ts + 1\n")
    assert wrong != source
    (generated / "host_app.py").write_text(wrong)
    mistyped = await asyncio.to_thread(mypy, generated, "host_app.py")
    assert mistyped.returncode != 0 and "host_app.py" in mistyped.stdout and "Unsupported operand" in mistyped.stdout, mistyped.stdout
    (generated / "host_app.py").write_text(source)

    sys.path.insert(0, str(generated))
    try:
        app = importlib.import_module("host_app")
        base_url = str(hub_app.make_url("")).rstrip("/")
        api = app.connect(base_url, auth("alice")["Authorization"].removeprefix("Bearer "))
        auth_url = await asyncio.to_thread(app.start_connecting, api, "slack")
        # the browser's part: consent at the fake Slack, then the hub's callback
        resp = await hub_app.get(callback_path(await consent(auth_url)), headers={"Accept": "application/json"})
        assert resp.status == 200, await resp.text()
        assert await asyncio.to_thread(app.status_of, api, "slack") == "ACTIVE"
        ts = await asyncio.to_thread(app.announce, api, "general", "deploy finished")
        assert ts and fake_slack.messages[-1]["text"] == "deploy finished"
        assert await asyncio.to_thread(app.announce_or_explain, api, "", "no channel") == "fix channel"
        actions = await asyncio.to_thread(app.recent_actions, api, "slack", 10)
        assert "post_message:SUCCESS" in actions
        with pytest.raises(app.HubRefused) as refused:
            await asyncio.to_thread(app.status_of, api, "trello")
        assert refused.value.code.value == "unknown_provider"
    finally:
        sys.path.remove(str(generated))
        for name in [m for m in sys.modules if m == "host_app" or m.split(".")[0] == "hub_client"]:
            del sys.modules[name]

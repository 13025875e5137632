"""``hub serve`` as a real process, for the tests that need one: a config file, a free
port, readiness with a bounded wait, a signal to stop it, and what it printed.

Every wait here is asynchronous and bounded, so a provider fake running in the test's
event loop keeps answering while the test waits on the hub.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from hub.store.engine import create_engine
from support import JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent


def hub_executable() -> Path:
    candidate = ROOT / ".venv" / "bin" / "hub"
    return candidate if candidate.exists() else Path(sys.executable).with_name("hub")


# Below Linux's ephemeral range (32768-60999): a port the kernel hands to bind(0) is also
# what it hands to outgoing connections, so between our probe and the child's bind another
# process's client socket could take it. Ports here are only ever taken on purpose.
_PORTS = range(20000, 32000)
_rng = random.Random()


def free_port() -> int:
    """A port free right now, from a range outgoing connections never use."""
    for _ in range(200):
        port = _rng.choice(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found between 20000 and 32000")


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def write_config(
    path: Path,
    *,
    db_url: str,
    encryption_keys: str,
    port: int,
    providers: Mapping[str, Any],
    public_url: str | None = None,
    **sections: Mapping[str, Any],
) -> Path:
    """A config file for one hub process (JSON, which is YAML). ``sections`` are merged
    over the defaults, key by key."""
    raw: dict[str, Any] = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "public_url": public_url or f"http://127.0.0.1:{port}",
            "shutdown_timeout": 20,
            "allowed_redirects": ["https://app.example.com/"],
        },
        "database": {"url": db_url},
        "auth": {"jwt_secret": JWT_SECRET},
        "security": {"encryption_keys": encryption_keys},
        "activity": {"flush_interval_ms": 50},
        "refresh": {"interval_seconds": 0},
        "upstream": {"max_retry_wait": 2, "total_timeout": 20},
        "providers": dict(providers),
    }
    raw = _merge(raw, sections)
    path.write_text(json.dumps(raw, indent=2))
    return path


class HubProcess:
    """One ``hub serve`` process. Use as ``async with``: it is killed on the way out
    whatever happened, and its output stays readable afterwards."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        workdir: Path,
        pythonpath: Iterable[Path] = (),
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        name: str = "hub",
    ) -> None:
        self.config = config
        self.port = port
        self.workdir = workdir
        self.pythonpath = [str(p) for p in pythonpath]
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "SLACK_", "TRELLO_", "GOOGLE_"))}
        env["HUB_CONFIG"] = str(self.config)
        env["PYTHONUNBUFFERED"] = "1"
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        env.update(self.extra_env)
        return env

    def launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [str(hub_executable()), "serve", "--port", str(self.port), *self.args],
                cwd=self.workdir, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    async def start(self, timeout: float = 30.0) -> HubProcess:
        self.launch()
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``/healthz`` answers 200; fails with the hub's output if it exits first
        or does not answer in time."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.returncode is not None:
                    pytest.fail(f"{self.name} exited with {self.returncode} before answering /healthz:\n{self.output()}")
                try:
                    async with session.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)  # a poll interval: the loop waits on the answer, up to the deadline
        pytest.fail(f"{self.name} did not answer /healthz within {timeout:.0f} s:\n{self.output()}")

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code; fails (after killing it) if the process is still running after ``timeout``."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)  # a poll interval: Popen offers no awaitable exit, the deadline bounds it
        self.kill()
        pytest.fail(f"{self.name} did not exit within {timeout:.0f} s:\n{self.output()}")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.returncode is not None:
            return self.returncode
        self.send(sig)
        return await self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def __aenter__(self) -> HubProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kill()


async def run_cli(*args: str, pythonpath: Iterable[Path] = (), env: Mapping[str, str] | None = None, cwd: Path | None = None,
                  timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``hub <args>`` to completion (bounded); returns (exit code, stdout, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    paths = [str(p) for p in pythonpath]
    if paths:
        base["PYTHONPATH"] = os.pathsep.join([*paths, *([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])])
    base.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        str(hub_executable()), *args, cwd=cwd, env=base, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"hub {' '.join(args)} did not finish within {timeout:.0f} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def write_distribution(site: Path, dist: str, modules: Mapping[str, str], entry_points: Mapping[str, str],
                       version: str = "0.1.0") -> None:
    """Install a tiny distribution into ``site`` the way pip lays one out: its modules and
    a ``.dist-info`` with ``METADATA`` and ``entry_points.txt`` (group ``hub.providers``).
    Put ``site`` on a process's PYTHONPATH and ``importlib.metadata`` finds it."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[hub.providers]\n{lines}")
    (info / "top_level.txt").write_text("".join(f"{m}\n" for m in modules))
    (info / "RECORD").write_text("")


async def scalar(db_url: str, sql: str, **params: Any) -> Any:
    """One value read from the database with a short-lived engine of the test's own."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def rows(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)  # the poll interval of a wait on the condition itself


async def connect_slack_via(url: str, user: str) -> dict[str, Any]:
    """The whole Slack connect flow against a hub process: connect, the fake's consent
    page, the callback. Returns the callback's JSON answer."""
    from helpers import connect_slack
    from support import auth

    async with aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=30)) as session:
        return await connect_slack(session, auth(user))

"""``hub sandbox``: the whole product on one machine, no provider accounts needed.

Every installed provider that offers a fake (the ``hub_sandbox`` hook) and has no real
credentials in the config is pointed at that fake, served on a loopback port. A provider
configured with real credentials keeps talking to the real service; nothing else about
the hub changes. A fake that cannot start is left out with a one-line reason; the others
start regardless.

With a ``state_dir`` (the command passes ``<data folder>/sandbox``), what each fake issued
and holds survives a restart, and each fake comes back on the port it had: the fake is
the object serving its routes, and if it has ``export_state()`` (JSON-serialisable) and
``import_state(dict)``, its state is loaded at start and saved after every answer it
gives and at shutdown, in ``<state_dir>/<provider>.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import yamlprov
from .infra.config import HubConfig, ProviderConfig
from .registry import ProviderPlugin, Registry, enable_snippet
from .core.runtime import check_providers
from .types import Sandbox

log = logging.getLogger("hub.sandbox")


class _Skip(Exception):
    """A fake that cannot start; the message is the one-line reason shown to the operator."""


class FakeState:
    """One fake's state file: the port it was served on and, if it can, what it issued and holds."""

    def __init__(self, name: str, path: Path, owner: Any | None) -> None:
        self.name = name
        self.path = path
        self.owner = owner
        self.port = 0
        self._written = ""

    def load(self) -> None:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("provider %s: its saved sandbox state %s is unreadable (%s); the fake starts afresh", self.name, self.path, _one_line(exc))
            return
        if not isinstance(saved, dict):
            return
        self.port = saved.get("port") if isinstance(saved.get("port"), int) else 0
        if self.owner is not None and isinstance(saved.get("state"), dict):
            try:
                self.owner.import_state(saved["state"])
            except Exception as exc:  # third-party code reading an older or edited file
                log.warning("provider %s: its saved sandbox state could not be loaded (%s); the fake starts afresh",
                            self.name, _one_line(exc))

    def save(self) -> None:
        try:
            state = self.owner.export_state() if self.owner is not None else None
            text = json.dumps({"port": self.port, "state": state}, sort_keys=True)
        except Exception as exc:
            log.warning("provider %s: its fake's state could not be saved (%s)", self.name, _one_line(exc))
            return
        if text == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        # Fake tokens only, but a state file is nobody else's business either.
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(scratch, self.path)  # a crash mid-write leaves the previous state whole
        self._written = text


@dataclass
class Fakes:
    """The fake providers this sandbox started, and where; and the providers it did not."""

    runners: list[web.AppRunner] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    real: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # provider -> why its fake is not running
    unlisted: list[str] = field(default_factory=list)  # installed, absent from the config
    disabled: list[str] = field(default_factory=list)  # enabled: false in the config
    snippets: dict[str, str] = field(default_factory=dict)  # the YAML that enables an unlisted one
    states: list[FakeState] = field(default_factory=list)

    async def stop(self) -> None:
        for state in self.states:
            state.save()
        self.states.clear()
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


def offer_catalogue(config: HubConfig, registry: Registry) -> list[str]:
    """Load and enable every provider of the YAML catalogue that neither the registry nor the
    config knows yet, so the sandbox offers each through its generated fake; call before
    :func:`start_fakes`. A provider the config already names (enabled or not) stays as the
    config has it. Returns the names added."""
    wanted = [name for name in yamlprov.catalogue_names() if name not in registry.providers and name not in config.providers]
    registry.load_provider_files(wanted, only=set(wanted))
    added = [name for name in wanted if name in registry.providers]
    for name in added:
        config.providers[name] = ProviderConfig()
    return added


async def start_fakes(config: HubConfig, registry: Registry, host: str = "127.0.0.1", state_dir: Path | None = None) -> Fakes:
    """Start fakes and rewrite ``config`` to use them; call before building the Hub.

    Without ``state_dir`` the fakes start empty on fresh ports and forget everything when stopped.
    """
    fakes = Fakes()
    _, unconfigured = check_providers(config, registry)
    for name, plugin in sorted(registry.providers.items()):
        section = config.providers.get(name)
        if section is not None and not section.enabled:
            fakes.disabled.append(name)
            continue
        if section is None:
            fakes.unlisted.append(name)
            fakes.snippets[name] = enable_snippet(plugin)
        elif name not in unconfigured and any(f.required for f in plugin.info.config_fields):
            # Real credentials: the real service. (A provider that needs none, such as one
            # whose users paste their own API keys, has nothing to tell the two apart: faked.)
            fakes.real.append(name)
            continue
        if "hub_sandbox" not in plugin.hooks:
            continue
        keep: dict[str, Any] = {}
        if section is not None:
            keep = {k: v for k, v in section.model_dump(exclude_unset=True).items() if k in ("scopes", "max_concurrency", "rate_limits", "proxy")}
        try:
            config.providers[name] = await _start_one(fakes, registry, plugin, host, state_dir, keep)
        except Exception as exc:  # third-party code: one broken fake must not stop the others
            reason = str(exc) if isinstance(exc, _Skip) else f"its fake failed to start: {_one_line(exc)}"
            fakes.skipped[name] = reason
            log.error("provider %s: left out of the sandbox: %s", name, reason)
    # The dashboard sends the browser back to itself after a connect.
    home = config.public_url + "/"
    if home not in config.server.allowed_redirects:
        config.server.allowed_redirects.append(home)
    return fakes


async def _start_one(
    fakes: Fakes, registry: Registry, plugin: ProviderPlugin, host: str, state_dir: Path | None, keep: dict[str, Any],
) -> ProviderConfig:
    """Serve one provider's fake; returns its config section. Raises :class:`_Skip` with the reason."""
    name = plugin.name
    try:
        sandbox = await registry.call(name, "hub_sandbox")
    except Exception as exc:
        raise _Skip(f"hub_sandbox raised {_one_line(exc)}") from None
    if not isinstance(sandbox, Sandbox):
        raise _Skip(f"hub_sandbox returned a {type(sandbox).__name__}, not a hub.Sandbox")
    state = FakeState(name, state_dir / f"{name}.json", _state_owner(sandbox)) if state_dir is not None else None
    if state is not None:
        state.load()
        # After each answer, not on a timer: a sandbox killed hard loses nothing it confirmed.
        sandbox.app.on_response_prepare.append(lambda _request, _response: _save_soon(state))
    runner = web.AppRunner(sandbox.app, access_log=None)
    await runner.setup()
    try:
        port = await _listen(runner, host, state.port if state is not None else 0, name)
        base = f"http://{host}:{port}"
        section = ProviderConfig.model_validate({**dict(sandbox.settings(base)), **keep, "enabled": True})
    except BaseException:
        await runner.cleanup()
        raise
    fakes.runners.append(runner)
    fakes.urls[name] = base
    if state is not None:
        state.port = port
        state.save()
        fakes.states.append(state)
    return section


async def _save_soon(state: FakeState) -> None:
    state.save()


async def _listen(runner: web.AppRunner, host: str, port: int, name: str) -> int:
    """Listen on ``port`` (0: any free one); when a remembered port is taken, on a fresh one."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        if not port:
            raise
        log.warning("provider %s: its fake's port %d is taken (%s); serving it on a fresh port", name, port, exc.strerror or exc)
        await web.TCPSite(runner, host, 0).start()
    return int(runner.addresses[-1][1])


def _state_owner(sandbox: Sandbox) -> Any | None:
    """The object behind the fake (its routes are its methods) if it can export and import its state."""
    candidates = [getattr(sandbox.settings, "__self__", None)]
    candidates += [getattr(route.handler, "__self__", None) for route in sandbox.app.router.routes()]
    for owner in candidates:
        if callable(getattr(owner, "export_state", None)) and callable(getattr(owner, "import_state", None)):
            return owner
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


def provider_lines(fakes: Fakes, providers: Iterable[str]) -> list[str]:
    """The sandbox banner's lines about each provider: where it is served, or why not."""
    lines: list[str] = []
    for name in sorted({*providers, *fakes.skipped, *fakes.disabled}):
        if name in fakes.skipped:
            where = f"NO FAKE: {fakes.skipped[name]}"
        elif name in fakes.disabled:
            where = f"disabled in the config (set providers.{name}.enabled: true to enable it)"
        elif name in fakes.urls:
            where = f"fake at {fakes.urls[name]}"
        elif name in fakes.real:
            where = "REAL service (credentials configured)"
        else:
            where = "no fake (the plugin offers none) and no credentials: not configured"
        if name in fakes.unlisted and name not in fakes.skipped:
            where += "  (not in the config: enabled for the sandbox only)"
        lines.append(f"  {name:<16} {where}")
    if fakes.unlisted:
        lines.append("\nInstalled but not in the config, so `hub serve` would not route them; to enable, add under providers:")
        lines.extend(fakes.snippets[name] for name in fakes.unlisted)
    return lines

"""``hub sandbox``: the whole product on one machine, no provider accounts needed.

Every installed provider that offers a fake (the ``hub_sandbox`` hook) and has no real
credentials in the config is pointed at that fake, served on a free loopback port. A
provider configured with real credentials keeps talking to the real service; nothing
else about the hub changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .infra.config import HubConfig, ProviderConfig
from .registry import Registry
from .core.runtime import check_providers
from .types import Sandbox

log = logging.getLogger("hub.sandbox")


@dataclass
class Fakes:
    """The fake providers this sandbox started, and where."""

    runners: list[web.AppRunner] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    real: list[str] = field(default_factory=list)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


async def start_fakes(config: HubConfig, registry: Registry, host: str = "127.0.0.1") -> Fakes:
    """Start fakes and rewrite ``config`` to use them; call before building the Hub."""
    fakes = Fakes()
    _, unconfigured = check_providers(config, registry)
    for name, plugin in sorted(registry.providers.items()):
        section = config.providers.get(name)
        if section is not None and not section.enabled:
            continue
        if section is not None and name not in unconfigured:
            fakes.real.append(name)  # real credentials: the real service
            continue
        if "hub_sandbox" not in plugin.hooks:
            continue
        sandbox = await registry.call(name, "hub_sandbox")
        if not isinstance(sandbox, Sandbox):
            log.error("provider %s: hub_sandbox did not return a hub.Sandbox; left out", name)
            continue
        runner = web.AppRunner(sandbox.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://{host}:{port}"
        fakes.runners.append(runner)
        fakes.urls[name] = base
        keep: dict[str, Any] = {}
        if section is not None:
            keep = {k: v for k, v in section.model_dump(exclude_unset=True).items() if k in ("scopes", "max_concurrency", "rate_limits")}
        config.providers[name] = ProviderConfig.model_validate({**dict(sandbox.settings(base)), **keep, "enabled": True})
    # The dashboard sends the browser back to itself after a connect.
    home = config.public_url + "/"
    if home not in config.server.allowed_redirects:
        config.server.allowed_redirects.append(home)
    return fakes

"""The enabled providers: each loaded plugin joined with its config section, its endpoints,
scopes, settings, upstream client and input validators."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFound, ProviderNotConfigured
from ..infra.config import ConfigError, HubConfig, ProviderConfig
from ..ratelimit import RateLimit
from ..redact import Redaction, declare_shapes
from ..registry import ProviderPlugin, Registry
from ..types import Endpoints, Provider
from ..upstream import Upstream
from ..validation import InputValidator


@dataclass
class ProviderRuntime:
    """A loaded provider plugin joined with its config section."""

    plugin: ProviderPlugin
    config: ProviderConfig
    provider: Provider
    problems: list[str] = field(default_factory=list)
    validators: dict[str, InputValidator] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def info(self) -> Any:
        return self.plugin.info

    @property
    def configured(self) -> bool:
        return not self.problems


class Providers(Mapping[str, ProviderRuntime]):
    """The enabled providers by name. Built once at start-up: settings never change after."""

    def __init__(self, config: HubConfig, registry: Registry, upstream: Upstream) -> None:
        errors, unconfigured = check_providers(config, registry)
        if errors:
            raise ConfigError(errors, config.source)
        self.registry = registry
        self._runtimes: dict[str, ProviderRuntime] = {}
        for name, section in config.enabled_providers().items():
            plugin = registry.providers.get(name)
            if plugin is not None:
                self._runtimes[name] = _runtime(registry, upstream, plugin, section, unconfigured.get(name, []))
        out = [str(rt.provider.settings.get(k) or "") for rt in self._runtimes.values() for k in rt.info.secret_fields]
        self._secret_values = [s for s in out if s]
        self._redaction: dict[str, Redaction] = {}
        for name, rt in self._runtimes.items():
            declare_shapes(name, rt.info.token_shapes)
            self._redaction[name] = Redaction.declared(rt.info.secret_keys, rt.info.safe_keys)

    def __getitem__(self, name: str) -> ProviderRuntime:
        return self._runtimes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._runtimes)

    def __len__(self) -> int:
        return len(self._runtimes)

    def runtime(self, name: str) -> ProviderRuntime:
        rt = self._runtimes.get(name)
        if rt is None:
            enabled = ", ".join(sorted(self._runtimes)) or "none"
            raise NotFound(f"unknown provider {name!r} (enabled providers: {enabled})", code="unknown_provider")
        return rt

    def configured(self, name: str) -> ProviderRuntime:
        rt = self.runtime(name)
        if not rt.configured:
            raise ProviderNotConfigured(
                f"{rt.info.title} is not configured on this hub: " + "; ".join(rt.problems),
                details={"missing": rt.problems},
            )
        return rt

    def secret_values(self) -> list[str]:
        """Configured secrets, masked by value wherever they might surface."""
        return self._secret_values

    def redaction(self, name: str) -> Redaction:
        """The keys ``name`` declares secret or safe (none for a provider no longer enabled)."""
        return self._redaction.get(name) or _UNDECLARED


_UNDECLARED = Redaction.declared()


def _runtime(registry: Registry, upstream: Upstream, plugin: ProviderPlugin, section: ProviderConfig, problems: list[str]) -> ProviderRuntime:
    info = plugin.info
    endpoints = info.endpoints.merged(section.urls)
    settings = {f.name: section.settings.get(f.name, f.default) for f in info.config_fields}
    slot: dict[str, Provider] = {}

    async def check(response: Any) -> None:
        await registry.call(plugin.name, "hub_check_response", provider=slot["p"], response=response)

    http = upstream.for_provider(
        plugin.name,
        base_url=endpoints.api,
        check=check,
        max_concurrency=section.max_concurrency,
        rate_limits=info.rate_limits
        if section.rate_limits is None
        else tuple(RateLimit(r.requests, r.seconds, r.per) for r in section.rate_limits),
    )
    scopes = tuple(section.scopes) if section.scopes is not None else info.default_scopes
    provider = Provider(name=plugin.name, info=info, endpoints=endpoints, scopes=scopes, settings=settings, http=http)
    slot["p"] = provider
    validators = {a.name: InputValidator(a) for a in plugin.actions}
    return ProviderRuntime(plugin, section, provider, problems, validators)

def check_providers(config: HubConfig, registry: Registry) -> tuple[list[str], dict[str, list[str]]]:
    """Validate ``providers:`` against the installed plugins.

    Returns (errors that stop start-up, per-provider reasons it is not configured).
    """
    errors: list[str] = []
    unconfigured: dict[str, list[str]] = {}
    installed = sorted(registry.providers)
    failed = {f.name for f in registry.failures}
    for name, section in config.providers.items():
        path = f"providers.{name}"
        plugin = registry.providers.get(name)
        if plugin is None:
            if name in failed:
                continue  # reported as a load failure; the hub starts without it
            errors.append(f"{path}: no provider plugin named {name!r} is installed (installed: {', '.join(installed) or 'none'})")
            continue
        info = plugin.info
        declared = {f.name: f for f in info.config_fields}
        for key in section.settings:
            if key not in declared:
                known = ", ".join(sorted({"enabled", "scopes", "urls", "max_concurrency", "rate_limits", "proxy", *declared}))
                errors.append(f"{path}.{key}: unknown key for {name} (known: {known})")
        for key in section.urls:
            if key not in Endpoints.__dataclass_fields__:
                errors.append(f"{path}.urls.{key}: unknown URL (known: {', '.join(Endpoints.__dataclass_fields__)})")
        for key, value in section.urls.items():
            if value and not str(value).startswith(("http://", "https://")):
                errors.append(f"{path}.urls.{key}: must be an http:// or https:// URL")
        if not section.enabled:
            continue
        required = [f for f in info.config_fields if f.required]
        present = [f for f in required if section.settings.get(f.name) not in (None, "")]
        if present and len(present) < len(required):
            for f in required:
                if f not in present:
                    errors.append(f"{path}.{f.name}: required by {name} (set it, or remove the other credentials to leave {name} unconfigured)")
        elif not present and required:
            unconfigured[name] = [f"{path}.{f.name} is not set" for f in required]
    return errors, unconfigured

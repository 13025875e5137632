"""Commands that look without changing anything: ``check`` (a config) and ``plugins``."""

from __future__ import annotations

import json
import sys

from typing import TYPE_CHECKING

import click

from ..infra.config import ConfigError, HubConfig, load_config
from ..infra.crypto import KeyRing, KeyRingError
from ..registry import Registry, StartupError, enable_hints
from .common import config_option, fail, load_registry, read_config

if TYPE_CHECKING:
    from .. import yamlprov


@click.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config and print what would run."""
    from ..core.runtime import check_providers

    config = read_config(config_path)
    registry = load_registry(config)
    errors, unconfigured = check_providers(config, registry)
    click.echo(f"config:   {config.source or '(built-in defaults)'}")
    click.echo(f"server:   http://{config.server.host}:{config.server.port} (public {config.public_url})"
               f"{' [production]' if config.server.production else ''}")
    click.echo(f"database: {_safe_url(config.database.url)}")
    jwt_mode = "public key" if config.auth.jwt_public_key else ("shared secret" if config.auth.jwt_secret else "generated secret in " + str(config.data_dir))
    click.echo(f"auth:     JWT, {jwt_mode}")
    if config.security.encryption_keys:
        try:
            ring = KeyRing.parse(config.security.encryption_keys)
            click.echo(f"keys:     {len(ring.kids)} key(s), primary {ring.primary!r}")
        except KeyRingError as exc:
            errors.append(f"security.encryption_keys: {exc}")
    else:
        click.echo(f"keys:     generated key in {config.data_dir}")
    if config.server.production and (not config.security.encryption_keys or not (config.auth.jwt_secret or config.auth.jwt_public_key)):
        errors.append("server.production is true: auth.jwt_secret (or jwt_public_key) and security.encryption_keys are required")
    subscribers = config.events.subscribers
    click.echo(f"events:   {len(subscribers)} subscriber(s)" + "".join(
        f"\n  {name}: {sub.url} [{', '.join(sub.events)}], secret from ${sub.secret_env}{'' if sub.enabled else ' (off)'}"
        for name, sub in subscribers.items()))
    click.echo("providers:")
    for name, section in sorted(config.providers.items()):
        plugin = registry.providers.get(name)
        if not section.enabled:
            click.echo(f"  {name}: disabled (set providers.{name}.enabled: true to enable it)")
        elif plugin is None:
            click.echo(f"  {name}: NOT INSTALLED")
        elif name in unconfigured:
            click.echo(f"  {name}: enabled, not configured ({'; '.join(unconfigured[name])}), {len(plugin.actions)} actions")
        else:
            click.echo(f"  {name}: ready, {len(plugin.actions)} actions")
    for name in (unlisted := sorted(set(registry.providers) - set(config.providers))):
        click.echo(f"  {name}: installed, NOT ENABLED (not in the config: the hub does not route it)")
    for line in enable_hints(registry, unlisted, config.source):
        click.echo(line)
    for failure in registry.failures:
        click.echo(f"  {failure.name}: FAILED TO LOAD: {failure.error}")
        errors.append(f"provider plugin {failure.name!r} ({failure.source}) failed to load; the hub would start without it")
    if errors:
        click.echo(click.style("problems:", fg="red", bold=True))
        for problem in errors:
            click.echo(f"  - {problem}")
        sys.exit(1)
    click.echo(click.style("ok", fg="green"))


def catalogue_definitions() -> list[yamlprov.Definition]:
    """The YAML catalogue shipped with the hub (an entry that does not load is left out here;
    loading it names the problem)."""
    from .. import yamlprov

    out = []
    for name in yamlprov.catalogue_names():
        try:
            out.append(yamlprov.read_file(yamlprov.CATALOGUE / f"{name}.yaml"))
        except yamlprov.DefinitionError:
            continue
    return out


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List discovered provider plugins, their actions and load errors, and which the config enables."""
    registry = Registry()
    try:
        config: HubConfig | None = load_config(config_path)
    except ConfigError as exc:  # what is installed is worth listing even so
        click.echo(f"warning: which providers are enabled is unknown: {exc}", err=True)
        config = None
    try:
        registry.load_entry_points()
        if config is not None:
            registry.load_provider_files(config.provider_files, config.config_dir)
    except StartupError as exc:
        fail(str(exc))
    enabled = config.enabled_providers() if config else {}
    data = {
        "providers": [
            {
                "name": p.name,
                "title": p.info.title,
                "source": p.source,
                "auth": p.info.auth,
                "actions": [{"name": a.name, "method": a.method, "path": a.path} for a in p.actions],
                "enabled": p.name in enabled if config else None,
            }
            for p in sorted(registry.providers.values(), key=lambda p: p.name)
        ],
        "failures": [{"name": f.name, "source": f.source, "error": f.error} for f in registry.failures],
        # Shipped with the hub, not loaded: the config's provider_files names none of them.
        "catalogue": [
            {"name": d.name, "title": d.title, "auth": d.auth.kind}
            for d in catalogue_definitions()
            if d.name not in registry.providers and d.name not in {f.name for f in registry.failures}
        ],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not data["providers"] and not data["failures"]:
        click.echo("no provider plugins installed (entry-point group 'hub.providers')")
    for p in data["providers"]:
        off = "" if p["enabled"] is not False else "  NOT ENABLED" + (" (disabled)" if p["name"] in config.providers else " (not in the config)")
        click.echo(f"{p['name']}  {p['title']}  [{p['auth']}]  from {p['source']}{off}")
        for a in p["actions"]:
            click.echo(f"    {a['method']:<6} {a['path']:<28} {a['name']}")
    for f in data["failures"]:
        click.echo(click.style(f"{f['name']}  FAILED: {f['error']}", fg="red") + f"  (from {f['source']})")
    for line in enable_hints(registry, sorted(set(registry.providers) - set(config.providers)), config.source) if config else []:
        click.echo(line)
    if data["catalogue"]:
        click.echo("\nIn the YAML catalogue, not loaded (`hub sandbox` offers them all; to use one, add its name to")
        click.echo("provider_files and give it a providers.<name> section, docs/providers-yaml.md):")
        for c in data["catalogue"]:
            click.echo(f"{c['name']}  {c['title']}  [{c['auth']}]  from catalogue:{c['name']}  NOT LOADED")




def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"

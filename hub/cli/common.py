"""What the ``hub`` commands share: the --config option, clean failures, loading the config
and the plugins, and building a hub."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..infra import serverlog as hub_logs
from ..infra.config import ConfigError, HubConfig, load_config
from ..infra.crypto import KeyRingError
from ..infra.secrets import resolve_secrets
from ..registry import Registry, StartupError

log = logging.getLogger("hub")

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="HUB_CONFIG",
    help="Config file (default: $HUB_CONFIG, else config/hub.yaml, else built-in defaults).",
)


def fail(message: str) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(2)


def read_config(path: str | None) -> HubConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc))
        raise AssertionError from exc


def load_registry(config: HubConfig, strict: bool = False) -> Registry:
    registry = Registry(strict=strict)
    try:
        registry.load_entry_points()
        registry.load_provider_files(config.provider_files, config.config_dir)
        registry.check_pending()
    except StartupError as exc:
        fail(str(exc))
    return registry


def server_setup(config_path: str | None, host: str | None, port: int | None, log_level: str) -> tuple[hub_logs.RedactingFormatter, HubConfig]:
    """Logging set up, the config loaded, and the command line's --host / --port applied."""
    redactor = hub_logs.setup(log_level)
    config = read_config(config_path)
    if host:
        config.server.host = host
    if port is not None:
        config.server.port = port
    return redactor, config


def build(config: HubConfig, strict: bool = False) -> Any:
    from ..core.hub import Hub

    registry = load_registry(config, strict)
    try:
        secrets = resolve_secrets(config)
        return Hub(config, registry, secrets)
    except (ConfigError, KeyRingError, ValueError) as exc:
        fail(str(exc))

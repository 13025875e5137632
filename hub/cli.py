"""The ``hub`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import timedelta
from collections.abc import AsyncIterator
from typing import Any

import click

from .infra import serverlog as hub_logs
from .infra.secrets import resolve_secrets
from .infra.config import ConfigError, HubConfig, load_config
from .infra.crypto import KeyRing, KeyRingError, generate_key
from .registry import Registry, StartupError, enable_hints

log = logging.getLogger("hub")

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="HUB_CONFIG",
    help="Config file (default: $HUB_CONFIG, else config/hub.yaml, else built-in defaults).",
)


def _fail(message: str) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(2)


def _config(path: str | None) -> HubConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))
        raise AssertionError from exc


def _registry(config: HubConfig, strict: bool = False) -> Registry:
    registry = Registry(strict=strict)
    try:
        registry.load_entry_points()
        registry.check_pending()
    except StartupError as exc:
        _fail(str(exc))
    return registry


def _server_config(config_path: str | None, host: str | None, port: int | None, log_level: str) -> tuple[hub_logs.RedactingFormatter, HubConfig]:
    """Logging set up, the config loaded, and the command line's --host / --port applied."""
    redactor = hub_logs.setup(log_level)
    config = _config(config_path)
    if host:
        config.server.host = host
    if port is not None:
        config.server.port = port
    return redactor, config


def build(config: HubConfig, strict: bool = False) -> Any:
    from .core.hub import Hub

    registry = _registry(config, strict)
    try:
        secrets = resolve_secrets(config)
        return Hub(config, registry, secrets)
    except (ConfigError, KeyRingError, ValueError) as exc:
        _fail(str(exc))


@click.group()
@click.version_option(package_name="integration-hub")
def main() -> None:
    """Integration hub: connect users' third-party accounts, act on them through one API."""


@main.command()
@config_option
@click.option("--host", help="Override server.host.")
@click.option("--port", type=int, help="Override server.port.")
@click.option("--strict", is_flag=True, help="Refuse to start if any provider plugin fails to load.")
@click.option("--no-migrate", is_flag=True, help="Do not bring the database schema up to date at start-up.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes answering on the port.")
@click.option("--reuse-port", is_flag=True, hidden=True)
@click.option("--worker-id", type=int, hidden=True)
@click.option("--log-level", default="INFO", show_default=True)
def serve(
    config_path: str | None, host: str | None, port: int | None, strict: bool, no_migrate: bool,
    workers: int, reuse_port: bool, worker_id: int | None, log_level: str,
) -> None:
    """Run the hub's HTTP server."""
    from aiohttp import web

    from .web import create_app

    redactor, config = _server_config(config_path, host, port, log_level)
    if workers > 1:
        _supervise(config, config_path, workers, strict, no_migrate, log_level)
        return
    hub = build(config, strict)
    redactor.secrets = hub.secret_values()
    for failure in hub.registry.failures:
        log.error("provider plugin %r failed to load (%s): %s", failure.name, failure.source, failure.error)
    for name, rt in sorted(hub.providers.items()):
        state = "ready" if rt.configured else "NOT CONFIGURED (" + "; ".join(rt.problems) + ")"
        log.info("provider %s: %s, %d actions", name, state, len(rt.plugin.actions))

    async def prepare() -> web.Application:
        return create_app(hub, migrate=not no_migrate)

    who = f"worker {worker_id} (pid {os.getpid()}) " if worker_id is not None else ""
    log.info("%sserving on http://%s:%s (public URL %s)", who, config.server.host, config.server.port, config.public_url)
    web.run_app(
        prepare(),
        host=config.server.host,
        port=config.server.port,
        shutdown_timeout=config.server.shutdown_timeout,
        print=None,
        access_log=None,
        reuse_port=reuse_port or None,
    )


def _supervise(config: HubConfig, config_path: str | None, workers: int, strict: bool, no_migrate: bool, log_level: str) -> None:
    from .store.engine import create_engine, upgrade
    from .workers import supervise

    if config.server.port == 0:
        _fail("--workers needs a fixed --port: every worker listens on the same one")
    build(config, strict)  # validate everything once, with clear errors, before any worker starts
    resolve_secrets(config)  # and create the embedded default's secrets once, not N times at once
    if not no_migrate:

        async def migrate() -> None:
            engine = create_engine(config.database.url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(migrate())
    args = ["--host", config.server.host, "--port", str(config.server.port), "--log-level", log_level]
    if config_path:
        args += ["--config", config_path]
    if strict:
        args.append("--strict")
    log.info("starting %d workers on http://%s:%s", workers, config.server.host, config.server.port)
    sys.exit(supervise(workers, args, shutdown_timeout=config.server.shutdown_timeout))


@main.command()
@config_option
@click.option("--host", help="Override server.host.")
@click.option("--port", type=int, help="Override server.port.")
@click.option("--user", "user_id", default="sandbox-user", show_default=True, help="The user the dev login signs in as.")
@click.option("--log-level", default="INFO", show_default=True)
def sandbox(config_path: str | None, host: str | None, port: int | None, user_id: str, log_level: str) -> None:
    """Run the hub with every provider pointed at its built-in fake (no accounts needed)."""
    from aiohttp import web

    from .infra.auth import issue_token
    from .sandbox import provider_lines, start_fakes
    from .core.hub import Hub
    from .web import create_app

    redactor, config = _server_config(config_path, host, port, log_level)
    if config.server.production:
        _fail("the sandbox is for trying the hub: it refuses to run with server.production: true")
    registry = _registry(config)
    secrets = resolve_secrets(config)

    banner: list[str] = []

    async def prepare() -> web.Application:
        fakes = await start_fakes(config, registry, host="127.0.0.1", state_dir=config.data_dir / "sandbox")
        try:
            hub = Hub(config, registry, secrets)
        except (ConfigError, KeyRingError, ValueError) as exc:
            await fakes.stop()
            _fail(str(exc))
        redactor.secrets = hub.secret_values()
        app = create_app(hub)

        async def fakes_context(_app: web.Application) -> AsyncIterator[None]:
            yield  # already running: the hub's config points at them
            await fakes.stop()

        # First in, last out: the fakes outlive the hub's own shutdown.
        app.cleanup_ctx.insert(0, fakes_context)
        banner.extend(provider_lines(fakes, hub.providers))
        if config.auth.jwt_public_key:
            banner.append("\nDashboard: " + config.public_url + "/  (sign in with a JWT from your identity provider)")
        else:
            token = issue_token(secrets.jwt_secret or "", user_id, ttl_seconds=12 * 3600, issuer=config.auth.issuer, audience=config.auth.audience)
            banner.append(f"\nDashboard, signed in as {user_id!r} for 12 hours:\n\n    {config.public_url}/#token={token}\n")
        banner.append("Press Ctrl-C to stop.")
        return app

    click.echo(f"Integration hub sandbox on {config.public_url}")
    # run_app calls ``print`` once its sites listen: only then is the login link usable.
    web.run_app(
        prepare(), host=config.server.host, port=config.server.port, shutdown_timeout=5, access_log=None,
        print=lambda _msg: click.echo("\n".join(banner)),
    )


@main.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate a config and print what would run."""
    from .core.runtime import check_providers

    config = _config(config_path)
    registry = _registry(config)
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


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List discovered provider plugins, their actions and load errors, and which the config enables."""
    registry = Registry()
    try:
        registry.load_entry_points()
    except StartupError as exc:
        _fail(str(exc))
    try:
        config: HubConfig | None = load_config(config_path)
    except ConfigError as exc:  # what is installed is worth listing even so
        click.echo(f"warning: which providers are enabled is unknown: {exc}", err=True)
        config = None
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


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
@click.option("--revision", default="head", show_default=True)
def db_upgrade(config_path: str | None, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from .store.engine import create_engine, current_revision, upgrade

    config = _config(config_path)

    async def run() -> str | None:
        engine = create_engine(config.database.url)
        try:
            await upgrade(engine, revision)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {asyncio.run(run())}")


@db.command("current")
@config_option
def db_current(config_path: str | None) -> None:
    """Print the schema revision."""
    from .store.engine import create_engine, current_revision

    config = _config(config_path)

    async def run() -> str | None:
        engine = create_engine(config.database.url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(asyncio.run(run()) or "(empty database)")


@main.group()
def keys() -> None:
    """Encryption keys for tokens at rest."""


@keys.command("generate")
@click.option("--id", "kid", help="Key id (default: random).")
def keys_generate(kid: str | None) -> None:
    """Print a new key ring entry ('id:base64key'). Put it first in security.encryption_keys."""
    try:
        click.echo(generate_key(kid))
    except KeyRingError as exc:
        _fail(str(exc))


@keys.command("rotate")
@config_option
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def keys_rotate(config_path: str | None, batch_size: int) -> None:
    """Re-encrypt every stored token under the primary (first) key. Safe to interrupt and rerun."""
    from .store.engine import create_engine, sessionmaker, upgrade
    from .store.keyrotation import rotate

    hub_logs.setup("WARNING")
    config = _config(config_path)
    secrets = resolve_secrets(config)
    try:
        ring = KeyRing.parse(secrets.encryption_keys)
    except KeyRingError as exc:
        _fail(f"security.encryption_keys: {exc}")
        return

    async def run() -> Any:
        engine = create_engine(config.database.url)
        try:
            await upgrade(engine)
            return await rotate(
                sessionmaker(engine), ring, batch_size=batch_size,
                progress=lambda r: click.echo(f"  re-encrypted {r.rotated} integration(s)...", err=True),
            )
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    click.echo(f"re-encrypted {report.rotated} integration(s) under key {ring.primary!r}")
    if report.answers_rotated or report.answers_dropped:
        click.echo(f"re-encrypted {report.answers_rotated} stored idempotent answer(s); dropped {report.answers_dropped} unreadable one(s)")
    if report.unreadable:
        click.echo(click.style(f"{report.unreadable} integration(s) hold values no configured key can decrypt; they were left untouched", fg="yellow"))
        sys.exit(1)
    click.echo("every stored token is on the primary key: older keys may now be removed from the config")


@main.group("logs")
def logs_group() -> None:
    """Activity logs."""


@logs_group.command("prune")
@config_option
@click.option("--days", type=click.IntRange(1), help="Keep this many days (default: activity.retention_days).")
def logs_prune(config_path: str | None, days: int | None) -> None:
    """Delete activity rows older than the retention period, and their hourly statistics."""
    from .activity import prune
    from .store.engine import create_engine, sessionmaker
    from .store.models import utcnow

    config = _config(config_path)
    keep = days or config.activity.retention_days

    async def run() -> int:
        engine = create_engine(config.database.url)
        try:
            async with sessionmaker(engine).begin() as session:
                return await prune(session, utcnow() - timedelta(days=keep))
        finally:
            await engine.dispose()

    click.echo(f"deleted {asyncio.run(run())} activity row(s) older than {keep} days")


@logs_group.command("recount")
@config_option
@click.option("--user", "user_id", help="Only this user's integrations (the JWT 'sub').")
@click.option("--provider", help="Only integrations with this provider.")
def logs_recount(config_path: str | None, user_id: str | None, provider: str | None) -> None:
    """Rebuild the hourly statistics from the activity rows.

    Needed only after rows reached integration_logs around the hub (a bulk import, a
    restore of that table, a hand edit). One integration per transaction, so a busy hub's
    activity writes wait for one integration at a time, not for the whole table.
    """
    from sqlalchemy import select

    from .activity import rebuild_rollups
    from .store.engine import create_engine, sessionmaker
    from .store.models import Integration

    config = _config(config_path)

    async def run() -> tuple[int, int]:
        engine = create_engine(config.database.url)
        try:
            sessions = sessionmaker(engine)
            query = select(Integration.id).order_by(Integration.id)
            if user_id is not None:
                query = query.where(Integration.user_id == user_id)
            if provider is not None:
                query = query.where(Integration.provider == provider)
            async with sessions() as session:
                ids = list((await session.scalars(query)).all())
            calls = 0
            for integration_id in ids:
                async with sessions.begin() as session:
                    calls += await rebuild_rollups(session, integration_id)
            return len(ids), calls
        finally:
            await engine.dispose()

    integrations, calls = asyncio.run(run())
    if not integrations and (user_id or provider):
        _fail("no integration matches" + (f" --user {user_id!r}" if user_id else "") + (f" --provider {provider!r}" if provider else ""))
    click.echo(f"recounted {calls} call(s) of {integrations} integration(s) into the hourly statistics")


@main.command()
@config_option
@click.option("--user", "user_id", required=True, help="The user id (JWT 'sub').")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(60), help="Lifetime in seconds.")
def token(config_path: str | None, user_id: str, ttl: int) -> None:
    """Mint an HS256 JWT for trying the API (your host application mints its own)."""
    from .infra.auth import issue_token

    config = _config(config_path)
    if config.auth.jwt_public_key:
        _fail("this hub verifies JWTs with a public key; mint them with the matching private key")
    secrets = resolve_secrets(config) if not config.auth.jwt_secret else None
    secret = config.auth.jwt_secret or (secrets.jwt_secret if secrets else None)
    assert secret
    click.echo(issue_token(secret, user_id, ttl_seconds=ttl, issuer=config.auth.issuer, audience=config.auth.audience))


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"

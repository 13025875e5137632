"""Commands that run servers: ``serve`` (one process or a supervised pool) and ``sandbox``."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import AsyncIterator

import click

from ..infra.config import ConfigError, HubConfig
from ..infra.crypto import KeyRingError
from ..infra.secrets import resolve_secrets
from .common import build, config_option, fail, load_registry, log, server_setup


@click.command()
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

    from ..web import create_app

    redactor, config = server_setup(config_path, host, port, log_level)
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
        app = create_app(hub, migrate=not no_migrate)
        app.on_startup.append(_freeze_startup_objects)  # after the hub has started (cleanup_ctx runs first)
        return app

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


async def _freeze_startup_objects(_app: object) -> None:
    """Move every object alive once the hub has started (modules, plugins, mappers,
    compiled schemas: some 160,000) out of the garbage collector's sight. They live as
    long as the process, yet each full collection walked them all again: about 165 ms a
    time, every few thousand requests, some 60 µs of CPU per request under load and a
    latency spike each time. Objects made afterwards are collected as before, only less
    often (:data:`YOUNG_COLLECTION_THRESHOLD`).

    No full collection first: it found some 400 unreachable objects (kept for good now,
    a few tens of KB) and took 40 ms of the start-up, before the port opens (P6)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


# How many more container objects made than freed before the collector looks at the young
# ones. Python's default, 700, is a few requests' worth: under load the young collection
# ran several times a request and kept promoting the objects of the 64 calls in flight,
# which the next older collection walked again (about 0.2 ms each time). What a request
# makes is nearly all freed by reference counting when it ends; the collector is only
# for cycles, and 10,000 objects waiting for it are a few MB at most.
YOUNG_COLLECTION_THRESHOLD = 10_000


def _supervise(config: HubConfig, config_path: str | None, workers: int, strict: bool, no_migrate: bool, log_level: str) -> None:
    from ..store.engine import create_engine, upgrade
    from ..workers import supervise

    if config.server.port == 0:
        fail("--workers needs a fixed --port: every worker listens on the same one")
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


@click.command()
@config_option
@click.option("--host", help="Override server.host.")
@click.option("--port", type=int, help="Override server.port.")
@click.option("--user", "user_id", default="sandbox-user", show_default=True, help="The user the dev login signs in as.")
@click.option("--catalogue/--no-catalogue", default=True, show_default=True,
              help="Also offer every provider of the YAML catalogue the config does not name, each through its generated fake.")
@click.option("--log-level", default="INFO", show_default=True)
def sandbox(config_path: str | None, host: str | None, port: int | None, user_id: str, catalogue: bool, log_level: str) -> None:
    """Run the hub with every provider pointed at its built-in fake (no accounts needed)."""
    from aiohttp import web

    from ..infra.auth import issue_token
    from ..sandbox import offer_catalogue, provider_lines, start_fakes
    from ..core.hub import Hub
    from ..web import create_app

    redactor, config = server_setup(config_path, host, port, log_level)
    if config.server.production:
        fail("the sandbox is for trying the hub: it refuses to run with server.production: true")
    registry = load_registry(config)
    if catalogue:
        offer_catalogue(config, registry)
    secrets = resolve_secrets(config)

    banner: list[str] = []

    async def prepare() -> web.Application:
        fakes = await start_fakes(config, registry, host="127.0.0.1", state_dir=config.data_dir / "sandbox")
        try:
            hub = Hub(config, registry, secrets)
        except (ConfigError, KeyRingError, ValueError) as exc:
            await fakes.stop()
            fail(str(exc))
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

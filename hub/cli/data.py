"""Commands on stored data: ``db`` (the schema), ``keys`` (encryption at rest), ``logs``
(activity retention and statistics) and ``token`` (a JWT for trying the API)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import click

from ..infra import serverlog as hub_logs
from ..infra.crypto import KeyRing, KeyRingError, generate_key
from ..infra.secrets import resolve_secrets
from .common import config_option, fail, read_config


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@config_option
@click.option("--revision", default="head", show_default=True)
def db_upgrade(config_path: str | None, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from ..store.engine import create_engine, current_revision, upgrade

    config = read_config(config_path)

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
    from ..store.engine import create_engine, current_revision

    config = read_config(config_path)

    async def run() -> str | None:
        engine = create_engine(config.database.url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(asyncio.run(run()) or "(empty database)")


@click.group()
def keys() -> None:
    """Encryption keys for tokens at rest."""


@keys.command("generate")
@click.option("--id", "kid", help="Key id (default: random).")
def keys_generate(kid: str | None) -> None:
    """Print a new key ring entry ('id:base64key'). Put it first in security.encryption_keys."""
    try:
        click.echo(generate_key(kid))
    except KeyRingError as exc:
        fail(str(exc))


@keys.command("rotate")
@config_option
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def keys_rotate(config_path: str | None, batch_size: int) -> None:
    """Re-encrypt every stored token under the primary (first) key. Safe to interrupt and rerun."""
    from ..store.engine import create_engine, sessionmaker, upgrade
    from ..store.keyrotation import rotate

    hub_logs.setup("WARNING")
    config = read_config(config_path)
    secrets = resolve_secrets(config)
    try:
        ring = KeyRing.parse(secrets.encryption_keys)
    except KeyRingError as exc:
        fail(f"security.encryption_keys: {exc}")
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


@click.group("logs")
def logs_group() -> None:
    """Activity logs."""


@logs_group.command("prune")
@config_option
@click.option("--days", type=click.IntRange(1), help="Keep this many days (default: activity.retention_days).")
def logs_prune(config_path: str | None, days: int | None) -> None:
    """Delete activity rows older than the retention period, and their share of the statistics.

    On PostgreSQL the months wholly past retention are dropped as whole partitions; the
    older part of the month the cutoff falls in is deleted row by row."""
    from ..activity import Pruned, prune_expired
    from ..store.engine import create_engine, sessionmaker
    from ..store.models import utcnow

    config = read_config(config_path)
    keep = days or config.activity.retention_days

    async def run() -> Pruned:
        engine = create_engine(config.database.url)
        try:
            return await prune_expired(sessionmaker(engine), utcnow() - timedelta(days=keep))
        finally:
            await engine.dispose()

    pruned = asyncio.run(run())
    dropped = f" ({len(pruned.partitions)} monthly partition(s) dropped whole: {', '.join(pruned.partitions)})" if pruned.partitions else ""
    click.echo(f"deleted {pruned.rows} activity row(s) older than {keep} days{dropped}")


@logs_group.command("recount")
@config_option
@click.option("--user", "user_id", help="Only this user's integrations (the JWT 'sub').")
@click.option("--provider", help="Only integrations with this provider.")
def logs_recount(config_path: str | None, user_id: str | None, provider: str | None) -> None:
    """Rebuild the statistics (the hourly and daily rollup) from the activity rows.

    Needed only after rows reached integration_logs around the hub (a bulk import, a
    restore of that table, a hand edit). One integration per transaction, so a busy hub's
    activity writes wait for one integration at a time, not for the whole table.
    """
    from sqlalchemy import select

    from ..activity import rebuild_rollups
    from ..store.engine import create_engine, sessionmaker
    from ..store.models import Integration

    config = read_config(config_path)

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
        fail("no integration matches" + (f" --user {user_id!r}" if user_id else "") + (f" --provider {provider!r}" if provider else ""))
    click.echo(f"recounted {calls} call(s) of {integrations} integration(s) into the hourly and daily statistics")


@click.command()
@config_option
@click.option("--user", "user_id", required=True, help="The user id (JWT 'sub').")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(60), help="Lifetime in seconds.")
def token(config_path: str | None, user_id: str, ttl: int) -> None:
    """Mint an HS256 JWT for trying the API (your host application mints its own)."""
    from ..infra.auth import issue_token

    config = read_config(config_path)
    if config.auth.jwt_public_key:
        fail("this hub verifies JWTs with a public key; mint them with the matching private key")
    secrets = resolve_secrets(config) if not config.auth.jwt_secret else None
    secret = config.auth.jwt_secret or (secrets.jwt_secret if secrets else None)
    assert secret
    click.echo(issue_token(secret, user_id, ttl_seconds=ttl, issuer=config.auth.issuer, audience=config.auth.audience))

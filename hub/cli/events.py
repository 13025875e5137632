"""``hub events``: what the outbox holds, and sending events again (docs/events.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ..errors import HubError
from ..events import EVENT_STATUSES, EventService
from ..infra.config import HubConfig
from .common import config_option, fail, read_config

T = TypeVar("T")


def _run(config: HubConfig, work: Callable[[EventService], Awaitable[T]]) -> T:
    from ..activity import ActivityWriter
    from ..store.engine import create_engine, sessionmaker

    async def run() -> T:
        engine = create_engine(config.database.url)
        try:
            sessions = sessionmaker(engine)
            return await work(EventService(config.events, sessions, ActivityWriter(sessions)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except HubError as exc:
        fail(exc.message)
        raise AssertionError from exc


@click.group("events")
def events_group() -> None:
    """Events to the host application: list, retry, replay."""


@events_group.command("list")
@config_option
@click.option("--user", "user_id", help="Only this user's events (the JWT 'sub').")
@click.option("--type", "event_type", help="Only events of this type, e.g. integration.expired.")
@click.option("--status", type=click.Choice(EVENT_STATUSES, case_sensitive=False), help="Only events in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with the payload and each delivery.")
def events_list(config_path: str | None, user_id: str | None, event_type: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The newest events first, with how their deliveries stand."""
    from ..web.views import event as event_view

    config = read_config(config_path)
    rows, _ = _run(config, lambda ev: ev.page(user_id=user_id, event_type=event_type, status=status.upper() if status else None, limit=limit))
    for row, deliveries in rows:
        if as_json:
            click.echo(json.dumps(event_view(row, deliveries), sort_keys=True))
            continue
        states = ", ".join(f"{d.subscriber}: {d.state.lower()} after {d.attempts}" for d in deliveries) or "no subscriber"
        click.echo(f"{row.event_id}  {row.created_at:%Y-%m-%d %H:%M:%S}  {row.type:<31} {row.status:<14} {row.user_id}/{row.provider}  ({states})")


@events_group.command("retry")
@config_option
@click.argument("event_ids", nargs=-1)
@click.option("--all-dead", is_flag=True, help="Every dead delivery, not only the events named.")
def events_retry(config_path: str | None, event_ids: tuple[str, ...], all_dead: bool) -> None:
    """Put dead deliveries of EVENT_IDS (or --all-dead) back in line, attempts counted afresh."""
    if not event_ids and not all_dead:
        fail("name the events to retry (evt_...), or give --all-dead")
    config = read_config(config_path)
    count = _run(config, lambda ev: ev.retry(list(event_ids), all_dead=all_dead))
    click.echo(f"{count} dead delivery(ies) will be tried again")


@events_group.command("replay")
@config_option
@click.argument("event_ids", nargs=-1, required=True)
@click.option("--subscriber", "subscribers", multiple=True, help="Only to this subscriber (repeatable); default every enabled one.")
def events_replay(config_path: str | None, event_ids: tuple[str, ...], subscribers: tuple[str, ...]) -> None:
    """Send EVENT_IDS again, delivered or not, with their original webhook-id."""
    config = read_config(config_path)
    count = _run(config, lambda ev: ev.replay(list(event_ids), list(subscribers) or None))
    click.echo(f"{count} delivery(ies) queued")


@events_group.command("subscribers")
@config_option
def events_subscribers(config_path: str | None) -> None:
    """The configured subscribers, and which of them a 410 Gone disabled."""
    config = read_config(config_path)
    states: dict[str, Any] = _run(config, lambda ev: ev.subscriber_states())
    removed: dict[str, int] = _run(config, lambda ev: ev.removed_subscribers())
    if not states:
        click.echo("no subscribers (events.subscribers in the config)")
    for name, state in states.items():
        where = "disabled since " + state["disabledAt"] + f" ({state['disabledReason']})" if state["disabledAt"] else "active"
        click.echo(f"{name}  {state['url']}  [{', '.join(state['events'])}]  {where if state['enabled'] else 'off in the config'}")
    for name, waiting in removed.items():
        click.echo(f"{name}  not in the config any more: {waiting} delivery(ies) wait for nothing; "
                   f"their events are pruned after events.retention_days ({config.events.retention_days})")


@events_group.command("enable")
@config_option
@click.argument("name")
def events_enable(config_path: str | None, name: str) -> None:
    """Take back a subscriber a 410 Gone disabled; its waiting events go out in order."""
    config = read_config(config_path)
    _run(config, lambda ev: ev.enable(name))
    click.echo(f"subscriber {name} enabled")


@events_group.command("prune")
@config_option
@click.option("--days", type=click.IntRange(1), help="Keep this many days (default: events.retention_days).")
def events_prune(config_path: str | None, days: int | None) -> None:
    """Delete events older than the retention that nothing will deliver any more: finished
    ones, and those waiting only on subscribers removed from the config. Each process also
    does this every events.prune_interval_seconds."""
    config = read_config(config_path)
    count = _run(config, lambda ev: ev.prune(days))
    click.echo(f"deleted {count} event(s) older than {days or config.events.retention_days} days that nothing will deliver")


@events_group.command("secret")
def events_secret() -> None:
    """Print a new signing secret (whsec_...) for a subscriber's environment variable."""
    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())

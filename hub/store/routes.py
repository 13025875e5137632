"""The webhook routes of an integration (``webhook_routes``): each ``key=value`` of its
metadata and plugin state that an inbound webhook's ``match`` could name, so the webhook
route reads the few integrations an event concerns through an index instead of every
integration of the provider.

The rows follow the metadata on their own: a listener on every ORM flush rewrites an
integration's routes in the same transaction whenever its ``meta`` was assigned (every
write of it in the hub assigns a new dict), so no code path can forget them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, event, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .models import Integration, WebhookRoute

MAX_ROUTE = 255


def route_of(key: str, value: Any) -> str | None:
    """The stored form of one pair, as ``hub.core.webhooks.matches`` compares it (``str``
    of both sides); None for what is not kept (objects, None, too long)."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    text = f"{key}={value}"
    return text if len(text) <= MAX_ROUTE else None


def routes_of(meta: Mapping[str, Any] | None) -> set[str]:
    """Every route an integration with this metadata answers to."""
    found: set[str] = set()
    meta = meta or {}
    for key, value in meta.items():
        if key != "state":
            found.add(route_of(str(key), value) or "")
    state = meta.get("state")
    if isinstance(state, Mapping):
        for key, value in state.items():
            items: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                found.add(route_of(f"state.{key}", item) or "")
    found.discard("")
    return found


async def reached_by(session: AsyncSession, provider: str, match: Mapping[str, Any], statuses: Sequence[str]) -> list[Integration]:
    """The integrations of ``provider`` in ``statuses`` that could match ``match``: those
    holding its first storable pair, through the index (the caller still checks every
    pair); every such integration of the provider when no pair is storable."""
    query = select(Integration).where(Integration.provider == provider, Integration.status.in_(list(statuses)))
    route = next((r for r in (route_of(str(k), v) for k, v in match.items()) if r is not None), None)
    if route is not None:
        query = query.join(WebhookRoute, WebhookRoute.integration_id == Integration.id).where(
            WebhookRoute.provider == provider, WebhookRoute.route == route
        )
    return list((await session.scalars(query.order_by(Integration.id))).all())


def _rewrite(session: Session, rows: list[Integration]) -> None:
    if not rows:
        return
    connection = session.connection()
    connection.execute(delete(WebhookRoute).where(WebhookRoute.integration_id.in_([r.id for r in rows])))
    values = [{"integration_id": r.id, "provider": r.provider, "route": route} for r in rows for route in sorted(routes_of(r.meta))]
    if values:
        connection.execute(insert(WebhookRoute), values)


@event.listens_for(Session, "after_flush")
def _keep_routes(session: Session, _context: Any) -> None:
    changed = [obj for obj in session.new if isinstance(obj, Integration)]
    changed += [
        obj for obj in session.dirty
        if isinstance(obj, Integration) and obj not in session.deleted and inspect(obj).attrs.meta.history.has_changes()
    ]
    _rewrite(session, changed)

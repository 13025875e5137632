"""The integration state machine. Every status change in the hub goes through :func:`move`.

A move is checked against the table below, applied to the row, and returned as an
activity row (``kind="transition"``) carrying from / to / reason, to be written in the
same transaction as the change itself, with the event that tells the host application
(:func:`log_move`, docs/events.md).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import Conflict
from ..events.outbox import Outbox
from ..store.integrations import IntegrationStore
from ..store.models import Integration, IntegrationLog, utcnow


class Status(str, enum.Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    ERROR = "ERROR"
    INACTIVE = "INACTIVE"
    DELETED = "DELETED"


A, X, E, I, D = Status.ACTIVE, Status.EXPIRED, Status.ERROR, Status.INACTIVE, Status.DELETED

# from-state -> the states it may move to. ``None`` is "no integration yet".
ALLOWED: dict[Status | None, frozenset[Status]] = {
    None: frozenset({A}),
    A: frozenset({X, E, I, D}),
    X: frozenset({A, E, I, D}),
    E: frozenset({A, I, D}),
    I: frozenset({A, D}),
    D: frozenset({A}),
}

# What a person can do to get out of each state, for 409 messages.
ADVICE: dict[Status, str] = {
    A: "",
    X: "refresh it with POST .../refresh, or connect again",
    E: "connect again (GET .../connect) to grant new access",
    I: "reactivate it with PATCH .../status {\"status\": \"ACTIVE\"}, or connect again",
    D: "connect again to create it anew",
}


# The event each state's arrival emits. Leaving EXPIRED for ACTIVE by a refresh is
# ``integration.refreshed`` instead (the caller says so), as is every stored refresh.
EVENT_OF: dict[Status, str] = {
    A: "integration.connected",
    X: "integration.expired",
    E: "integration.reconnect_required",
    I: "integration.disconnected",
    D: "integration.deleted",
}
REFRESHED = "integration.refreshed"


def can_move(current: Status | None, to: Status) -> bool:
    return to in ALLOWED[current]


def move(integration: Integration, to: Status, reason: str, *, now: datetime | None = None) -> IntegrationLog | None:
    """Apply ``to`` to the row, or raise :class:`Conflict` naming the allowed moves.

    Moving to the state the row is already in is not a transition and returns ``None``.
    """
    current = Status(integration.status) if integration.status else None
    if current == to:
        return None
    if not can_move(current, to):
        raise refused(integration.provider, current, f"move to {to.value}")
    now = now or utcnow()
    integration.status = to.value
    integration.status_reason = reason
    integration.updated_at = now
    integration.version = (integration.version or 0) + 1
    return IntegrationLog(
        integration_id=integration.id,
        kind="transition",
        action="status_change",
        status="SUCCESS",
        request_data={"from": current.value if current else None, "to": to.value, "reason": reason},
        duration_ms=0,
        created_at=now,
    )


def refused(provider: str, current: Status | None, what: str, *, holds_credentials: bool = True) -> Conflict:
    """The 409 for a move the state does not allow; its advice names a move that works from
    there (a disconnected integration holds no credentials, so only connecting again does)."""
    state = current.value if current else "not connected"
    allowed = sorted(s.value for s in ALLOWED[current])
    advice = ADVICE.get(current, "") if current else "connect it first"
    if current == Status.INACTIVE and not holds_credentials:
        advice = "it was disconnected and holds no credentials: connect again (GET .../connect)"
    message = f"cannot {what}: the {provider} integration is {state}"
    if advice:
        message += f"; {advice}"
    return Conflict(message, details={"status": state, "allowedTransitions": allowed})


async def log_move(
    session: AsyncSession, outbox: Outbox, row: Integration, transition: IntegrationLog | None, *, event: str | None = None, reason: str | None = None
) -> None:
    """Write what a change of ``row`` produced into the change's own transaction: the
    transition's activity row, if it moved, and exactly one event: ``event`` when given (a
    new grant or a refresh, which report themselves even without a move), else the event of
    the state it moved to. No move and no ``event``: nothing happened, nothing is written."""
    if transition is not None:
        session.add(transition)
    kind = event or (EVENT_OF[Status(row.status)] if transition is not None else None)
    if kind is None:
        return
    previous = transition.request_data["from"] if transition is not None else row.status
    await outbox.emit(session, row, kind, reason=reason or row.status_reason, previous=previous)


async def set_status(store: IntegrationStore, outbox: Outbox, row: Integration, to: Status, reason: str) -> None:
    """Move one integration (re-read under its row lock), log the transition and emit its
    event; ``row`` is brought up to date with what was stored."""
    async with store.locked(row.id) as (session, fresh):
        if fresh is None:
            return
        await log_move(session, outbox, fresh, move(fresh, to, reason))
    row.status, row.status_reason, row.version = fresh.status, fresh.status_reason, fresh.version

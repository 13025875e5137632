"""The ORM models (SQLAlchemy 2.0 declarative). Schema changes go through Alembic
(``hub/store/migrations``); this module and the newest migration describe the same tables."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..redact import EncodedJSON

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class StoredJSON(TypeDecorator[Any]):
    """A JSON column that writes an :class:`~hub.redact.EncodedJSON` as it is: the activity
    recorder has encoded each payload already to measure it, and encoding it again in the
    writer was a second ``json.dumps`` per payload. Anything else is encoded by the JSON
    type as before, and reading is the JSON type's own."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        encode = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, EncodedJSON):
                return str(value)
            return encode(value) if encode is not None else value

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(value: datetime | None) -> str | None:
    """``2026-01-31T12:00:00Z``: how the API writes a moment."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# The rows the background refresh sweep may renew: the condition of its partial index.
REFRESH_DUE = "status = 'ACTIVE' AND refresh_token IS NOT NULL"


class Base(DeclarativeBase):
    pass


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("user_id", "provider", name="uq_integrations_user_provider"),
        # What the background refresh sweep reads: the tokens it may renew, soonest expiry
        # first (migration 0008; the query in hub.store.integrations repeats the condition).
        Index("ix_integrations_refresh_due", "token_expiry",
              postgresql_where=text(REFRESH_DUE), sqlite_where=text(REFRESH_DUE)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    access_token: Mapped[str | None] = mapped_column(Text, default=None)
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)
    token_expiry: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Compare-and-swap counter: every write of tokens or status bumps it, so two processes
    # never both win a refresh or overwrite each other's newer token.
    version: Mapped[int] = mapped_column(Integer, default=1)
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the plugin wants its hub_renew called (CallContext.renew_by), and the lease of the
    # process doing it (hub/core/renewals.py).
    renew_by: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    renew_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WebhookRoute(Base):
    """What routes an inbound provider webhook to its integrations without reading them all:
    one row per ``key=value`` of an integration's metadata (``teamId=T01``) and of its
    plugin state, each element of a list counted (``state.watch_channels=<id>``). Kept by
    :mod:`hub.store.routes` whenever an integration's metadata is written."""

    __tablename__ = "webhook_routes"
    __table_args__ = (Index("ix_webhook_routes_lookup", "provider", "route"),)

    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True,
                                                autoincrement=False)
    route: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))


class IntegrationLog(Base):
    __tablename__ = "integration_logs"
    __table_args__ = (
        Index("ix_integration_logs_integration_id_id", "integration_id", "id"),
        Index("ix_integration_logs_integration_created", "integration_id", "created_at"),
        # One per logs filter, so a filtered page reads only matching rows (migration 0004).
        Index("ix_integration_logs_integration_status_id", "integration_id", "status", "id"),
        Index("ix_integration_logs_integration_action_id", "integration_id", "action", "id"),
        Index("ix_integration_logs_integration_action_status_id", "integration_id", "action", "status", "id"),
        # On PostgreSQL the table is partitioned by month (migration 0007_logs_partitions;
        # hub.activity.partitions keeps the months), and its primary key there is
        # (id, created_at), as a partitioned table's must hold its partition key. The ORM
        # still knows a row by ``id`` alone: every id comes from one sequence.
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    # "call" for an upstream call, "transition" for a lifecycle change.
    kind: Mapped[str] = mapped_column(String(16), default="call")
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    # Nullable, as revision 0001 made them: ``Mapped[Any]`` alone would declare NOT NULL.
    request_data: Mapped[Any] = mapped_column(StoredJSON, default=None, nullable=True)
    response_data: Mapped[Any] = mapped_column(StoredJSON, default=None, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class _CallCounts:
    """The counts both rollup levels keep per key."""

    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class ActivityHour(_CallCounts, Base):
    """Hourly totals of ``kind == "call"`` activity rows, kept by the activity writer in the
    same transaction as the rows themselves (see ``hub.activity``), so statistics read a few
    thousand of these instead of every row in their window.

    One row per integration, UTC hour, action and duration bucket; ``bucket`` is the lowest
    duration in milliseconds the bucket holds (``hub.activity.duration_bucket``).
    ``pending`` counts every status other than SUCCESS and FAILED (PENDING in practice), so
    the three counts add up to the number of call rows."""

    __tablename__ = "activity_hourly"
    # SQLite: store the rows in primary-key order, so an integration's hours are read as
    # one contiguous range without a second lookup per row.
    __table_args__ = {"sqlite_with_rowid": False}

    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class ActivityDay(_CallCounts, Base):
    """Daily totals of the same calls as :class:`ActivityHour`, one row per integration, UTC
    day, action and duration bucket, kept by the activity writer in the same transaction as
    the hours, so a window of weeks adds up days instead of hundreds of thousands of hours.

    ``day`` is the UTC midnight the day starts at. Every row equals the sum of the hourly
    rows of its day (``hub logs recount`` rebuilds both from the raw rows)."""

    __tablename__ = "activity_daily"
    __table_args__ = {"sqlite_with_rowid": False}

    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class OAuthState(Base):
    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str | None] = mapped_column(Text, default=None)
    return_url: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A state started from a connect session's page (migration 0005): the session, and the
    # SHA-256 of the cookie that page set; the callback must bring the same cookie.
    session_id: Mapped[str | None] = mapped_column(String(40), default=None)
    cookie_hash: Mapped[str | None] = mapped_column(String(64), default=None)


class ConnectSession(Base):
    """A short-lived, single-use link that binds connecting to the browser that opens it
    (docs/connect-sessions.md). Only hashes of the link's secret and of the cookie are kept.

    ``status``: ``pending`` (not opened yet), ``opened``, ``completed`` (an account was
    connected through it) or ``cancelled``; past ``expires_at`` a pending or opened session
    reads as expired."""

    __tablename__ = "connect_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    cookie_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    providers: Mapped[list[str]] = mapped_column(JSON, default=list)
    return_url: Mapped[str | None] = mapped_column(Text, default=None)
    opener_origin: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    connected_provider: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class IdempotencyKey(Base):
    """A request sent with an ``Idempotency-Key``: claimed while it runs (``status`` is
    null), then its answer, kept until ``expires_at`` and replayed to a retry.

    One row per user and key (the key is stored as its SHA-256); the unique constraint is
    what makes a claim atomic across processes. The answer's body is encrypted under the
    key ring, bound to the row's user and key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key_hash", name="uq_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    # The path and query as sent, and the SHA-256 of the body: what a retry must repeat.
    target: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_headers: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)


class Event(Base):
    """One event for the host application (docs/events.md), written in the same transaction
    as the change it reports: the outbox. ``payload`` is the body sent, as stored; ``status``
    sums up its deliveries (PENDING while one is still to be made, then DELIVERED, or DEAD
    when one was given up on; NO_SUBSCRIBERS when nobody asked for its type)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id", "user_id", "id"),
        Index("ix_events_user_type_id", "user_id", "type", "id"),
        Index("ix_events_user_status_id", "user_id", "status", "id"),
        Index("ix_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The ``webhook-id`` a subscriber deduplicates on.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    integration_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), default=None)
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[Any] = mapped_column(JSON)
    # Set where an event must be emitted once only (a token's expiry announced once).
    once_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventDelivery(Base):
    """An event on its way to one subscriber. A process claims it by setting ``lease_until``
    and ``lease_owner`` with a compare-and-swap, sends it, and records the outcome only while
    it still holds the lease; a process that dies leaves a lease that runs out, and another
    one sends the event again (at least once)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "state", "next_attempt_at"),
        Index("ix_event_deliveries_order", "subscriber", "integration_id", "state", "id"),
        Index("ix_event_deliveries_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("events.id", ondelete="CASCADE"))
    subscriber: Mapped[str] = mapped_column(String(64))
    # The event's integration: its deliveries to one subscriber go out in order.
    integration_id: Mapped[int | None] = mapped_column(BigId, default=None)
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(32), default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventSubscriber(Base):
    """What the hub learnt about a configured subscriber: disabled after it answered 410 Gone
    (``hub events enable NAME`` takes it back)."""

    __tablename__ = "event_subscribers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)

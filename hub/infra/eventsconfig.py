"""``events:``: where the hub sends its events and how hard it tries (docs/events.md).

Each subscriber names an endpoint URL, the event types it wants, and the environment
variable that holds its signing secret (``whsec_`` and base64, the Standard Webhooks form);
the secret itself never sits in the file. The secret is read when the config is loaded, so
a subscriber whose variable is unset or malformed stops the hub at start-up with the YAML
path of the problem.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

# The lifecycle events the hub emits. Provider events (inbound webhooks) are named
# ``<provider>.<event>`` and may be subscribed to by that name or ``<provider>.*``.
LIFECYCLE_EVENTS = (
    "integration.connected",
    "integration.refreshed",
    "integration.expired",
    "integration.reconnect_required",
    "integration.disconnected",
    "integration.deleted",
    "integration.token_expiring",
)
_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_.]*))$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SUBSCRIBER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class SubscriberConfig(BaseModel):
    """One ``events.subscribers.<name>`` section."""

    model_config = ConfigDict(extra="forbid")

    url: str
    # Event types, ``integration.*``, ``<provider>.*`` or ``*`` (everything).
    events: list[str] = Field(default_factory=lambda: ["*"])
    # The environment variable holding the signing secret (``whsec_<base64>``).
    secret_env: str
    # Attempts before a delivery is dead-lettered.
    max_attempts: int = Field(8, ge=1, le=100)
    # Exponential backoff between attempts, with jitter, within these bounds.
    backoff_min_seconds: float = Field(5.0, gt=0, le=86_400)
    backoff_max_seconds: float = Field(3600.0, gt=0, le=7 * 86_400)
    # One attempt's whole time, connecting included.
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    enabled: bool = True

    _secret: str | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^/?#\s]+(/\S*)?", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one event type (or \"*\" for all)")
        for name in v:
            if not _PATTERN.fullmatch(name):
                raise ValueError(f"{name!r} is not an event type pattern (e.g. integration.expired, integration.*, slack.*, *)")
            if name.startswith("integration.") and name != "integration.*" and name not in LIFECYCLE_EVENTS:
                raise ValueError(f"{name!r} is not an event the hub emits (known: {', '.join(LIFECYCLE_EVENTS)})")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str) -> str:
        if not _ENV_NAME.fullmatch(v):
            raise ValueError("must be the name of an environment variable (letters, digits, _), not the secret itself")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> SubscriberConfig:
        if self.backoff_min_seconds > self.backoff_max_seconds:
            raise ValueError("backoff_min_seconds must not exceed backoff_max_seconds")
        return self

    def wants(self, event_type: str) -> bool:
        for pattern in self.events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    @property
    def secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("the subscriber's secret was not read from the environment")
        return self._secret


class EventsConfig(BaseModel):
    """The ``events`` section."""

    model_config = ConfigDict(extra="forbid")

    subscribers: dict[str, SubscriberConfig] = Field(default_factory=dict)
    # How often each process looks for events due for delivery; 0 turns delivery off here.
    delivery_interval_seconds: float = Field(1.0, ge=0, le=3600)
    # Deliveries one process claims per pass, and how many it sends at once.
    batch_size: int = Field(50, ge=1, le=1000)
    concurrency: int = Field(8, ge=1, le=64)
    # A token that cannot be refreshed (Trello's) is announced this long before it expires.
    token_expiring_seconds: int = Field(3 * 86_400, ge=60)
    # How often each process looks for such tokens; 0 turns the sweep off.
    expiring_sweep_seconds: float = Field(300.0, ge=0)
    # Finished events older than this are deleted (``hub events prune``, and each process
    # every ``prune_interval_seconds``), with pending ones whose only pending deliveries go
    # to subscribers no longer in ``subscribers``.
    retention_days: int = Field(30, ge=1)
    # How often each process prunes; 0 leaves pruning to ``hub events prune``.
    prune_interval_seconds: float = Field(3600.0, ge=0)

    @field_validator("subscribers")
    @classmethod
    def _names(cls, v: dict[str, SubscriberConfig]) -> dict[str, SubscriberConfig]:
        for name in v:
            if not _SUBSCRIBER_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a subscriber name is 1-64 lower-case letters, digits, _ or -")
        return v


def read_secrets(events: EventsConfig, env: Mapping[str, str]) -> list[str]:
    """Read each subscriber's signing secret from ``env``; the problems, each naming its YAML path."""
    problems = []
    for name, sub in events.subscribers.items():
        where = f"events.subscribers.{name}.secret_env"
        value = env.get(sub.secret_env)
        if not value:
            problems.append(f"{where}: the environment variable {sub.secret_env} is not set")
            continue
        if not valid_secret(value):
            problems.append(f"{where}: {sub.secret_env} must hold whsec_ followed by base64 (e.g. from `hub events secret`)")
            continue
        sub._secret = value
    return problems


def valid_secret(value: str) -> bool:
    raw = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64

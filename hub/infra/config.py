"""Configuration: ``config/hub.yaml`` read into typed objects.

``${VAR}`` and ``${VAR:-default}`` are replaced from the environment before validation,
so secrets stay out of the file. A value that is exactly ``${VAR}`` with ``VAR`` unset
becomes "not set" (``null``), which lets a default config enable providers whose
credentials a given machine does not have. Every error names the YAML path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .eventsconfig import EventsConfig, read_secrets
from .proxyconfig import ProxyConfig
from .redirects import Refused
from .redirects import parse as parse_return_url

DEFAULT_CONFIG_PATH = Path("config/hub.yaml")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid configuration{where}:\n" + "\n".join(f"  - {p}" for p in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# What a browser page on another origin may send: the JWT, a JSON body, and the headers the
# API reads. Simple headers (Accept, Content-Language, ...) need no listing.
DEFAULT_CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"]
_ORIGIN = re.compile(r"^https?://[^/?#\s*]+$")


class CorsConfig(_Section):
    """``server.cors``: which other origins' pages may call the API from a browser."""

    # Exact origins ("https://app.example.com", scheme, host and port only), or ["*"].
    allowed_origins: list[str] = Field(default_factory=list)
    allowed_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_CORS_HEADERS))
    # Seconds a browser may cache a preflight's answer.
    max_age: int = Field(600, ge=0, le=86400)
    # Cookies and HTTP authentication; the API's JWT travels in a header and needs none.
    allow_credentials: bool = False

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        if "*" in v and len(v) > 1:
            raise ValueError('"*" allows every origin: list it alone, or list origins without it')
        for i, origin in enumerate(v):
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(f"entry {i} ({origin!r}) must be an origin: http:// or https://, a host and an optional port, no path")
        return [o if o == "*" else o.lower() for o in v]

    @field_validator("allowed_headers")
    @classmethod
    def _headers(cls, v: list[str]) -> list[str]:
        for i, name in enumerate(v):
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name) or name == "*":
                raise ValueError(f"entry {i} ({name!r}) must be a header name")
        return v

    @model_validator(mode="after")
    def _no_credentials_with_wildcard(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allowed_origins:
            raise ValueError(
                'allow_credentials: true cannot go with allowed_origins ["*"]: any site could then act '
                "with the user's credentials (browsers refuse it too); list the origins instead"
            )
        return self


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = None
    allowed_redirects: list[str] = Field(default_factory=list)
    production: bool = False
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # An inbound provider webhook's body, refused with 413 before any signature work.
    max_webhook_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    shutdown_timeout: float = Field(30.0, gt=0)
    # Seconds a connection may take to deliver a complete request head, from when it opens
    # or its previous response ends (so also how long an idle keep-alive connection lasts).
    header_timeout: float = Field(20.0, gt=0, le=3600)
    cors: CorsConfig = Field(default_factory=CorsConfig)

    @field_validator("allowed_redirects")
    @classmethod
    def _redirects(cls, v: list[str]) -> list[str]:
        for i, entry in enumerate(v):
            try:
                parse_return_url(entry)
            except Refused as exc:
                raise ValueError(f"entry {i} ({entry!r}) {exc}") from None
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://", v):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v


class DatabaseConfig(_Section):
    url: str = "sqlite+aiosqlite:///data/hub.db"
    pool_size: int = Field(10, ge=1)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return v


class AuthConfig(_Section):
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    algorithms: list[str] | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = Field(30, ge=0)

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, v: str | None) -> str | None:
        if v is not None and len(v) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs a 256-bit secret)")
        return v


class SecurityConfig(_Section):
    encryption_keys: str | None = None
    state_ttl_seconds: int = Field(600, ge=30, le=3600)
    # Per user; the oldest go first when a connect would exceed it.
    max_pending_states: int = Field(20, ge=1, le=1000)
    refresh_margin_seconds: int = Field(60, ge=0)
    # GET .../connect hands the caller an authorization URL that any browser can finish,
    # which lets one user connect another's account (docs/connect-sessions.md). False
    # answers it 403 direct_connect_disabled: connect sessions remain.
    allow_direct_connect: bool = True


class ConnectSessionsConfig(_Section):
    """``connect_sessions``: links that bind a connect to the browser that opens them."""

    # How long a link may wait to be opened, and then how long its page may start flows.
    ttl_seconds: int = Field(600, ge=60, le=3600)
    # Per user; creating one more cancels the oldest still open.
    max_open_per_user: int = Field(10, ge=1, le=100)
    # Origins a session may report to by postMessage (the host page that opened the popup).
    opener_origins: list[str] = Field(default_factory=list)
    # How often each process deletes sessions a day past their expiry; 0: only when their
    # user creates another.
    prune_interval_seconds: float = Field(3600.0, ge=0)

    @field_validator("opener_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for i, origin in enumerate(v):
            if not _ORIGIN.match(origin):
                raise ValueError(f"entry {i} ({origin!r}) must be an origin: http:// or https://, a host and an optional port, no path")
        return [o.lower() for o in v]


class RefreshConfig(_Section):
    """Refreshing tokens ahead of need, in the background (hub/core/refresher.py)."""

    # A token with a refresh token is renewed when it has this long left to live (at most
    # half its life, never less than security.refresh_margin_seconds).
    ahead_seconds: int = Field(300, ge=0)
    # How often each process looks for such tokens; 0 turns the background refresh off.
    interval_seconds: float = Field(30.0, ge=0)
    batch_size: int = Field(100, ge=1, le=10_000)
    concurrency: int = Field(4, ge=1, le=64)


class RenewalsConfig(_Section):
    """Renewing what plugins set up upstream before it runs out, such as Google Calendar's
    push channels (hub/core/renewals.py, the ``hub_renew`` hook)."""

    # Renewed when its deadline (CallContext.renew_by) is this close.
    ahead_seconds: int = Field(3600, ge=0)
    # How often each process looks; 0 turns the background renewal off.
    interval_seconds: float = Field(60.0, ge=0)
    # How long a process holds a row it renews; after a failure it is tried again once this ends.
    lease_seconds: int = Field(300, ge=1)
    batch_size: int = Field(100, ge=1, le=10_000)
    concurrency: int = Field(4, ge=1, le=64)


class ActivityConfig(_Section):
    retention_days: int = Field(90, ge=1)
    # Each process's activity upkeep (hub/core/upkeep.py): how often it runs (0 turns it
    # off), whether it prunes rows past retention_days, and, on PostgreSQL, how many
    # months of partitions it keeps made beyond the current one.
    upkeep_interval_seconds: float = Field(3600.0, ge=0)
    prune_in_background: bool = True
    partition_months_ahead: int = Field(3, ge=1, le=24)
    flush_interval_ms: int = Field(200, ge=10)
    batch_size: int = Field(500, ge=1)
    buffer_limit: int = Field(10_000, ge=1)
    max_payload_bytes: int = Field(8192, ge=256)


class UpstreamConfig(_Section):
    connect_timeout: float = Field(5.0, gt=0)
    total_timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_retry_wait: float = Field(10.0, ge=0)
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_concurrency: int = Field(64, ge=1)
    # Seconds a request may wait for room in a provider's request budget before the hub
    # answers 429 with Retry-After; 0 refuses at once when there is no room.
    max_queue_wait: float = Field(3.0, ge=0, le=300)


class IdempotencyConfig(_Section):
    """Stored answers for requests sent with an ``Idempotency-Key`` (docs/api.md)."""

    # How long an answer is kept and replayed.
    ttl_seconds: int = Field(86_400, ge=60, le=7 * 86_400)
    # A claim whose request has not finished after this long is taken to be abandoned
    # (its process died), and the next request with the key runs instead.
    lease_seconds: int = Field(300, ge=10, le=86_400)
    # How often each process deletes the answers past their time.
    prune_interval_seconds: int = Field(3600, ge=1, le=86_400)


class RateLimitConfig(_Section):
    requests: int = Field(ge=1)
    seconds: float = Field(gt=0)
    per: Literal["token", "app"] = "token"


class ProviderConfig(BaseModel):
    """One ``providers.<name>`` section. Keys beyond these are the plugin's own
    (``client_id``, ``client_secret``, …) and are checked against what it declares."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    scopes: list[str] | None = None
    urls: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int | None = Field(None, ge=1)
    # Replaces the plugin's declared request budget (a provider may grant you more).
    rate_limits: list[RateLimitConfig] | None = None
    # Raw calls to the provider's API through the hub (hub/infra/proxyconfig.py).
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class HubConfig(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    connect_sessions: ConnectSessionsConfig = Field(default_factory=ConnectSessionsConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)
    renewals: RenewalsConfig = Field(default_factory=RenewalsConfig)
    activity: ActivityConfig = Field(default_factory=ActivityConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    idempotency: IdempotencyConfig = Field(default_factory=IdempotencyConfig)
    # Events to the host application (hub/infra/eventsconfig.py, docs/events.md).
    events: EventsConfig = Field(default_factory=EventsConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    # YAML provider files to load (docs/providers-yaml.md): paths, relative to this file's
    # folder, or names from the catalogue shipped with the hub (github, ...).
    provider_files: list[str] = Field(default_factory=list)

    source: str | None = Field(None, exclude=True)

    @property
    def public_url(self) -> str:
        return self.server.public_url or f"http://{self.server.host}:{self.server.port}"

    @property
    def data_dir(self) -> Path:
        """Where the embedded defaults live: the SQLite file's folder, else ``./data``."""
        url = self.database.url
        if url.startswith("sqlite") and ":///" in url and ":memory:" not in url:
            return Path(url.split(":///", 1)[1]).expanduser().resolve().parent
        return Path("data").resolve()

    def enabled_providers(self) -> dict[str, ProviderConfig]:
        return {name: p for name, p in self.providers.items() if p.enabled}

    @property
    def config_dir(self) -> Path | None:
        """The config file's folder: where relative ``provider_files`` are found."""
        return Path(self.source).resolve().parent if self.source else None


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _VAR.fullmatch(value.strip())
    if whole:
        name, default = whole.groups()
        found = env.get(name)
        if found not in (None, ""):
            return found
        return default if default is not None else None
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> HubConfig:
    """Read, interpolate and validate a config file.

    ``path`` falls back to ``$HUB_CONFIG``, then ``config/hub.yaml`` if it exists, then
    the built-in defaults.
    """
    env = os.environ if env is None else env
    chosen = path or env.get("HUB_CONFIG")
    if chosen is None and DEFAULT_CONFIG_PATH.exists():
        chosen = DEFAULT_CONFIG_PATH
    if chosen is None:
        return config_from_dict({}, env=env)
    source = str(chosen)
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror}"], source) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"], source) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping (server:, database:, providers:, ...)"], source)
    return config_from_dict(raw, env=env, source=source)


def config_from_dict(raw: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: str | None = None) -> HubConfig:
    env = os.environ if env is None else env
    data = interpolate(dict(raw), env)
    providers = data.get("providers")
    if isinstance(providers, dict):
        for name, section in list(providers.items()):
            if section is None:
                providers[name] = {}
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()], source) from None
    problems = read_secrets(config.events, env)
    if problems:
        raise ConfigError(problems, source)
    config.source = source
    return config


def _describe(err: Mapping[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if err["type"] == "missing":
        return f"{path}: required"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{path}: {msg}"

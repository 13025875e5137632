"""Value types that cross the plugin boundary.

Plain frozen dataclasses: a plugin builds them, the core reads them. Nothing here touches
the database or the web layer, so a plugin importing these pulls in nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from .ratelimit import RateLimit

if TYPE_CHECKING:
    from .upstream import ProviderHTTP

AuthKind = Literal["oauth2", "token"]
ClientAuth = Literal["basic", "form"]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Endpoints:
    """A provider's upstream URLs. Every one can be overridden in config (``urls:``)."""

    api: str
    authorize: str | None = None
    token: str | None = None
    revoke: str | None = None
    userinfo: str | None = None

    def merged(self, overrides: Mapping[str, str]) -> Endpoints:
        return replace(self, **{k: v for k, v in overrides.items() if v})


@dataclass(frozen=True)
class ConfigField:
    """A key a provider reads from its ``providers.<name>`` config section."""

    name: str
    description: str = ""
    secret: bool = False
    required: bool = True
    default: Any = None


CLIENT_CREDENTIALS = (
    ConfigField("client_id", "OAuth client id issued by the provider"),
    ConfigField("client_secret", "OAuth client secret issued by the provider", secret=True),
)


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider is. Returned by the ``hub_provider`` hook."""

    name: str
    title: str
    endpoints: Endpoints
    auth: AuthKind = "oauth2"
    default_scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: bool = True
    config_fields: tuple[ConfigField, ...] = CLIENT_CREDENTIALS
    description: str = ""
    rate_limits: tuple[RateLimit, ...] = ()
    # Extra query parameters of the default authorization URL (Google's access_type=offline).
    authorize_params: Mapping[str, str] = field(default_factory=dict, hash=False)
    # How the token endpoint is spoken to (read by hub.token_request and so by the core's
    # default exchange and refresh): the Accept header to send (None: none), how the client
    # authenticates ("basic" or "form"), and whether a 200 answer may carry {"error": ...}.
    token_accept: str | None = None
    client_auth: ClientAuth = "basic"
    token_errors_in_body: bool = False
    # What redaction must know: regexes of this provider's credential shapes (masked
    # anywhere), keys whose values are secret, and keys that are never secret by name alone.
    token_shapes: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()
    safe_keys: tuple[str, ...] = ()
    # The headers that say how much of the provider's budget is left, and when it resets.
    rate_limit_remaining_header: str | None = None
    rate_limit_reset_header: str | None = None

    def __post_init__(self) -> None:
        # Refused here, where hub_provider runs, so a typo makes the plugin a recorded load
        # failure instead of breaking redaction later.
        if self.client_auth not in ("basic", "form"):
            raise ValueError(f"ProviderInfo.client_auth must be 'basic' or 'form', not {self.client_auth!r}")
        for shape in self.token_shapes:
            try:
                re.compile(shape)
            except re.error as exc:
                raise ValueError(f"ProviderInfo.token_shapes: {shape!r} is not a regular expression ({exc})") from None

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.config_fields if f.secret)


@dataclass(frozen=True)
class TokenSet:
    """Credentials for one integration. Only the core stores them, always encrypted.

    ``raw`` keeps the non-secret parts of the provider's token answer that a plugin may
    want later (Slack's team, for instance); the core strips secret-looking keys from it
    before it is stored in clear.
    """

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "Bearer"
    raw: Mapping[str, Any] = field(default_factory=dict)

    def expired(self, now: datetime | None = None, margin_seconds: float = 0) -> bool:
        if self.expires_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        return (self.expires_at - now).total_seconds() <= margin_seconds


@dataclass(frozen=True)
class AccountInfo:
    """Who the token belongs to upstream. Stored (in clear) as the integration's metadata."""

    id: str
    name: str | None = None
    email: str | None = None
    team_id: str | None = None
    team_name: str | None = None
    url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        data = {
            "accountId": self.id,
            "accountName": self.name,
            "email": self.email,
            "teamId": self.team_id,
            "teamName": self.team_name,
            "url": self.url,
        }
        data.update(self.extra)
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class AuthorizationRequest:
    """Everything needed to build the URL the user's browser is sent to."""

    state: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None = None
    code_challenge_method: str | None = None


@dataclass(frozen=True)
class Provider:
    """A provider as configured on this hub; passed to every provider hook.

    ``settings`` holds the values of the provider's declared ``config_fields``;
    ``http`` is a client for token endpoints (no integration's credentials attached).
    """

    name: str
    info: ProviderInfo
    endpoints: Endpoints
    scopes: tuple[str, ...]
    settings: Mapping[str, Any]
    http: ProviderHTTP

    @property
    def client_id(self) -> str | None:
        return self.settings.get("client_id")

    @property
    def client_secret(self) -> str | None:
        return self.settings.get("client_secret")


@dataclass(frozen=True)
class Sandbox:
    """A stand-in for the provider, for trying the hub without real credentials.

    ``app`` is an ``aiohttp.web.Application`` imitating the provider (its consent page a
    real page a person clicks); ``settings`` turns the address it is served at into the
    provider's config section (credentials the fake accepts, and ``urls`` pointing at it).
    """

    app: Any
    settings: Callable[[str], Mapping[str, Any]]


ActionHandler = Callable[["CallContext"], Awaitable[Any]]


@dataclass(frozen=True)
class Deprecation:
    """An operation on its way out (docs/api.md, "Stability policy"): answered with a
    ``Deprecation`` header (RFC 9745) from ``since``, a ``Sunset`` header (RFC 8594) when
    ``sunset`` is set, and a ``Link`` to ``successor`` (a path or URL) when given; the OpenAPI
    operation says ``deprecated: true``."""

    since: date
    sunset: date | None = None
    successor: str = ""


@dataclass(frozen=True)
class Action:
    """One operation a provider offers at ``{method} /api/integrations/<provider>/<path>``.

    ``path`` may carry parameters (``users/{user_id}``); they join the validated input.
    ``input_schema`` is a JSON Schema object: it validates the request (query string for
    GET and DELETE, JSON body otherwise) and feeds the OpenAPI document.
    ``output_schema`` (optional) is a JSON Schema of what the handler returns (the answer's
    ``data``); ``examples`` are inputs, path parameters included, each valid against
    ``input_schema``. Both are checked when the plugin loads; the contract suite of
    ``hub.testing`` calls the action with every example and checks the answer.
    """

    name: str
    method: str
    path: str
    handler: ActionHandler
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    summary: str = ""
    description: str = ""
    # Long work: its activity row is written PENDING before the handler runs, then completed.
    pending: bool = False
    output_schema: Mapping[str, Any] | None = None
    examples: tuple[Mapping[str, Any], ...] = ()
    # Set when the action is on its way out: the answers say so, and so does the document.
    deprecated: Deprecation | None = None

    def __post_init__(self) -> None:
        # A list is the natural way to write them; a tuple keeps the action immutable.
        if isinstance(self.examples, list):
            object.__setattr__(self, "examples", tuple(self.examples))

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(seg[1:-1] for seg in self.path.split("/") if seg.startswith("{") and seg.endswith("}"))


@dataclass
class CallContext:
    """What an action handler receives for one call.

    ``http`` is bound to the provider's API base URL with this integration's credentials
    attached; ``access_token`` is there for the rare provider that needs it in a body.
    ``metadata`` is the connected account as stored (read-only). ``state`` is the plugin's
    own bookkeeping for this integration (a sync cursor, say): changes made through
    :meth:`update_state` and :meth:`remove_state` are saved when the action succeeds, and
    kept across reconnects of the same account; they are merged with what other calls for
    the integration saved meanwhile (docs/plugins.md, "State and calls at once"). ``webhook_url`` is the hub's
    public URL for the provider's webhooks (``hub_webhook``), to register with the provider.
    """

    provider: Provider
    action: Action
    input: dict[str, Any]
    user_id: str
    http: ProviderHTTP
    access_token: str
    metadata: Mapping[str, Any]
    state: Mapping[str, Any] = field(default_factory=dict)
    state_updates: dict[str, Any] = field(default_factory=dict)
    mark_synced: bool = False
    # Where this provider's webhooks reach the hub (public_url + /api/integrations/<name>/webhook),
    # for an action that registers a webhook with the provider.
    webhook_url: str = ""
    # What the handler asked with renew_by(): None for "no renewal", unset for "unchanged".
    renewal: datetime | None = None
    renewal_set: bool = False
    # The state and the renewal deadline as they were when the call started, kept by the core
    # apart from ``state`` (which a plugin may reassign): what its updates are merged against
    # when the row has moved since. None when unknown (a context built by hand): updates are
    # then written as given.
    _state_base: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    _renew_base: datetime | None = field(default=None, repr=False, compare=False)
    # The top-level keys remove_state() asked to remove. Last, and keyword-only, so that a
    # context built with positional arguments means what it did before there was one.
    state_removals: set[str] = field(default_factory=set, kw_only=True)

    def update_state(self, **values: Any) -> None:
        self.state_updates.update(values)
        self.state_removals.difference_update(values)

    def remove_state(self, *keys: str) -> None:
        """Ask the core to remove these top-level keys of ``state`` when the call's state is
        saved (as :meth:`update_state`: only if the call succeeds, merged with what other
        calls saved meanwhile). Of a removal and an update of one key in the same call, the
        later one counts. A key the state lacks is no error."""
        wrong = sorted({type(key).__name__ for key in keys if not isinstance(key, str)})
        if wrong:
            raise TypeError(f"remove_state takes the names of top-level state keys as str, not {', '.join(wrong)}")
        for key in keys:
            self.state_updates.pop(key, None)
        self.state_removals.update(keys)

    def renew_by(self, deadline: datetime | None) -> None:
        """Ask the core to call this plugin's ``hub_renew`` for this integration a while
        (``renewals.ahead_seconds``) before ``deadline`` — when something the plugin set up
        upstream (a push channel) runs out. ``None`` cancels. Saved with the state."""
        if deadline is not None and deadline.tzinfo is None:
            raise ValueError("renew_by needs an aware datetime (UTC)")
        self.renewal, self.renewal_set = deadline, True

"""Integration hub: the public API for provider plugins.

A plugin imports only what is listed in ``__all__``: the hook marker, the value types
that cross the boundary, the typed errors, and the OAuth 2.0 helpers.
"""

from . import _aliases
from .errors import (
    BadRequest,
    GrantRejected,
    HubError,
    MalformedResponse,
    NotFound,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    TokenExpired,
    TransientProviderError,
    ValidationFailed,
    WebhookRejected,
)
from .hookspecs import hookimpl
from .oauth import (
    ErrorKind,
    bearer,
    client_auth_headers,
    parse_token_response,
    provider_error,
    raise_for_status,
    token_request,
)
from .ratelimit import RateLimit
from .types import (
    CLIENT_CREDENTIALS,
    AccountInfo,
    Action,
    AuthorizationRequest,
    CallContext,
    ConfigField,
    Deprecation,
    Endpoints,
    Provider,
    ProviderInfo,
    Sandbox,
    TokenSet,
)
from .upstream import ProviderHTTP, UpstreamResponse
from .webhooks import WebhookAnswer, WebhookEvent, WebhookRequest, WebhookResult, same_digest

__version__ = "0.1.0"

_aliases.install()

__all__ = [
    "CLIENT_CREDENTIALS",
    "AccountInfo",
    "Action",
    "AuthorizationRequest",
    "BadRequest",
    "CallContext",
    "ConfigField",
    "Deprecation",
    "Endpoints",
    "ErrorKind",
    "GrantRejected",
    "HubError",
    "MalformedResponse",
    "NotFound",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHTTP",
    "ProviderInfo",
    "ProviderTimeout",
    "Sandbox",
    "RateLimit",
    "RateLimited",
    "TokenExpired",
    "TokenSet",
    "TransientProviderError",
    "UpstreamResponse",
    "WebhookAnswer",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResult",
    "same_digest",
    "ValidationFailed",
    "bearer",
    "client_auth_headers",
    "hookimpl",
    "parse_token_response",
    "provider_error",
    "raise_for_status",
    "token_request",
]

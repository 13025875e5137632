"""Typed errors: the one way anything in the hub, or in a plugin, reports a failure.

Each class carries the HTTP status and a stable machine-readable ``code``; the web layer
turns any :class:`HubError` into the error envelope by looking the class up once, so a
plugin never thinks about status codes and a new subclass inherits the right mapping.
The lifecycle consequence of a provider failure (ERROR, stay EXPIRED, retry) is also read
off the class, in the core, and nowhere else.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base class. ``message`` is safe to show a client: never put a secret in it."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


# --- the caller's fault --------------------------------------------------------------


class BadRequest(HubError):
    status, code = 400, "bad_request"


class ValidationFailed(BadRequest):
    """Input failed its schema; ``details`` lists ``{"field": "a.b", "problem": "..."}``."""

    code = "validation_error"


class Unauthorized(HubError):
    status, code = 401, "unauthorized"


class NotFound(HubError):
    status, code = 404, "not_found"


class MethodNotAllowed(HubError):
    status, code = 405, "method_not_allowed"

    def __init__(self, message: str, *, allowed: list[str], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.allowed = allowed


class Conflict(HubError):
    """The integration is not in a state that allows the request."""

    status, code = 409, "invalid_state"


class WebhookRejected(HubError):
    """An inbound provider webhook whose signature is missing, wrong, or outside the
    provider's replay window. Plugins raise it from ``hub_webhook``; nothing is stored."""

    status, code = 401, "webhook_rejected"


class PayloadTooLarge(HubError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(HubError):
    status, code = 415, "unsupported_media_type"


class ServiceUnavailable(HubError):
    status, code = 503, "unavailable"


class ProviderNotConfigured(ServiceUnavailable):
    code = "provider_not_configured"


# --- the provider's answer -----------------------------------------------------------


class ProviderError(HubError):
    """The provider refused or failed a call. ``provider_code`` is the provider's own code.

    Plugins raise this (or a subclass) from hooks and action handlers. ``status`` may be
    narrowed by the plugin when the provider's answer is really the caller's mistake (an
    unknown channel is a 404 for the caller, not a 502).
    """

    status, code = 502, "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider_code: str | None = None,
        status: int | None = None,
        details: Any = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, details=details, code=code)
        self.provider_code = provider_code
        if status is not None:
            self.status = status


class ProviderAuthError(ProviderError):
    """The provider no longer accepts the integration's credentials (revoked, invalid).

    The core refreshes once where it can; otherwise the integration moves to ERROR.
    """

    code = "provider_auth_failed"


class TokenExpired(ProviderAuthError):
    """The access token has expired upstream; a refresh may fix it."""

    code = "token_expired"


class GrantRejected(ProviderError):
    """A token request was refused for good (``invalid_grant``, a spent refresh token).

    Reconnecting is the only way out: the integration moves to ERROR.
    """

    code = "reconnect_required"


class TransientProviderError(ProviderError):
    """A failure that says nothing about the credentials: worth retrying later."""

    code = "provider_unavailable"


class RateLimited(TransientProviderError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Throttled(RateLimited):
    """The hub's own request budget for a provider (``RateLimit`` declarations) has no room
    within ``upstream.max_queue_wait``: refused before anything is sent, never retried."""

    code = "throttled"


class ProviderTimeout(TransientProviderError):
    status, code = 504, "provider_timeout"


class MalformedResponse(TransientProviderError):
    code = "provider_bad_response"


class StoredTokenUnreadable(HubError):
    """A stored ciphertext failed authentication (tampered, moved, or its key is gone)."""

    status, code = 409, "token_unreadable"

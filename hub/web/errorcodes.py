"""Every error code the hub answers with: one table, read by the error handler (an unlisted
code never reaches the wire), the OpenAPI document (``ErrorAnswer.error.code`` is an enum
of it) and docs/api.md (its code table is checked against it by tests/test_error_codes.py).

Adding a code is one line in ``CODES``; ``python -m hub.web.errorcodes`` prints the docs
table to paste into docs/api.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Code:
    statuses: tuple[int, ...]
    meaning: str


# Grouped as docs/api.md shows them; within a group, roughly by how often a client meets one.
CODES: dict[str, Code] = {
    # the request
    "bad_request": Code((400,), "the request is malformed in a way no single field explains (a header, a sub-path)"),
    "validation_error": Code((400,), "an input field is missing or wrong: `details.field` names it, `details.problems` lists all"),
    "malformed_json": Code((400,), "the body is not JSON, or nests too deeply"),
    "return_url_not_allowed": Code((400,), "`return_url` is not on `server.allowed_return_urls`"),
    "unauthorized": Code((401,), "no JWT, or one that fails verification (`WWW-Authenticate` says why)"),
    "token_expired": Code((401, 502), "the JWT has expired (or, from a provider, the access token has: a refresh may fix it)"),
    "not_found": Code((404,), "no such route"),
    "unknown_provider": Code((404,), "the provider is not enabled on this hub"),
    "unknown_action": Code((404,), "the provider has no action at this path"),
    "integration_not_found": Code((404,), "the user has no integration with this provider: connect one"),
    "method_not_allowed": Code((405,), "the route does not take this method (`Allow` lists those it does)"),
    "payload_too_large": Code((413,), "the body is over `server.max_body_bytes`"),
    "unsupported_media_type": Code((415,), "a body that is not `application/json`"),
    "cors_refused": Code((403,), "a CORS preflight from an origin, method or header not allowed (`details.field` says which)"),
    "idempotency_key_reused": Code((422,), "the `Idempotency-Key` was used for a different request"),
    "idempotency_key_in_use": Code((409,), "a request with this `Idempotency-Key` is still running"),
    "idempotency_answer_unreadable": Code((409,), "the stored answer for this `Idempotency-Key` cannot be decrypted any more"),
    "proxy_bad_path": Code((400,), "a proxy path that could leave the provider's API base or cannot be sent (`details.field` is `path`)"),
    "proxy_path_not_allowed": Code((403,), "the proxy path is outside the provider's `proxy.path_prefixes`"),
    "proxy_not_enabled": Code((404,), "the proxy is off for this provider (`providers.<name>.proxy.enabled`)"),
    "webhook_rejected": Code((401,), "a provider webhook whose signature is missing or wrong, or outside the replay window; nothing was stored"),
    "webhook_too_large": Code((413,), "a provider webhook body over `server.max_webhook_bytes`, refused before any signature work"),
    "webhooks_not_supported": Code((404,), "the provider's plugin does not receive webhooks"),
    # connecting
    "invalid_state": Code((400, 409), "400: the OAuth `state` is missing, unknown or for another provider; "
                                      "409: the integration's status does not allow the request (`details.allowedTransitions`)"),
    "state_expired": Code((400,), "the OAuth `state` is too old: start again with connect"),
    "state_replayed": Code((400,), "the OAuth `state` was already used"),
    "access_denied": Code((400,), "the user declined the consent screen"),
    "provider_denied": Code((400,), "the provider ended the authorization with an error (`details.providerError`)"),
    "token_rejected": Code((400,), "the provider refused a posted token; nothing was stored"),
    "reconnect_required": Code((409, 502), "the credentials are gone or refused for good: connect again"),
    "no_refresh_token": Code((409,), "the integration has no refresh token to use"),
    "token_unreadable": Code((409,), "the stored token cannot be decrypted (its key is gone): connect again"),
    # connect sessions (docs/connect-sessions.md)
    "direct_connect_disabled": Code((403,), "`connect` is turned off (`security.allow_direct_connect: false`): use a connect session"),
    "connect_session_unknown": Code((404,), "no connect session with this id or link for this user"),
    "connect_session_used": Code((410,), "the connect link was already opened, or its session already connected an account"),
    "connect_session_expired": Code((410,), "the connect session is past `expiresAt`: ask for a new one"),
    "connect_session_cancelled": Code((410,), "the connect session was cancelled (`DELETE`, or the per-user cap)"),
    "connect_session_cookie_missing": Code((401,), "a connect session's flow reached a browser without its cookie (another browser); nothing was stored"),
    "connect_session_cookie_mismatch": Code((401,), "the browser's connect session cookie is not the one the flow was started with; nothing was stored"),
    "provider_not_in_session": Code((400,), "the provider is not one of the connect session's `providers`"),
    "opener_origin_not_allowed": Code((400,), "`opener_origin` is not on `connect_sessions.opener_origins`"),
    # the provider
    "provider_error": Code((400, 403, 404, 409, 410, 422, 502), "the provider failed or refused the call (`details.providerError` "
                                                                  "has its own code)"),
    "provider_rejected_input": Code((400,), "the provider refused the input"),
    "provider_forbidden": Code((403,), "the provider refuses: the resource is not the user's to read or change"),
    "missing_scope": Code((403,), "the grant lacks a scope the call needs: add it to the provider's scopes and reconnect"),
    "provider_not_found": Code((404,), "the provider has no such resource"),
    "provider_conflict": Code((409,), "the provider refuses because of the resource's state"),
    "provider_auth_failed": Code((401, 502), "the provider no longer accepts the integration's credentials"),
    "rate_limited": Code((429,), "the provider's rate limit: retry after `Retry-After` seconds"),
    "throttled": Code((429,), "the hub's own request budget for the provider is spent: retry after `Retry-After` seconds"),
    "provider_unavailable": Code((502,), "the provider failed in a way worth retrying later"),
    "provider_bad_response": Code((502,), "the provider's answer could not be read"),
    "cancelled": Code((502,), "the call was cancelled before it finished (the hub was stopping)"),
    "plugin_error": Code((502,), "the provider's plugin failed; the operator's log has more"),
    "provider_timeout": Code((504,), "the provider did not answer in time"),
    # the hub
    "provider_not_configured": Code((503,), "the provider is enabled but lacks settings (`details.missing`)"),
    "database_unavailable": Code((503,), "the hub's database is unreachable right now (`Retry-After`)"),
    "unavailable": Code((503,), "the hub cannot serve the request right now"),
    "internal_error": Code((500,), "the hub failed unexpectedly; the message has a request id for the operator"),
}


def wire_code(exc: Any) -> tuple[str, Any]:
    """The code to answer ``exc`` (a HubError) with, and its details: its own code when listed,
    else the nearest listed code along its classes (a plugin's ``full_sync_required`` on a
    ProviderError subclass answers ``provider_error``), its own code moving into the details
    (``providerError`` when the plugin named none, else ``info.code``)."""
    code = exc.code
    if code in CODES:
        return code, exc.details
    nearest = next((c for cls in type(exc).__mro__ if (c := cls.__dict__.get("code")) in CODES), "internal_error")
    details = exc.details
    shaped: dict[str, Any] = dict(details) if isinstance(details, dict) else ({"info": details} if details is not None else {})
    if not getattr(exc, "provider_code", None) and "providerError" not in shaped:
        shaped["providerError"] = code
    else:
        info = shaped.get("info")
        shaped["info"] = {**info, "code": code} if isinstance(info, dict) else ({"code": code} if info is None else {"code": code, "value": info})
    return nearest, shaped


def markdown_table() -> str:
    """docs/api.md's code table."""
    rows = ["| code | status | meaning |", "|---|---|---|"]
    rows += [f"| `{code}` | {', '.join(map(str, c.statuses))} | {c.meaning} |" for code, c in CODES.items()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table(), end="")

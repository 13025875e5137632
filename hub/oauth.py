"""The core's default provider hooks: standard OAuth 2.0.

Registered like any plugin, under the name ``hub.oauth``. When a provider plugin leaves a
hook out, the core calls the implementation here instead: authorization code with PKCE
S256 (RFC 6749 §4.1, RFC 7636), refresh (RFC 6749 §6), revocation (RFC 7009), OpenID
Connect userinfo for identity, Bearer credentials (RFC 6750). A provider that speaks plain
OAuth 2.0 therefore supplies only its :class:`hub.Endpoints` and its actions.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl, quote_plus, urlencode

from .errors import (
    GrantRejected,
    MalformedResponse,
    ProviderAuthError,
    ProviderError,
    ProviderNotConfigured,
    RateLimited,
    TokenExpired,
    TransientProviderError,
)
from .hookspecs import hookimpl
from .types import AccountInfo, AuthorizationRequest, ClientAuth, Provider, ProviderInfo, TokenSet
from .upstream import UpstreamResponse

# Keys of a token answer that are credentials, never kept in ``TokenSet.raw``.
SECRET_TOKEN_KEYS = frozenset({"access_token", "refresh_token", "id_token", "code", "client_secret"})

# What a provider's failure means for the caller; provider_error builds the typed error.
ErrorKind = Literal["auth", "expired", "grant", "rate_limited", "not_found", "bad_input", "forbidden", "conflict", "transient", "error"]
STANDARD_KINDS: Mapping[int, ErrorKind] = {401: "auth", 404: "not_found", 400: "bad_input", 422: "bad_input", 429: "rate_limited"}
# RFC 6749 §4.1.2.1 codes that say "later", not "never", when a token endpoint reports them.
_TRANSIENT_TOKEN_ERRORS = frozenset({"temporarily_unavailable", "server_error", "ratelimited", "rate_limited", "slow_down"})


@hookimpl(trylast=True)
def hub_authorization_url(provider: Provider, request: AuthorizationRequest) -> str:
    if not provider.endpoints.authorize:
        raise ProviderNotConfigured(f"{provider.name} has no authorize URL")
    query: dict[str, str] = {
        "response_type": "code",
        "client_id": provider.client_id or "",
        "redirect_uri": request.redirect_uri,
        "state": request.state,
    }
    if request.scopes:
        query["scope"] = provider.info.scope_separator.join(request.scopes)
    if request.code_challenge:
        query["code_challenge"] = request.code_challenge
        query["code_challenge_method"] = request.code_challenge_method or "S256"
    # Declared extras never replace what the flow itself depends on.
    query.update({k: str(v) for k, v in provider.info.authorize_params.items() if k not in query})
    return _with_query(provider.endpoints.authorize, query)


@hookimpl(trylast=True)
async def hub_exchange_code(
    provider: Provider, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    return parse_token_response(provider, await token_request(provider, form))


@hookimpl(trylast=True)
async def hub_import_token(provider: Provider, token: str) -> TokenSet:
    return TokenSet(access_token=token)


@hookimpl(trylast=True)
async def hub_refresh_token(provider: Provider, token: TokenSet) -> TokenSet:
    if not token.refresh_token:
        raise GrantRejected(f"{provider.info.title} gave no refresh token: reconnect required")
    form = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
    return parse_token_response(provider, await token_request(provider, form))


@hookimpl(trylast=True)
async def hub_revoke_token(provider: Provider, token: TokenSet) -> None:
    if not provider.endpoints.revoke:
        return
    # Revoking the refresh token ends the whole grant where the server supports it.
    value, hint = (token.refresh_token, "refresh_token") if token.refresh_token else (token.access_token, "access_token")
    form, headers = _client_auth(provider, {"token": value, "token_type_hint": hint}, None)
    response = await provider.http.post(provider.endpoints.revoke, data=form, headers=headers, check=False)
    # RFC 7009 §2.2: an unknown or already-invalid token is still a 200; only a refusal
    # of the request itself is worth reporting.
    if response.status >= 400:
        raise_for_status(response)


@hookimpl(trylast=True)
async def hub_account_identity(provider: Provider, token: TokenSet) -> AccountInfo:
    if not provider.endpoints.userinfo:
        return AccountInfo(id="")
    response = await provider.http.get(provider.endpoints.userinfo, headers=bearer(token))
    body = response.json()
    if not isinstance(body, Mapping) or "sub" not in body:
        raise MalformedResponse(f"{provider.info.title} userinfo answer has no 'sub'")
    return AccountInfo(id=str(body["sub"]), name=body.get("name"), email=body.get("email"))


@hookimpl(trylast=True)
def hub_auth_headers(provider: Provider, token: TokenSet) -> dict[str, str]:
    return bearer(token)


@hookimpl(trylast=True)
def hub_check_response(provider: Provider, response: UpstreamResponse) -> None:
    raise_for_status(response, info=provider.info)


# --- helpers, exported for plugins ---------------------------------------------------


def bearer(token: TokenSet) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.access_token}"}


def raise_for_status(
    response: UpstreamResponse,
    *,
    provider_code: str | None = None,
    message: str | None = None,
    kinds: Mapping[int, ErrorKind] | None = None,
    info: ProviderInfo | None = None,
) -> None:
    """Map an HTTP failure to the hub's typed errors (the default response check).

    The provider's code and message are read from the common error-body shapes unless
    ``provider_code`` / ``message`` are given (``message`` replaces the whole text).
    ``kinds`` maps more statuses, or other ones, to an :data:`ErrorKind` (Google: 403 →
    ``"forbidden"``). With ``info`` declaring rate-limit headers, a 403 or 429 whose
    remaining budget is 0 is :class:`RateLimited`, its wait read off the reset header.
    """
    status = response.status
    if status < 400:
        return
    found_code, detail = _error_fields(response)
    code = provider_code if provider_code is not None else found_code
    name = response.provider
    kind = {**STANDARD_KINDS, **(kinds or {})}.get(status)
    wait = response.retry_after()
    spent = _budget_spent(response, info)
    if spent is not None and status in (403, 429):
        kind, wait = "rate_limited", wait if wait is not None else spent
    if kind is None and status >= 500:
        kind = "transient"
    suffix = f": {detail}" if detail else ""
    text = message or {
        "rate_limited": f"{name} is rate limiting requests",
        "transient": f"{name} failed with HTTP {status}{suffix}",
        "auth": f"{name} rejected the credentials{suffix}",
        "not_found": f"{name} found no such resource{suffix}",
        "bad_input": f"{name} rejected the request{suffix}",
    }.get(kind or "", f"{name} refused the request with HTTP {status}{suffix}")
    raise provider_error(kind or "error", text, provider_code=code, retry_after=wait)


def provider_error(kind: ErrorKind, message: str, *, provider_code: str | None = None, retry_after: float | None = None) -> ProviderError:
    """The typed error for a provider's failure of ``kind``, with the status and code the
    core's table gives it (docs/plugins.md, "Errors"): return it, or raise it."""
    if kind == "rate_limited":
        return RateLimited(message, retry_after=retry_after, provider_code=provider_code)
    if kind == "auth":
        return ProviderAuthError(message, provider_code=provider_code)
    if kind == "expired":
        return TokenExpired(message, provider_code=provider_code)
    if kind == "grant":
        return GrantRejected(message, provider_code=provider_code)
    if kind == "transient":
        return TransientProviderError(message, provider_code=provider_code)
    narrowed = {
        "not_found": (404, "provider_not_found"),
        "bad_input": (400, "provider_rejected_input"),
        "forbidden": (403, "provider_forbidden"),
        "conflict": (409, "provider_conflict"),
    }.get(kind)
    if narrowed is None:
        return ProviderError(message, provider_code=provider_code)
    return ProviderError(message, provider_code=provider_code, status=narrowed[0], code=narrowed[1])


async def token_request(
    provider: Provider,
    form: Mapping[str, str],
    *,
    accept: str | None = None,
    client_auth: ClientAuth | None = None,
    errors_in_body: bool | None = None,
) -> Mapping[str, Any]:
    """POST to the token endpoint and classify the failure the way the lifecycle needs it.

    A 4xx other than 429 is a refusal (:class:`GrantRejected`), and so is an ``error`` in a
    200 answer when the provider reports errors that way; 429, 5xx, no answer and a body
    that is neither a JSON object nor a form-encoded one are transient. The keyword options
    override the provider's declarations (``ProviderInfo.token_accept``, ``client_auth``,
    ``token_errors_in_body``).
    """
    if not provider.endpoints.token:
        raise ProviderNotConfigured(f"{provider.name} has no token URL")
    info = provider.info
    accept = accept if accept is not None else info.token_accept
    data, headers = _client_auth(provider, form, client_auth)
    if accept:
        headers["Accept"] = accept
    response = await provider.http.post(provider.endpoints.token, data=data, headers=headers, check=False, retry=False)
    status = response.status
    if status == 429 or status >= 500:
        raise_for_status(response)
    if status >= 400:
        code, detail = _error_fields(response)
        raise _refused(provider, code or str(status), detail)
    body = _token_body(response)
    if body is None:
        raise MalformedResponse(f"{info.title} token answer is not a JSON object")
    in_body = errors_in_body if errors_in_body is not None else info.token_errors_in_body
    error = body.get("error") if in_body else None
    if error and not body.get("access_token"):
        code = str(error)[:100]
        detail = _str(body.get("error_description"))
        if code in _TRANSIENT_TOKEN_ERRORS:
            kind: ErrorKind = "rate_limited" if "rate" in code or code == "slow_down" else "transient"
            raise provider_error(kind, f"{info.title} could not answer the token request ({code})", provider_code=code, retry_after=response.retry_after())
        raise _refused(provider, code, detail)
    return body


def _refused(provider: Provider, code: str, detail: str | None) -> GrantRejected:
    return GrantRejected(f"{provider.info.title} refused the token request ({code}){': ' + detail if detail else ''}", provider_code=code)


def _token_body(response: UpstreamResponse) -> Mapping[str, Any] | None:
    """A token answer as a mapping: JSON, or form-encoded (GitHub's answer without an
    ``Accept: application/json``)."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(response.text, keep_blank_values=True))
    body = response.json()
    return body if isinstance(body, Mapping) else None


def _client_auth(provider: Provider, form: Mapping[str, str], style: ClientAuth | None) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers with the client's credentials in the declared place."""
    style = style or provider.info.client_auth
    data = dict(form)
    if style == "form":
        if provider.client_id:
            data.setdefault("client_id", provider.client_id)
        if provider.client_secret:
            data.setdefault("client_secret", provider.client_secret)
        return data, {}
    return data, client_auth_headers(provider)


def _budget_spent(response: UpstreamResponse, info: ProviderInfo | None) -> float | None:
    """Seconds until the provider's budget resets when its remaining-header says 0 (10 s
    when it names no reset), else ``None``."""
    if info is None or not info.rate_limit_remaining_header:
        return None
    if response.headers.get(info.rate_limit_remaining_header, "").strip() != "0":
        return None
    reset = response.headers.get(info.rate_limit_reset_header or "", "").strip()
    try:
        value = float(reset)
    except ValueError:
        return 10.0
    # Epoch seconds (GitHub's x-ratelimit-reset) or a number of seconds (others).
    return max(0.0, value - time.time()) if value > 1_000_000_000 else max(0.0, value)


def parse_token_response(
    provider: Provider, body: Mapping[str, Any], *, now: datetime | None = None, scope_separator: str | None = None
) -> TokenSet:
    """Read an RFC 6749 §5.1 token answer into a :class:`TokenSet`.

    ``scope`` is split on ``scope_separator`` when given, else on commas and whitespace
    alike; ``raw`` keeps the rest of the answer minus credentials and the provider's
    declared secret keys.
    """
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise MalformedResponse(f"{provider.info.title} token answer has no access_token")
    expires_at = None
    expires_in = body.get("expires_in")
    if expires_in is not None:
        try:
            expires_at = (now or datetime.now(timezone.utc)) + timedelta(seconds=float(expires_in))
        except (TypeError, ValueError):
            raise MalformedResponse(f"{provider.info.title} token answer has a bad expires_in") from None
    scope = body.get("scope")
    if not scope:
        scopes: tuple[str, ...] = ()
    elif scope_separator:
        scopes = tuple(s.strip() for s in str(scope).split(scope_separator) if s.strip())
    else:
        scopes = tuple(s for s in str(scope).replace(",", " ").split() if s)
    hidden = SECRET_TOKEN_KEYS | {k.lower() for k in provider.info.secret_keys}
    refresh = body.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        scopes=scopes,
        token_type=str(body.get("token_type") or "Bearer"),
        raw={k: v for k, v in body.items() if k.lower() not in hidden},
    )


def client_auth_headers(provider: Provider) -> dict[str, str]:
    """HTTP Basic client authentication (RFC 6749 §2.3.1, which servers must accept):
    id and secret are form-encoded first, then joined and base64-encoded."""
    if not (provider.client_id and provider.client_secret):
        return {}
    pair = f"{quote_plus(provider.client_id)}:{quote_plus(provider.client_secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def _error_fields(response: UpstreamResponse) -> tuple[str | None, str | None]:
    """Pull a short code and message out of the common error-body shapes."""
    try:
        body = response.json()
    except MalformedResponse:
        text = response.text.strip()
        return None, text[:200] if text and len(text) < 300 and "<" not in text else None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):  # Google style: {"error": {"code", "message", "status"}}
            return _str(err.get("status") or err.get("code")), _str(err.get("message"))
        return _str(err), _str(body.get("error_description") or body.get("message"))
    return None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)[:300]


def _with_query(url: str, query: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"


__all__ = ["ErrorKind", "bearer", "client_auth_headers", "parse_token_response", "provider_error", "raise_for_status", "token_request"]


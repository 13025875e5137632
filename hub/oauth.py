"""The core's default provider hooks: standard OAuth 2.0.

Registered like any plugin, under the name ``hub.oauth``. When a provider plugin leaves a
hook out, the core calls the implementation here instead: authorization code with PKCE
S256 (RFC 6749 §4.1, RFC 7636), refresh (RFC 6749 §6), revocation (RFC 7009), OpenID
Connect userinfo for identity, Bearer credentials (RFC 6750). A provider that speaks plain
OAuth 2.0 therefore supplies only its :class:`hub.Endpoints` and its actions.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote_plus, urlencode

from .errors import (
    GrantRejected,
    MalformedResponse,
    ProviderAuthError,
    ProviderError,
    ProviderNotConfigured,
    RateLimited,
    TransientProviderError,
)
from .hookspecs import hookimpl
from .types import AccountInfo, AuthorizationRequest, Provider, TokenSet
from .upstream import UpstreamResponse

# Keys of a token answer that are credentials, never kept in ``TokenSet.raw``.
SECRET_TOKEN_KEYS = frozenset({"access_token", "refresh_token", "id_token", "code", "client_secret"})


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
    response = await provider.http.post(
        provider.endpoints.revoke,
        data={"token": value, "token_type_hint": hint},
        headers=client_auth_headers(provider),
        check=False,
    )
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
    raise_for_status(response)


# --- helpers, exported for plugins ---------------------------------------------------


def bearer(token: TokenSet) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.access_token}"}


def raise_for_status(response: UpstreamResponse) -> None:
    """Map an HTTP failure to the hub's typed errors (the default response check)."""
    status = response.status
    if status < 400:
        return
    name = response.provider
    provider_code, detail = _error_fields(response)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        raise RateLimited(f"{name} is rate limiting requests", retry_after=response.retry_after(), provider_code=provider_code)
    if status >= 500:
        raise TransientProviderError(f"{name} failed with HTTP {status}{suffix}", provider_code=provider_code)
    if status == 401:
        raise ProviderAuthError(f"{name} rejected the credentials{suffix}", provider_code=provider_code)
    if status == 404:
        raise ProviderError(f"{name} found no such resource{suffix}", provider_code=provider_code, status=404, code="provider_not_found")
    if status in (400, 422):
        raise ProviderError(f"{name} rejected the request{suffix}", provider_code=provider_code, status=400, code="provider_rejected_input")
    raise ProviderError(f"{name} refused the request with HTTP {status}{suffix}", provider_code=provider_code)


async def token_request(provider: Provider, form: Mapping[str, str]) -> Mapping[str, Any]:
    """POST to the token endpoint and classify the failure the way the lifecycle needs it.

    A 4xx other than 429 is a refusal (:class:`GrantRejected`); 429, 5xx, no answer and a
    body that is not a JSON object are transient.
    """
    if not provider.endpoints.token:
        raise ProviderNotConfigured(f"{provider.name} has no token URL")
    response = await provider.http.post(
        provider.endpoints.token, data=dict(form), headers=client_auth_headers(provider), check=False, retry=False
    )
    status = response.status
    if status == 429 or status >= 500:
        raise_for_status(response)
    if status >= 400:
        code, detail = _error_fields(response)
        raise GrantRejected(
            f"{provider.info.title} refused the token request ({code or status}){': ' + detail if detail else ''}",
            provider_code=code,
        )
    body = response.json()
    if not isinstance(body, Mapping):
        raise MalformedResponse(f"{provider.info.title} token answer is not a JSON object")
    return body


def parse_token_response(provider: Provider, body: Mapping[str, Any], *, now: datetime | None = None) -> TokenSet:
    """Read an RFC 6749 §5.1 token answer into a :class:`TokenSet`."""
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
    scopes = tuple(s for s in str(scope).replace(",", " ").split() if s) if scope else ()
    refresh = body.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
        scopes=scopes,
        token_type=str(body.get("token_type") or "Bearer"),
        raw={k: v for k, v in body.items() if k not in SECRET_TOKEN_KEYS},
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


__all__ = ["bearer", "client_auth_headers", "parse_token_response", "raise_for_status", "token_request"]


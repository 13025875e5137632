"""The OAuth 2.0 side of :class:`hub.testing.FakeProvider`: the consent page's two halves,
the token, revoke and identity endpoints, and the hooks through which a provider's fake
changes their shape. :class:`FakeProvider` adds serving, recording, switches and state."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from ._parts import (
    CONSENT_FIELDS,
    FakeCall,
    FakeToken,
    Grant,
    add_query,
    basic_credentials,
    consent_page,
    error_page,
    new_secret,
    split_scopes,
)

# The request being answered, as recorded (each request runs in its own task, so its own context).
CURRENT: contextvars.ContextVar[FakeCall] = contextvars.ContextVar("hub_testing_fake_call")


class OAuthServer:
    """OAuth 2.0 endpoints over the fake's records; see :class:`hub.testing.FakeProvider`."""

    title = "Fake Provider"
    paths: ClassVar[dict[str, str | None]] = {}
    consent_fields: tuple[str, ...] = CONSENT_FIELDS
    client_id: str
    client_secret: str
    answers: str
    client_auth: str
    errors_in_body: bool
    scope_separator: str
    expires_in: int | None
    rotate_refresh: bool
    code_lifetime: float
    account: dict[str, Any]
    clock: Callable[[], float]
    codes: dict[str, Grant]
    tokens: dict[str, FakeToken]
    issued: list[str]

    def require_token(self, request: web.Request) -> FakeToken:  # defined by FakeProvider
        raise NotImplementedError

    @staticmethod
    def current_call() -> FakeCall:
        """The recorded form of the request being answered (its ``form`` and ``json`` already read)."""
        return CURRENT.get()

    def mint(self, kind: str, account: dict[str, Any], scope: str, *, grant: str = "", expires_in: int | None = None, **extra: Any) -> FakeToken:
        """Issue and remember one token (``kind`` ``"access"`` or ``"refresh"``) whose value comes
        from :meth:`new_token_value`; ``expires_in`` seconds from now, or never."""
        expires_at = self.clock() + expires_in if expires_in is not None else None
        token = FakeToken(self.new_token_value(kind, extra), kind, account, scope, expires_at, grant=grant, extra=extra)
        self.tokens[token.value] = token
        self.issued.append(token.value)
        return token

    # ------------------------------------------------------------------ hooks a subclass may override

    def authorize_problem(self, params: dict[str, str]) -> str | None:
        """Why the authorization request cannot be shown (an error page), or None."""
        if params.get("client_id") != self.client_id:
            return "invalid_client"
        if not params.get("redirect_uri"):
            return "redirect_uri_missing"
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") != "S256":
            return "unsupported_code_challenge_method"
        return None

    def consent_answer(self, params: dict[str, str], action: str) -> web.Response:
        """The consent page: its form posts the ``consent_fields`` and a ``decision`` to ``action``."""
        return consent_page(self.title, params, action, fields=self.consent_fields, separator=self.scope_separator)

    def refusal_answer(self, problem: str) -> web.Response:
        """What the browser gets instead of the consent page when :meth:`authorize_problem` objects."""
        return error_page(problem)

    def approve(self, params: dict[str, str]) -> str:
        """Where Allow sends the browser: by default ``redirect_uri`` with a new code and the state."""
        code = new_secret("fake-code")
        extra = {k: v for k, v in params.items() if k not in self.consent_fields and k != "decision"}
        self.codes[code] = Grant(params["redirect_uri"], params.get("scope", ""), params.get("code_challenge") or None, self.clock(), extra=extra)
        self.issued.append(code)
        return add_query(params["redirect_uri"], code=code, state=params.get("state", ""))

    def deny(self, params: dict[str, str]) -> str:
        """Where Deny sends the browser."""
        return add_query(params["redirect_uri"], error="access_denied", state=params.get("state", ""))

    def new_token_value(self, kind: str, extra: dict[str, Any]) -> str:
        """A new token's value; override for the provider's token shapes (keep them obviously fake)."""
        return new_secret(f"fake-{kind}")

    def account_for(self, grant: Grant) -> dict[str, Any]:
        """The identity a code's tokens speak for."""
        return dict(self.account)

    def token_answer(self, access: FakeToken, refresh: FakeToken | None, scope: str) -> dict[str, Any]:
        """The body of a successful token answer."""
        body: dict[str, Any] = {"access_token": access.value, "token_type": "Bearer", "scope": scope}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        if access.expires_at is not None:
            body["expires_in"] = round(access.expires_at - self.clock())
        return body

    def token_error(self, code: str, status: int = 400) -> web.Response:
        """An error of the token or revoke endpoint (``invalid_grant``, ``invalid_client``, ...)."""
        return self._answer({"error": code, "error_description": code.replace("_", " ")}, 200 if self.errors_in_body else status)

    def fault_answer(self, status: int, body: Any) -> web.Response:
        """What :meth:`fail_next` answers."""
        if isinstance(body, str):
            return web.Response(text=body, status=status)
        return web.json_response(body if body is not None else {"error": "server_error"}, status=status)

    def rate_limit_answer(self, retry_after: int) -> web.Response:
        """What :meth:`rate_limit_next` answers."""
        return web.json_response({"error": "rate_limited"}, status=429, headers={"Retry-After": str(retry_after)})

    # ------------------------------------------------------------------ the browser's side

    async def _consent(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        problem = self.authorize_problem(params)
        if problem:
            return self.refusal_answer(problem)
        return self.consent_answer(params, request.path)

    async def _decision(self, request: web.Request) -> web.Response:
        form = CURRENT.get().form
        problem = self.authorize_problem(form)
        if problem:
            return self.refusal_answer(problem)
        raise web.HTTPFound(self.approve(form) if form.get("decision") == "allow" else self.deny(form))

    # ------------------------------------------------------------------ token, revoke, identity

    async def _token(self, request: web.Request) -> web.Response:
        form = CURRENT.get().form
        if not self._client_ok(request, form):
            return self.token_error("invalid_client", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return self.token_error("unsupported_grant_type")

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        basic = basic_credentials(request.headers.get("Authorization", ""))
        if basic is not None and self.client_auth != "form":
            given = basic
        elif "client_secret" in form and self.client_auth != "basic":
            given = (form.get("client_id", ""), form["client_secret"])
        else:
            return False
        return hmac.compare_digest(given[0], self.client_id) and hmac.compare_digest(given[1], self.client_secret)

    def _exchange(self, form: dict[str, str]) -> web.Response:
        code = form.get("code", "")
        grant = self.codes.get(code)
        if grant is None or grant.used or self.clock() - grant.issued_at > self.code_lifetime:
            return self.token_error("invalid_grant")
        grant.used = True  # spent even when the rest of the request is wrong, as RFC 6749 §4.1.2 asks
        if form.get("redirect_uri") != grant.redirect_uri:
            return self.token_error("invalid_grant")
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if not verifier or not hmac.compare_digest(digest, grant.challenge):
                return self.token_error("invalid_grant")
        return self._issue(grant.scope, self.account_for(grant), hashlib.sha256(code.encode()).hexdigest()[:16])

    def _refresh(self, form: dict[str, str]) -> web.Response:
        old = self.tokens.get(form.get("refresh_token", ""))
        if old is None or old.kind != "refresh" or not old.usable(self.clock()):
            return self.token_error("invalid_grant")
        if self.rotate_refresh:
            old.spent = True
        return self._issue(old.scope, old.account, old.grant, keep=None if self.rotate_refresh else old)

    def _issue(self, scope: str, account: dict[str, Any], grant: str, keep: FakeToken | None = None) -> web.Response:
        access = self.mint("access", account, scope, grant=grant, expires_in=self.expires_in)
        refresh = keep or self.mint("refresh", account, scope, grant=grant)
        scope = self.scope_separator.join(split_scopes(scope, " "))
        return self._answer(self.token_answer(access, refresh, scope))

    def _answer(self, body: dict[str, Any], status: int = 200) -> web.Response:
        style = self.answers
        if style == "accept":  # form-encoded unless the client asks for JSON, as GitHub answers
            style = "json" if "application/json" in CURRENT.get().headers.get("Accept", "") else "form"
        if style == "form":
            return web.Response(text=urlencode(body), status=status, content_type="application/x-www-form-urlencoded")
        return web.json_response(body, status=status)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = CURRENT.get().form
        if not self._client_ok(request, form):
            return self.token_error("invalid_client", 401)
        # RFC 7009 §2.2: an unknown token is not an error; a refresh token ends its whole grant.
        token = self.tokens.get(form.get("token", ""))
        if token is not None:
            token.revoked = True
            if token.kind == "refresh" and token.grant:
                for other in self.tokens.values():
                    other.revoked = other.revoked or other.grant == token.grant
        return web.Response(status=200)

    async def _userinfo(self, request: web.Request) -> web.Response:
        return web.json_response(self.require_token(request).account)


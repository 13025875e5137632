"""A fake OAuth 2.0 provider to build a plugin's fake on: see :class:`FakeProvider`."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

from aiohttp import web

from ._control import add_control_routes
from ._parts import (
    CONSENT_FIELDS,
    FakeCall,
    FakeToken,
    Grant,
    add_query,
    basic_credentials,
    consent_page,
    error_page,
    load_state,
    new_secret,
    record,
    split_scopes,
    state_of,
)

__all__ = ["FakeCall", "FakeProvider", "FakeToken", "Grant"]

# The request being answered, as recorded (each request runs in its own task, so its own context).
_CURRENT: contextvars.ContextVar[FakeCall] = contextvars.ContextVar("hub_testing_fake_call")

Answers = Literal["json", "form", "accept"]


class FakeProvider:
    """An OAuth 2.0 provider on loopback: consent page, token, revoke and identity endpoints,
    request recording, fault switches (from Python and from control routes) and a state the
    sandbox keeps across restarts. Subclass it and override :meth:`add_routes` to serve the
    provider's API under ``api_path``; guard those routes with :meth:`require_token`. The token
    endpoint's manners are constructor arguments; a provider whose answers differ in shape
    overrides the hooks in the "hooks" section below."""

    title = "Fake Provider"
    api_path = "/api"
    # Where the OAuth endpoints are served; a subclass may move any (or set it to None to drop it).
    paths: ClassVar[dict[str, str | None]] = {
        "authorize": "/oauth/authorize",
        "token": "/oauth/token",
        "revoke": "/oauth/revoke",
        "userinfo": "/userinfo",
    }
    control_path = "/_fake"  # the control routes; None serves none
    consent_fields: tuple[str, ...] = CONSENT_FIELDS  # authorize parameters the consent form carries on

    def __init__(
        self,
        client_id: str = "test-client",
        client_secret: str = "test-client-secret",
        *,
        answers: Answers = "json",
        client_auth: Literal["basic", "form", "any"] = "any",
        errors_in_body: bool = False,
        scope_separator: str = " ",
        expires_in: int | None = 3600,
        rotate_refresh: bool = True,
        code_lifetime: float = 600,
        account: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.answers, self.client_auth, self.errors_in_body = answers, client_auth, errors_in_body
        self.scope_separator = scope_separator
        self.expires_in, self.rotate_refresh, self.code_lifetime = expires_in, rotate_refresh, code_lifetime
        self.account: dict[str, Any] = account or {"sub": "user-1", "name": "Test User", "email": "user@example.com"}
        self.delay = delay  # seconds each answer waits after it is worked out: a slow provider
        self.clock: Callable[[], float] = time.time
        self.calls: list[FakeCall] = []
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.issued: list[str] = []  # every code and token handed out, for secret scans
        self.base_url = ""
        self._faults: deque[tuple[str | None, Callable[[], web.StreamResponse]]] = deque()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ serving

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        handlers = {"token": self._token, "revoke": self._revoke}
        if self.paths.get("authorize"):
            app.router.add_get(self.paths["authorize"], self._consent)
            app.router.add_post(self.paths["authorize"], self._decision)
        for name, handler in handlers.items():
            if self.paths.get(name):
                app.router.add_post(self.paths[name], handler)
        if self.paths.get("userinfo"):
            app.router.add_get(self.paths["userinfo"], self._userinfo)
        if self.control_path:
            add_control_routes(self, app, self.control_path)
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        """Add the provider's API routes (under ``self.api_path``); the base adds none."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback; returns (and keeps in ``base_url``) the root URL."""
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{host}:{bound[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def hub_settings(self, base_url: str | None = None) -> dict[str, Any]:
        """The hub's provider section pointing at this fake: client credentials and ``urls`` overrides."""
        base = base_url or self.base_url
        urls = {name: f"{base}{path}" for name, path in self.paths.items() if path}
        return {"client_id": self.client_id, "client_secret": self.client_secret, "urls": {**urls, "api": f"{base}{self.api_path}"}}

    # ------------------------------------------------------------------ state, for the sandbox

    def export_state(self) -> dict[str, Any]:
        """What the fake issued (codes, tokens), as JSON data; a subclass adds its own data with
        ``{**super().export_state(), ...}``. The sandbox saves it and loads it at the next start."""
        return state_of(self.codes, self.tokens, self.issued)

    def import_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`export_state` returned."""
        self.codes, self.tokens, self.issued = load_state(state)

    # ------------------------------------------------------------------ inspection and switches

    def calls_to(self, path: str, method: str | None = None) -> list[FakeCall]:
        """Recorded requests whose path starts with ``path`` (and of ``method``, if given)."""
        return [c for c in self.calls if c.path.startswith(path) and (method is None or c.method == method.upper())]

    def fail_next(self, status: int, body: Any = None, *, path: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) with ``status`` and ``body``:
        JSON, or plain text when ``body`` is a string."""
        self._queue(path, count, lambda: self.fault_answer(status, body))

    def rate_limit_next(self, count: int = 1, retry_after: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) as the provider refuses a
        request over its rate limit (by default 429 with ``Retry-After: retry_after``)."""
        self._queue(path, count, lambda: self.rate_limit_answer(retry_after))

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now; refresh tokens stay good."""
        for token in self.tokens.values():
            if token.kind == "access":
                token.expires_at = self.clock() - 1

    def revoke_all(self) -> None:
        """Every token issued so far, access and refresh, is revoked."""
        for token in self.tokens.values():
            token.revoked = True

    def require_token(self, request: web.Request) -> FakeToken:
        """The usable access token of a ``Bearer`` request, else raise the provider's 401."""
        header = request.headers.get("Authorization", "")
        token = self.tokens.get(header[7:].strip()) if header[:7].lower() == "bearer " else None
        if token is None or token.kind != "access" or not token.usable(self.clock()):
            raise web.HTTPUnauthorized(
                text='{"error": "invalid_token"}',
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return token

    @staticmethod
    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """A JSON answer for a route of :meth:`add_routes`, so a fake needs no aiohttp import."""
        return web.json_response(body, status=status, headers=headers)

    @staticmethod
    def current_call() -> FakeCall:
        """The recorded form of the request being answered (its ``form`` and ``json`` already read)."""
        return _CURRENT.get()

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

    # ------------------------------------------------------------------ plumbing

    def _queue(self, path: str | None, count: int, answer: Callable[[], web.StreamResponse]) -> None:
        self._faults.extend([(path, answer)] * count)

    def _controlled(self, path: str) -> bool:
        return bool(self.control_path) and path.startswith(f"{self.control_path}/")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._controlled(request.path):
            return await handler(request)
        call = await record(request)
        self.calls.append(call)
        _CURRENT.set(call)
        answer = self._take_fault(request.path) or await handler(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return answer

    def _take_fault(self, path: str) -> web.StreamResponse | None:
        if path == self.paths.get("authorize"):  # the browser's page is never a switch's target
            return None
        for i, (prefix, answer) in enumerate(self._faults):
            if prefix is None or path.startswith(prefix):
                del self._faults[i]
                return answer()
        return None

    # ------------------------------------------------------------------ the browser's side

    async def _consent(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        problem = self.authorize_problem(params)
        if problem:
            return error_page(problem)
        return consent_page(self.title, params, request.path, fields=self.consent_fields, separator=self.scope_separator)

    async def _decision(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
        problem = self.authorize_problem(form)
        if problem:
            return error_page(problem)
        raise web.HTTPFound(self.approve(form) if form.get("decision") == "allow" else self.deny(form))

    # ------------------------------------------------------------------ token, revoke, identity

    async def _token(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
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
            style = "json" if "application/json" in _CURRENT.get().headers.get("Accept", "") else "form"
        if style == "form":
            return web.Response(text=urlencode(body), status=status, content_type="application/x-www-form-urlencoded")
        return web.json_response(body, status=status)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
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

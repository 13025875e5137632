"""A fake OAuth 2.0 provider to build a plugin's fake on: see :class:`FakeProvider`."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

from ._parts import FakeCall, FakeToken, Grant, add_query, basic_credentials, consent_page, error_page, new_secret, record

__all__ = ["FakeCall", "FakeProvider", "FakeToken"]

# The browser's pages are never the target of a fault switch: a switch is about the API.
_PAGES = ("/oauth/authorize",)
# The request being answered, as recorded (each request runs in its own task, so its own context).
_CURRENT: contextvars.ContextVar[FakeCall] = contextvars.ContextVar("hub_testing_fake_call")


class FakeProvider:
    """An OAuth 2.0 provider on loopback: consent page, token, revoke and identity endpoints,
    request recording and fault switches. Subclass it and override :meth:`add_routes` to
    serve the provider's API under ``api_path``; guard those routes with
    :meth:`require_token`. The token endpoint's manners are constructor arguments."""

    title = "Fake Provider"
    api_path = "/api"

    def __init__(
        self,
        client_id: str = "test-client",
        client_secret: str = "test-client-secret",
        *,
        answers: Literal["json", "form"] = "json",
        client_auth: Literal["basic", "form", "any"] = "any",
        errors_in_body: bool = False,
        expires_in: int | None = 3600,
        rotate_refresh: bool = True,
        code_lifetime: float = 600,
        account: dict[str, Any] | None = None,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.answers, self.client_auth, self.errors_in_body = answers, client_auth, errors_in_body
        self.expires_in, self.rotate_refresh, self.code_lifetime = expires_in, rotate_refresh, code_lifetime
        self.account: dict[str, Any] = account or {"sub": "user-1", "name": "Test User", "email": "user@example.com"}
        self.clock: Callable[[], float] = time.time
        self.calls: list[FakeCall] = []
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.issued: list[str] = []  # every code and token handed out, for secret scans
        self.base_url = ""
        self._faults: deque[tuple[str | None, Callable[[], web.Response]]] = deque()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ serving

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/oauth/authorize", self._consent)
        app.router.add_post("/oauth/authorize", self._decision)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_post("/oauth/revoke", self._revoke)
        app.router.add_get("/userinfo", self._userinfo)
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
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "urls": {
                "authorize": f"{base}/oauth/authorize",
                "token": f"{base}/oauth/token",
                "revoke": f"{base}/oauth/revoke",
                "userinfo": f"{base}/userinfo",
                "api": f"{base}{self.api_path}",
            },
        }

    # ------------------------------------------------------------------ inspection and switches

    def calls_to(self, path: str, method: str | None = None) -> list[FakeCall]:
        """Recorded requests whose path starts with ``path`` (and of ``method``, if given)."""
        return [c for c in self.calls if c.path.startswith(path) and (method is None or c.method == method.upper())]

    def fail_next(self, status: int, body: Any = None, *, path: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) with ``status`` and a JSON ``body``."""
        answer = body if body is not None else {"error": "server_error"}
        self._queue(path, count, lambda: web.json_response(answer, status=status))

    def rate_limit_next(self, count: int = 1, retry_after: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After: retry_after``."""
        headers = {"Retry-After": str(retry_after)}
        self._queue(path, count, lambda: web.json_response({"error": "rate_limited"}, status=429, headers=headers))

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

    def _queue(self, path: str | None, count: int, answer: Callable[[], web.Response]) -> None:
        self._faults.extend([(path, answer)] * count)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        call = await record(request)
        self.calls.append(call)
        _CURRENT.set(call)
        if request.path not in _PAGES:
            for i, (path, answer) in enumerate(self._faults):
                if path is None or request.path.startswith(path):
                    del self._faults[i]
                    return answer()
        return await handler(request)

    # ------------------------------------------------------------------ the browser's side

    async def _consent(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        problem = self._authorize_problem(params)
        return error_page(problem) if problem else consent_page(self.title, params, "/oauth/authorize")

    def _authorize_problem(self, params: dict[str, str]) -> str | None:
        if params.get("client_id") != self.client_id:
            return "invalid_client"
        if not params.get("redirect_uri"):
            return "redirect_uri_missing"
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") != "S256":
            return "unsupported_code_challenge_method"
        return None

    async def _decision(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
        problem = self._authorize_problem(form)
        if problem:
            return error_page(problem)
        state = form.get("state", "")
        if form.get("decision") != "allow":
            raise web.HTTPFound(add_query(form["redirect_uri"], error="access_denied", state=state))
        code = new_secret("fake-code")
        self.codes[code] = Grant(form["redirect_uri"], form.get("scope", ""), form.get("code_challenge") or None, self.clock())
        self.issued.append(code)
        raise web.HTTPFound(add_query(form["redirect_uri"], code=code, state=state))

    # ------------------------------------------------------------------ token, revoke, identity

    async def _token(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
        if not self._client_ok(request, form):
            return self._token_error("invalid_client", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return self._token_error("unsupported_grant_type")

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
        grant = self.codes.get(form.get("code", ""))
        if grant is None or grant.used or self.clock() - grant.issued_at > self.code_lifetime:
            return self._token_error("invalid_grant")
        grant.used = True  # spent even when the rest of the request is wrong, as RFC 6749 §4.1.2 asks
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._token_error("invalid_grant")
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if not verifier or not hmac.compare_digest(digest, grant.challenge):
                return self._token_error("invalid_grant")
        return self._issue(grant.scope, dict(self.account))

    def _refresh(self, form: dict[str, str]) -> web.Response:
        old = self.tokens.get(form.get("refresh_token", ""))
        if old is None or old.kind != "refresh" or not old.usable(self.clock()):
            return self._token_error("invalid_grant")
        if self.rotate_refresh:
            old.spent = True
        return self._issue(old.scope, old.account, keep_refresh=None if self.rotate_refresh else old.value)

    def _issue(self, scope: str, account: dict[str, Any], keep_refresh: str | None = None) -> web.Response:
        expires_at = self.clock() + self.expires_in if self.expires_in is not None else None
        access = FakeToken(new_secret("fake-access"), "access", account, scope, expires_at)
        refresh = FakeToken(keep_refresh or new_secret("fake-refresh"), "refresh", account, scope)
        for token in (access, refresh):
            self.tokens[token.value] = self.tokens.get(token.value, token)
            self.issued.append(token.value)
        body: dict[str, Any] = {"access_token": access.value, "token_type": "Bearer", "refresh_token": refresh.value, "scope": scope}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return self._answer(body)

    def _token_error(self, code: str, status: int = 400) -> web.Response:
        return self._answer({"error": code, "error_description": code.replace("_", " ")}, 200 if self.errors_in_body else status)

    def _answer(self, body: dict[str, Any], status: int = 200) -> web.Response:
        if self.answers == "form":
            return web.Response(text=urlencode(body), status=status, content_type="application/x-www-form-urlencoded")
        return web.json_response(body, status=status)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = _CURRENT.get().form
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        # RFC 7009 §2.2: an unknown token is not an error; a refresh token ends its access tokens too.
        token = self.tokens.get(form.get("token", ""))
        if token is not None:
            for other in self.tokens.values():
                if other is token or (token.kind == "refresh" and other.account is token.account):
                    other.revoked = True
        return web.Response(status=200)

    async def _userinfo(self, request: web.Request) -> web.Response:
        return web.json_response(self.require_token(request).account)

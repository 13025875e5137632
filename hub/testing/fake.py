"""A fake OAuth 2.0 provider to build a plugin's fake on: see :class:`FakeProvider`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from aiohttp import web

from ._control import add_control_routes
from ._oauth import CURRENT, OAuthServer
from ._parts import CONSENT_FIELDS, FakeCall, FakeToken, Grant, load_state, record, state_of

__all__ = ["FakeCall", "FakeProvider", "FakeToken", "Grant", "Hold"]

Answers = Literal["json", "form", "accept"]


class Hold:
    """One held request (see :meth:`FakeProvider.hold_next`)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()  # set the moment the request is held
        self.released = asyncio.Event()

    def release(self) -> None:
        """Let the held request be answered."""
        self.released.set()


class FakeProvider(OAuthServer):
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
        self._holds: deque[tuple[str, Hold]] = deque()
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

    def clear_faults(self) -> None:
        """Forget every fault queued by :meth:`fail_next` or :meth:`rate_limit_next` and not
        yet answered."""
        self._faults.clear()

    def rate_limit_next(self, count: int = 1, retry_after: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path``, if given) as the provider refuses a
        request over its rate limit (by default 429 with ``Retry-After: retry_after``)."""
        self._queue(path, count, lambda: self.rate_limit_answer(retry_after))

    def hold_next(self, path: str) -> Hold:
        """Hold the next request whose path starts with ``path`` as it arrives, recorded but not
        yet answered, until the test calls ``release()`` on what this returns (whose ``arrived``
        event is set when the request is held): for tests of what happens while a call is in flight."""
        hold = Hold()
        self._holds.append((path, hold))
        return hold

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
        CURRENT.set(call)
        for i, (prefix, hold) in enumerate(self._holds):
            if request.path.startswith(prefix):
                del self._holds[i]
                hold.arrived.set()
                await hold.released.wait()
                break
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

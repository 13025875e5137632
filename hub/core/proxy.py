"""The provider proxy: a raw call under a provider's API base with the integration's
credentials, for what the provider's declared actions do not cover (docs/proxy.md).

What the caller may send is decided first, before the database is asked: the provider's
``proxy`` config (on, methods, path prefixes) and the path rules of :mod:`.proxyrules`.
Then the call goes the way an action's does: the integration must be usable, the token
is refreshed when it is near expiry, the request budget and retries of the upstream
client apply, a refused token is refreshed once and the call sent again, and a token
refused for good moves the integration to ERROR (409 ``reconnect_required``). Every call
leaves an activity row (action ``proxy``) with its method and path, never its bodies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..activity import Recorder
from ..errors import HubError, MethodNotAllowed, NotFound, ProviderError
from ..infra.auth import Caller
from ..registry import Registry
from ..store.integrations import IntegrationStore
from ..upstream import UpstreamResponse
from . import proxyrules
from .actions import usable_integration
from .runtime import ProviderRuntime, Providers
from .tokens import Snapshot, TokenSessions

ACTION = "proxy"


class ProxyNotEnabled(NotFound):
    code = "proxy_not_enabled"


class ProxyPathNotAllowed(HubError):
    status, code = 403, "proxy_path_not_allowed"


@dataclass(frozen=True)
class ProxyCall:
    """One call as the caller sent it: ``path`` and ``query`` still percent-encoded."""

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class ProxyRunner:
    """Runs proxied calls; its collaborators are those of the action runner."""

    providers: Providers
    registry: Registry
    store: IntegrationStore
    tokens: TokenSessions
    recorder: Recorder

    def admit(self, provider: str, call: ProxyCall) -> ProviderRuntime:
        """The provider's runtime if its config lets ``call`` through; the refusal otherwise."""
        rt = self.providers.runtime(provider)
        config = rt.config.proxy
        base = f"/api/integrations/{provider}/proxy"
        if not config.enabled:
            raise ProxyNotEnabled(
                f"the proxy is not enabled for {rt.info.title} on this hub (the operator turns it on with "
                f"providers.{provider}.proxy.enabled: true)"
            )
        if call.method not in config.methods:
            raise MethodNotAllowed(
                f"{call.method} is not allowed through {base}/; allowed: {', '.join(config.methods)}", allowed=list(config.methods)
            )
        proxyrules.check_path(call.path)
        proxyrules.target(rt.provider.endpoints.api, call.path, call.query)
        if not proxyrules.within(call.path, config.path_prefixes):
            raise ProxyPathNotAllowed(
                f"path: {call.path!r} is outside the paths the proxy reaches for {rt.info.title} "
                f"({', '.join(config.path_prefixes)})",
                details={"field": "path"},
            )
        return rt

    async def run(self, caller: Caller, provider: str, call: ProxyCall) -> UpstreamResponse:
        rt = self.admit(provider, call)
        row, snap = await usable_integration(self.providers, self.store, self.tokens, caller, rt, "call its API through the proxy")
        forward = proxyrules.request_headers(call.headers, rt.config.proxy.forward_headers)
        started = time.perf_counter()

        async def attempt(s: Snapshot) -> UpstreamResponse:
            credentials = await self.registry.call(rt.name, "hub_auth_headers", provider=rt.provider, token=s.token)
            http = rt.provider.http.with_headers(credentials)
            return await http.forward(call.method, call.path, query=call.query, body=call.body, headers=forward)

        request = _described(call)
        secrets_ = tuple(t for t in (snap.token.access_token, snap.token.refresh_token) if t)
        try:
            response = await self.tokens.with_auth_retry(rt, snap, attempt)
        except HubError as exc:
            await self.recorder.record(row, ACTION, started, request=request, error=exc, secrets_=secrets_)
            raise
        outcome = {"status": response.status, "bodyBytes": len(response.body)}
        failed = None
        if response.status >= 400:
            failed = ProviderError(f"{rt.info.title} answered HTTP {response.status}", status=response.status)
        await self.recorder.record(row, ACTION, started, request=request, response=outcome, error=failed, secrets_=secrets_)
        return response


def _described(call: ProxyCall) -> dict[str, Any]:
    """What the activity row keeps of a call: never a body, never a query value."""
    names = sorted({part.split("=", 1)[0] for part in call.query.split("&") if part})
    return {"method": call.method, "path": call.path, "queryNames": names, "bodyBytes": len(call.body)}

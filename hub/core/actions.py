"""Running a provider action: validate the input, check the integration's state, get a
usable token, call the plugin's handler with a call context, and record the call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..activity import Recorder
from ..errors import HubError, MethodNotAllowed, NotFound, ProviderError, TransientProviderError
from ..infra.auth import Caller
from ..registry import Registry
from ..store.integrations import IntegrationStore
from ..store.models import Integration
from ..types import Action, CallContext
from .hookcalls import call_context, keep_call_state
from .lifecycle import Status, refused
from .manage import require
from .runtime import ProviderRuntime, Providers
from .tokens import Snapshot, TokenSessions

log = logging.getLogger("hub")


async def usable_integration(
    providers: Providers, store: IntegrationStore, tokens: TokenSessions, caller: Caller, rt: ProviderRuntime, what: str
) -> tuple[Integration, Snapshot]:
    """The caller's integration with ``rt`` and a token to ``what`` with now (refreshed if
    it was near expiry); the refusal when the provider is not configured or the
    integration's state does not allow calls."""
    if not rt.configured:
        providers.configured(rt.name)
    row = await require(store, caller.user_id, rt, allow_deleted=False)
    if row.status not in (Status.ACTIVE, Status.EXPIRED):
        raise refused(rt.name, Status(row.status), what, holds_credentials=row.access_token is not None)
    return row, await tokens.usable(rt, row)


class ActionRunner:
    def __init__(self, providers: Providers, registry: Registry, store: IntegrationStore, tokens: TokenSessions, recorder: Recorder) -> None:
        self.providers = providers
        self.registry = registry
        self.store = store
        self.tokens = tokens
        self.recorder = recorder
        # The hub's public URL, read at each call (the composition root points it at the config).
        self.public_url: Callable[[], str] = lambda: ""

    def resolve(self, provider: str, method: str, path: str) -> tuple[ProviderRuntime, Action, dict[str, str]]:
        """The action a method and path under a provider name, with its path parameters."""
        rt = self.providers.runtime(provider)
        action, params, allowed = rt.plugin.find_action(method, path)
        if action is None:
            if allowed:
                raise MethodNotAllowed(
                    f"{method} is not allowed on /api/integrations/{provider}/{path}; allowed: {', '.join(sorted(set(allowed)))}",
                    allowed=sorted(set(allowed)),
                )
            names = ", ".join(f"{a.method} {a.path}" for a in rt.plugin.actions) or "none"
            raise NotFound(f"{rt.info.title} has no action at {path!r} (actions: {names})", code="unknown_action")
        return rt, action, params

    async def run(self, caller: Caller, rt: ProviderRuntime, action: Action, raw_input: dict[str, Any], *, via: str | None = None) -> Any:
        """Validate, check the state, call the handler, record the call. ``via`` names the
        way the call came in when it is not the HTTP API (``"mcp"``): the activity row's
        request data carries it as ``_via``."""
        data = rt.validators[action.name].validate(raw_input)
        row, snap = await usable_integration(self.providers, self.store, self.tokens, caller, rt, f"run {action.name}")
        started = time.perf_counter()
        holder: dict[str, CallContext] = {}

        async def attempt(s: Snapshot) -> Any:
            headers = await self.registry.call(rt.name, "hub_auth_headers", provider=rt.provider, token=s.token)
            ctx = call_context(rt, action, data, s, headers, f"{self.public_url()}/api/integrations/{rt.name}/webhook")
            holder["ctx"] = ctx
            return await action.handler(ctx)

        secrets_ = tuple(t for t in (snap.token.access_token, snap.token.refresh_token) if t)
        recorded = data if via is None else {**data, "_via": via}
        pending_id = await self.recorder.start_pending(row, action.name, recorded, secrets_) if action.pending else None
        try:
            result = await self.tokens.with_auth_retry(rt, snap, attempt)
        except HubError as exc:
            await self.recorder.record(row, action.name, started, request=recorded, error=exc, secrets_=secrets_, pending_id=pending_id)
            raise
        except (Exception, asyncio.CancelledError) as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                # A real cancellation (shutdown ran out of time): not the plugin's doing. A
                # PENDING row must not stay pending for ever, so complete it before going.
                if pending_id is not None:
                    gone = TransientProviderError(f"{action.name} was cancelled before it finished", code="cancelled")
                    await asyncio.shield(
                        self.recorder.record(row, action.name, started, request=recorded, error=gone, secrets_=secrets_, pending_id=pending_id)
                    )
                raise
            # A bug in the plugin: the call failed, the hub did not. Name the plugin, keep
            # the details (which may hold anything) in the server log by type only.
            log.error("provider plugin %s raised %s in action %s", rt.name, type(exc).__name__, action.name)
            failure = ProviderError(
                f"the {rt.info.title} plugin failed while running {action.name} ({type(exc).__name__}); the operator's log has more",
                code="plugin_error",
            )
            await self.recorder.record(row, action.name, started, request=recorded, error=failure, secrets_=secrets_, pending_id=pending_id)
            raise failure from None
        ctx = holder["ctx"]
        if ctx.state_updates or ctx.state_removals or ctx.mark_synced or ctx.renewal_set:
            await self._save_call_state(row.id, ctx)
        await self.recorder.record(row, action.name, started, request=recorded, response=result, secrets_=secrets_, pending_id=pending_id)
        return result

    async def _save_call_state(self, integration_id: int, ctx: CallContext) -> None:
        """What the handler asked to keep: sync cursors, when the account was last synced,
        when the plugin wants its ``hub_renew``."""
        async with self.store.locked(integration_id) as (_, fresh):
            assert fresh is not None
            keep_call_state(fresh, ctx)

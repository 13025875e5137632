"""Calling a plugin hook that acts for one integration the way an action runs: with a
usable token (refreshed first if need be, once more on an auth failure), a
:class:`~hub.CallContext` on the integration's state, and an activity row of its own.

The hooks are ``hub_webhook_follow_up`` (a webhook event completed for an integration),
``hub_renew`` (something set up upstream renewed before it runs out) and
``hub_before_disconnect`` (undone before the token is revoked). What a hook asked to keep
(``update_state``, ``remove_state``, ``renew_by``) is applied by :func:`keep_call_state`,
in whichever transaction the caller writes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..activity import Recorder
from ..errors import HubError, ProviderError
from ..registry import Registry
from ..store.integrations import account_of
from ..store.models import Integration, utcnow
from ..types import Action, CallContext
from .runtime import ProviderRuntime
from .statemerge import copy_state, merge_deadline, merge_state
from .tokens import Snapshot, TokenSessions

log = logging.getLogger("hub")


async def _not_an_action(ctx: CallContext) -> None:  # pragma: no cover - never routed
    raise NotImplementedError


def call_context(rt: ProviderRuntime, action: Action, data: Mapping[str, Any], snap: Snapshot, headers: Mapping[str, str],
                 webhook_url: str) -> CallContext:
    """The context a handler or an integration hook gets for one call."""
    state = (snap.integration.meta or {}).get("state") or {}
    return CallContext(
        provider=rt.provider,
        action=action,
        input=dict(data),
        user_id=snap.integration.user_id,
        http=rt.provider.http.with_headers(dict(headers)),
        access_token=snap.token.access_token,
        metadata=account_of(snap.integration.meta),
        state=dict(state),
        webhook_url=webhook_url,
        # A copy of its own: a handler that changes a nested value of ``state`` in place
        # must not change what its updates are merged against.
        _state_base=copy_state(state),
        _renew_base=snap.integration.renew_by,
    )


def keep_call_state(row: Integration, ctx: CallContext) -> None:
    """Apply what a handler or hook asked to keep to ``row`` (locked by the caller): each
    updated or removed value merged three ways (:mod:`.statemerge`), so that calls running
    at once for one integration keep each other's changes; of two renewal deadlines asked at
    once, the sooner."""
    if ctx.state_updates or ctx.state_removals:
        meta = dict(row.meta or {})
        meta["state"] = merge_state(ctx._state_base, ctx.state_updates, meta.get("state") or {}, ctx.state_removals)
        row.meta = meta
    if ctx.mark_synced:
        row.last_sync_at = utcnow()
    if ctx.renewal_set:
        row.renew_by = ctx.renewal if ctx._state_base is None else merge_deadline(ctx._renew_base, ctx.renewal, row.renew_by)
        row.renew_lease_until = None


class IntegrationHooks:
    def __init__(self, registry: Registry, tokens: TokenSessions, recorder: Recorder, public_url: Callable[[], str]) -> None:
        self.registry = registry
        self.tokens = tokens
        self.recorder = recorder
        self.public_url = public_url

    @staticmethod
    def implements(rt: ProviderRuntime, hook: str) -> bool:
        return hook in rt.plugin.hooks

    def webhook_url(self, provider: str) -> str:
        return f"{self.public_url()}/api/integrations/{provider}/webhook"

    async def call(self, rt: ProviderRuntime, row: Integration, hook: str, label: str, *,
                   data: Mapping[str, Any] | None = None, **kwargs: Any) -> tuple[Any, CallContext]:
        """Run ``hook`` for ``row``'s integration; its result and the context it used. The
        call is recorded as activity ``label``; a plugin's bug becomes ``plugin_error``."""
        snap = await self.tokens.usable(rt, row)
        action = Action(label, "POST", label, _not_an_action)
        holder: dict[str, CallContext] = {}

        async def attempt(s: Snapshot) -> Any:
            headers = await self.registry.call(rt.name, "hub_auth_headers", provider=rt.provider, token=s.token)
            holder["ctx"] = ctx = call_context(rt, action, data or {}, s, headers, self.webhook_url(rt.name))
            return await self.registry.call(rt.name, hook, ctx=ctx, **kwargs)

        started = time.perf_counter()
        secrets_ = tuple(t for t in (snap.token.access_token, snap.token.refresh_token) if t)
        request = dict(data or {})
        try:
            result = await self.tokens.with_auth_retry(rt, snap, attempt)
        except HubError as exc:
            await self.recorder.record(row, label, started, request=request, error=exc, secrets_=secrets_)
            raise
        except Exception as exc:
            log.error("provider plugin %s raised %s in %s", rt.name, type(exc).__name__, hook)
            failure = ProviderError(f"the {rt.info.title} plugin failed in {hook} ({type(exc).__name__}); the operator's log has more",
                                    code="plugin_error")
            await self.recorder.record(row, label, started, request=request, error=failure, secrets_=secrets_)
            raise failure from None
        await self.recorder.record(row, label, started, request=request, response=result, secrets_=secrets_)
        return result, holder["ctx"]

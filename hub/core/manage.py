"""Managing a connected integration: refresh now, a live check, manual ACTIVE / INACTIVE,
disconnect and delete (revoke upstream, wipe, move)."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..activity import Recorder
from ..errors import Conflict, HubError, NotFound, ProviderAuthError, ValidationFailed
from ..infra.auth import Caller
from ..infra.crypto import DecryptionFailed
from ..registry import Registry
from ..store.integrations import IntegrationStore, internal_of, wipe_credentials
from ..store.models import Integration, utcnow
from .hookcalls import IntegrationHooks, keep_call_state
from .lifecycle import Status, log_move, move, refused, set_status
from .runtime import ProviderRuntime, Providers
from .tokens import TokenSessions

log = logging.getLogger("hub")


async def require(store: IntegrationStore, user_id: str, rt: ProviderRuntime, *, allow_deleted: bool = True) -> Integration:
    """The user's integration with the provider, or a 404 that says how to make one."""
    row = await store.find(user_id, rt.name)
    if row is None or (not allow_deleted and row.status == Status.DELETED):
        raise NotFound(
            f"no {rt.info.title} integration for this user; connect one with GET /api/integrations/{rt.name}/connect",
            code="integration_not_found",
        )
    return row


class Manager:
    def __init__(self, providers: Providers, registry: Registry, store: IntegrationStore, tokens: TokenSessions, recorder: Recorder,
                 hooks: IntegrationHooks) -> None:
        self.providers = providers
        self.hooks = hooks
        self.registry = registry
        self.store = store
        self.tokens = tokens
        self.recorder = recorder
        # Changes made here are announced through the same outbox as the token session's.
        self.outbox = tokens.outbox

    async def refresh(self, caller: Caller, provider: str) -> Integration:
        rt = self.providers.configured(provider)
        row = await require(self.store, caller.user_id, rt, allow_deleted=False)
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            raise refused(provider, Status(row.status), "refresh", holds_credentials=row.access_token is not None)
        if row.refresh_token is None:
            raise Conflict(
                f"the {rt.info.title} integration has no refresh token (its access token does not expire); nothing to refresh",
                code="no_refresh_token",
            )
        await self.tokens.refresh(rt, row, reason="requested", stale=(await self.tokens.read(row)).access_token)
        return await require(self.store, caller.user_id, rt)

    async def live_status(self, caller: Caller, provider: str) -> tuple[Integration, bool]:
        """The integration after asking the provider who the token belongs to; the flag
        says whether the provider was asked (only ACTIVE and EXPIRED ones are)."""
        rt = self.providers.configured(provider)
        row = await require(self.store, caller.user_id, rt)
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            return row, False
        started = time.perf_counter()
        snap = await self.tokens.usable(rt, row)
        try:
            account = await self.tokens.with_auth_retry(
                rt, snap, lambda s: self.registry.call(rt.name, "hub_account_identity", provider=rt.provider, token=s.token)
            )
        except HubError as exc:
            await self.recorder.record(row, "account_identity", started, error=exc)
            raise
        async with self.store.locked(row.id) as (_, fresh):
            assert fresh is not None
            fresh.meta = {**account.as_metadata(), **internal_of(fresh.meta)}
            fresh.last_sync_at = utcnow()
        await self.recorder.record(row, "account_identity", started, response={"account": account.as_metadata()})
        return await require(self.store, caller.user_id, rt), True

    async def change_status(self, caller: Caller, provider: str, body: Any) -> Integration:
        rt = self.providers.runtime(provider)
        unknown = sorted(set(body) - {"status", "reason"})
        if unknown:
            raise ValidationFailed(f'{unknown[0]}: is not a known field (expected {{"status": "ACTIVE" | "INACTIVE", "reason": "..."}})', details={"field": unknown[0]})
        if "status" not in body:
            raise ValidationFailed('status: is required (expected {"status": "ACTIVE" | "INACTIVE"})', details={"field": "status"})
        wanted = body["status"]
        if wanted not in ("ACTIVE", "INACTIVE"):
            raise ValidationFailed("status: must be ACTIVE or INACTIVE", details={"field": "status"})
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            raise ValidationFailed("reason: must be a string of at most 200 characters", details={"field": "reason"})
        row = await require(self.store, caller.user_id, rt)
        current = Status(row.status)
        if wanted == "INACTIVE":
            if current != Status.INACTIVE:
                if current == Status.DELETED:
                    raise refused(provider, current, "deactivate")
                await set_status(self.store, self.outbox, row, Status.INACTIVE, reason or "deactivated by the user")
        elif current != Status.ACTIVE:
            if current != Status.INACTIVE:
                raise refused(provider, current, "reactivate")
            await self._reactivate(rt, row, reason or "reactivated by the user")
        return await require(self.store, caller.user_id, rt)

    async def _reactivate(self, rt: ProviderRuntime, row: Integration, reason: str) -> None:
        if row.access_token is None:
            raise Conflict(
                f"the {rt.info.title} integration was disconnected and holds no credentials; connect again",
                code="reconnect_required",
                details={"status": row.status},
            )
        token = await self.tokens.read(row)
        started = time.perf_counter()
        try:
            account = await self.registry.call(rt.name, "hub_account_identity", provider=rt.provider, token=token)
        except ProviderAuthError as exc:
            await self.recorder.record(row, "account_identity", started, error=exc)
            raise Conflict(
                f"{rt.info.title} no longer accepts this integration's credentials ({exc.provider_code or 'rejected'}); connect again",
                code="reconnect_required",
            ) from None
        await self.recorder.record(row, "account_identity", started, response={"account": account.as_metadata()})
        await set_status(self.store, self.outbox, row, Status.ACTIVE, reason)

    async def disconnect(self, caller: Caller, provider: str) -> Integration:
        """Revoke upstream, wipe the tokens, INACTIVE: connect again to use it."""
        return await self._end(caller, provider, Status.INACTIVE, "disconnect", "disconnected by the user")

    async def delete(self, caller: Caller, provider: str) -> Integration:
        """Revoke upstream, wipe the tokens, DELETED: the row stays as a tombstone, with its activity."""
        return await self._end(caller, provider, Status.DELETED, "delete", "deleted by the user")

    async def _end(self, caller: Caller, provider: str, to: Status, what: str, reason: str) -> Integration:
        rt = self.providers.runtime(provider)
        row = await require(self.store, caller.user_id, rt)
        if row.status == Status.DELETED:
            raise refused(provider, Status.DELETED, what)
        await self.revoke_and_wipe(rt, row, to, reason)
        return await require(self.store, caller.user_id, rt)

    async def revoke_and_wipe(self, rt: ProviderRuntime, row: Integration, to: Status, reason: str) -> None:
        await self._before_disconnect(rt, row)
        if row.access_token is not None and rt.configured:
            started = time.perf_counter()
            try:
                token = self.store.decrypt(row)
            except (DecryptionFailed, HubError):
                token = None  # nothing usable to revoke; wiping is all that is left
            if token is not None:
                try:
                    await self.registry.call(rt.name, "hub_revoke_token", provider=rt.provider, token=token)
                    await self.recorder.record(row, "revoke_token", started, response={"revoked": True})
                except HubError as exc:
                    # Revocation is best effort: the user asked to be disconnected, and is.
                    await self.recorder.record(row, "revoke_token", started, error=exc)
        async with self.store.locked(row.id) as (session, fresh):
            assert fresh is not None
            wipe_credentials(fresh)
            fresh.renew_by = fresh.renew_lease_until = None  # nothing left upstream to renew
            transition = move(fresh, to, reason)
            if transition is None:
                fresh.version += 1
            await log_move(session, self.outbox, fresh, transition)



    async def _before_disconnect(self, rt: ProviderRuntime, row: Integration) -> None:
        """The plugin's ``hub_before_disconnect`` (push channels stopped, say) while the token
        still works. Best effort, like the revoke: the activity row says how it went."""
        if row.access_token is None or not rt.configured or not self.hooks.implements(rt, "hub_before_disconnect"):
            return
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            return  # no usable token (ERROR, INACTIVE): nothing can be undone upstream
        try:
            _, ctx = await self.hooks.call(rt, row, "hub_before_disconnect", "before_disconnect")
        except HubError:
            return  # recorded by the call; the disconnect goes on
        except Exception as exc:
            log.warning("before_disconnect of integration %d (%s) failed: %s", row.id, rt.name, type(exc).__name__)
            return
        async with self.store.locked(row.id) as (_, fresh):
            if fresh is not None:
                keep_call_state(fresh, ctx)

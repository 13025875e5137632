"""The per-integration token session: decrypt, check expiry, refresh once, store.

Provider know-how (how to refresh) lives in the plugin; the state lives here. A refresh
is single-flight twice over:

* in one process, concurrent callers for one integration share one in-flight refresh;
* across processes, the refresher first claims a short lease on the row with a
  compare-and-swap on ``version``; the others wait for the lease to be released and
  read the token it stored. No process ever spends a refresh token another one is using,
  which matters for providers that rotate refresh tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..activity import Recorder
from ..errors import (
    Conflict,
    GrantRejected,
    HubError,
    MalformedResponse,
    ProviderAuthError,
    ServiceUnavailable,
    StoredTokenUnreadable,
    TokenExpired,
    TransientProviderError,
)
from ..infra import metrics
from ..infra.crypto import DecryptionFailed
from ..registry import Registry
from ..store.integrations import IntegrationStore, lease_until, public_token_fields
from ..store.models import Integration, iso_utc, utcnow
from ..types import TokenSet
from ..events.outbox import Outbox
from .lifecycle import REFRESHED, Status, log_move, move, refused, set_status
from .runtime import ProviderRuntime

log = logging.getLogger("hub.tokens")

LEASE_SECONDS = 30.0
POLL_SECONDS = 0.05

T = TypeVar("T")


class ReconnectRequired(Conflict):
    """The provider refused the integration's credentials for good; the user must reconnect."""

    code = "reconnect_required"


@dataclass
class Snapshot:
    """What one read of the integration row says about its credentials."""

    integration: Integration
    token: TokenSet


def merge(old: TokenSet, new: TokenSet) -> TokenSet:
    """A refreshed token over the old one: what the provider leaves out is kept."""
    return TokenSet(
        access_token=new.access_token,
        refresh_token=new.refresh_token or old.refresh_token,
        expires_at=new.expires_at,
        scopes=new.scopes or old.scopes,
        token_type=new.token_type,
        raw={**old.raw, **new.raw},
    )


class TokenSessions:
    """Refresh coordination for every integration of this process.

    Its collaborators are narrow: the integration store (rows, locks, the lease), the
    recorder (activity rows) and the registry (the provider's refresh hook)."""

    def __init__(self, store: IntegrationStore, recorder: Recorder, registry: Registry, outbox: Outbox, *, refresh_margin_seconds: float) -> None:
        self.store = store
        self.outbox = outbox
        self.recorder = recorder
        self.registry = registry
        self.refresh_margin_seconds = refresh_margin_seconds
        self._inflight: dict[int, asyncio.Task[Snapshot]] = {}

    def margin(self, row: Integration) -> float:
        """How long before expiry a token is refreshed: the configured margin, but never
        more than a quarter of the token's life, so a short-lived token is not refreshed
        on every use (its life is measured from when it was stored)."""
        margin = float(self.refresh_margin_seconds)
        if row.token_expiry is not None and row.updated_at is not None:
            life = (row.token_expiry - row.updated_at).total_seconds()
            if life > 0:
                margin = min(margin, life / 4)
        return margin

    async def usable(self, runtime: ProviderRuntime, row: Integration) -> Snapshot:
        """A token that may be used now, refreshing first if it is (nearly) expired."""
        token = await self.read(row)
        margin = self.margin(row)
        if not token.expired(margin_seconds=margin) and row.status == Status.ACTIVE:
            return Snapshot(row, token)
        if not token.refresh_token:
            if token.expired():
                await self.mark_expired(row, "the access token has expired and the provider gave no refresh token")
                raise ReconnectRequired(
                    f"the {runtime.info.title} token has expired and cannot be refreshed: connect again",
                    details={"status": Status.EXPIRED.value},
                )
            return Snapshot(row, token)
        try:
            return await self.refresh(runtime, row, reason="access token near expiry")
        except TransientProviderError:
            # A token still inside its lifetime beats an error: use it and refresh later.
            if not token.expired() and row.status == Status.ACTIVE:
                return Snapshot(row, token)
            raise

    async def read(self, row: Integration) -> TokenSet:
        try:
            return self.store.decrypt(row)
        except DecryptionFailed:
            reason = "stored credentials failed to decrypt (tampered with, moved, or their key was removed): connect again"
            await set_status(self.store, self.outbox, row, Status.ERROR, reason)
            raise StoredTokenUnreadable(f"the {row.provider} integration's {reason}", details={"status": "ERROR"}) from None

    async def mark_expired(self, row: Integration, reason: str) -> None:
        if row.status == Status.ACTIVE:
            await set_status(self.store, self.outbox, row, Status.EXPIRED, reason)

    async def refresh(self, runtime: ProviderRuntime, row: Integration, *, reason: str, stale: str | None = None) -> Snapshot:
        """Refresh once for everyone asking about this integration right now.

        ``stale`` is the access token the caller found wanting (after a 401); if the
        stored one already differs, another caller refreshed in the meantime.
        """
        task = self._inflight.get(row.id)
        if task is None:
            task = asyncio.create_task(self._refresh(runtime, row.id, reason, stale))
            self._inflight[row.id] = task
            task.add_done_callback(lambda _t, key=row.id: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def refresh_early(self, runtime: ProviderRuntime, row: Integration) -> bool:
        """Refresh a token that is still usable, ahead of need (the background refresh).

        Only when this process can claim the row's lease at once: it never waits for a
        refresh that is already running here or elsewhere, and it gives up when the row
        changed since it was read (the lease's compare-and-swap). Callers that need the
        token meanwhile share this refresh as they share any other. A refusal or a failure
        moves the integration exactly as the same answer would on a call. True when this
        process refreshed the token."""
        if row.id in self._inflight or row.status != Status.ACTIVE or not row.refresh_token:
            return False
        token = await self.read(row)
        if not token.refresh_token:
            return False
        if not await self.store.claim_lease(row, lease_until(utcnow(), LEASE_SECONDS)):
            return False
        task = asyncio.create_task(self._refresh_holding_lease(runtime, row, token, "ahead of expiry"))
        self._inflight[row.id] = task
        task.add_done_callback(lambda _t, key=row.id: self._inflight.pop(key, None))
        await asyncio.shield(task)
        return True

    async def _refresh(self, runtime: ProviderRuntime, integration_id: int, reason: str, stale: str | None) -> Snapshot:
        deadline = time.monotonic() + LEASE_SECONDS * 2
        while True:
            row = await self._get(integration_id)
            if row.status not in (Status.ACTIVE, Status.EXPIRED):
                raise refused(runtime.name, Status(row.status), "use its credentials", holds_credentials=row.access_token is not None)
            token = await self.read(row)
            fresh_enough = not token.expired(margin_seconds=self.margin(row))
            if stale is not None and token.access_token != stale and not token.expired():
                return Snapshot(row, token)
            if stale is None and fresh_enough and row.status == Status.ACTIVE and row.refresh_lease_until is None:
                return Snapshot(row, token)
            if not token.refresh_token:
                raise ReconnectRequired(f"the {runtime.info.title} integration has no refresh token: connect again")
            now = utcnow()
            lease_free = row.refresh_lease_until is None or row.refresh_lease_until <= now
            if lease_free and await self.store.claim_lease(row, lease_until(now, LEASE_SECONDS)):
                return await self._refresh_holding_lease(runtime, row, token, reason)
            if time.monotonic() > deadline:
                raise ServiceUnavailable("another process is refreshing this integration; try again shortly")
            # Someone else holds the lease: wait for it to store a token, then use that.
            await self._wait_for_lease(integration_id)
            stale = None

    async def _refresh_holding_lease(self, runtime: ProviderRuntime, row: Integration, token: TokenSet, reason: str) -> Snapshot:
        started = time.perf_counter()
        try:
            new = await self.registry.call(runtime.name, "hub_refresh_token", provider=runtime.provider, token=token)
            if not isinstance(new, TokenSet) or not new.access_token:
                raise MalformedResponse(f"{runtime.info.title} refresh gave no usable access token")
        except BaseException as exc:
            outcome = "rejected" if isinstance(exc, GrantRejected) else "failed"
            metrics.REFRESHES.labels(runtime.name, outcome).inc()
            await self._release_after_failure(runtime, row, token, exc, started)
            raise self._client_error(runtime, exc) from None
        metrics.REFRESHES.labels(runtime.name, "success").inc()
        merged = merge(token, new)
        await self._store_refreshed(row, merged, started)
        return Snapshot(row, merged)

    async def _release_after_failure(
        self, runtime: ProviderRuntime, row: Integration, token: TokenSet, exc: BaseException, started: float
    ) -> None:
        async with self.store.locked(row.id) as (session, fresh):
            assert fresh is not None
            fresh.refresh_lease_until = None
            fresh.version += 1
            transition = None
            if isinstance(exc, GrantRejected):
                transition = move(fresh, Status.ERROR, f"refresh refused by {runtime.info.title}: {exc.message}; reconnect required")
            elif token.expired() and fresh.status == Status.ACTIVE:
                transition = move(fresh, Status.EXPIRED, f"refresh failed for now ({_describe(exc)}); will retry")
            await log_move(session, self.outbox, fresh, transition)
        row.status, row.version, row.refresh_lease_until = fresh.status, fresh.version, None
        await self.recorder.record(row, "refresh_token", started, error=exc, request={"reason": "refresh"})

    def _client_error(self, runtime: ProviderRuntime, exc: BaseException) -> BaseException:
        if isinstance(exc, GrantRejected):
            return ReconnectRequired(
                f"{runtime.info.title} refused the refresh token ({exc.provider_code or 'rejected'}); "
                "the integration is now ERROR: reconnect required",
                details={"status": Status.ERROR.value, "providerError": exc.provider_code},
            )
        return exc

    async def _get(self, integration_id: int) -> Integration:
        row = await self.store.get(integration_id)
        if row is None:
            raise Conflict("the integration was removed while refreshing")
        return row

    async def _wait_for_lease(self, integration_id: int) -> None:
        end = time.monotonic() + LEASE_SECONDS + 1
        while time.monotonic() < end:
            await asyncio.sleep(POLL_SECONDS)
            row = await self._get(integration_id)
            if row.refresh_lease_until is None or row.refresh_lease_until <= utcnow():
                return

    async def _store_refreshed(self, row: Integration, token: TokenSet, started: float) -> None:
        async with self.store.locked(row.id) as (session, fresh):
            assert fresh is not None
            self.store.encrypt_into(fresh, token)
            if token.raw:
                fresh.meta = {**(fresh.meta or {}), "token": public_token_fields(token.raw)}
            fresh.refresh_lease_until = None
            fresh.version += 1
            fresh.updated_at = utcnow()
            transition = move(fresh, Status.ACTIVE, "refresh succeeded") if fresh.status == Status.EXPIRED else None
            await log_move(session, self.outbox, fresh, transition, event=REFRESHED, reason="refresh succeeded")
        row.status, row.version, row.refresh_lease_until = fresh.status, fresh.version, None
        row.access_token, row.refresh_token, row.token_expiry = fresh.access_token, fresh.refresh_token, fresh.token_expiry
        await self.recorder.record(row, "refresh_token", started, response={"expiresAt": iso_utc(token.expires_at)})

    async def with_auth_retry(self, runtime: ProviderRuntime, snap: Snapshot, fn: Callable[[Snapshot], Awaitable[T]]) -> T:
        """Run ``fn(snapshot)``; on an auth failure refresh once where possible, else ERROR."""
        try:
            return await fn(snap)
        except ProviderAuthError as exc:
            failure = exc
        if snap.token.refresh_token:
            fresh = await self.refresh(runtime, snap.integration, reason="provider rejected the access token", stale=snap.token.access_token)
            try:
                return await fn(fresh)
            except ProviderAuthError as exc:
                failure = exc
        title = runtime.info.title
        code = failure.provider_code or "unauthorized"
        if isinstance(failure, TokenExpired) and not snap.token.refresh_token:
            await self.mark_expired(snap.integration, f"{title} says the token expired")
            raise ReconnectRequired(
                f"the {title} token has expired and cannot be refreshed: connect again",
                details={"status": Status.EXPIRED.value, "providerError": code},
            )
        await set_status(self.store, self.outbox, snap.integration, Status.ERROR, f"{title} rejected the credentials ({code}): reconnect required")
        raise ReconnectRequired(
            f"{title} no longer accepts this integration's credentials ({code}); the integration is now ERROR: connect again",
            details={"status": Status.ERROR.value, "providerError": code},
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HubError):
        return exc.message
    return type(exc).__name__

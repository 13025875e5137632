"""Provider webhooks in (docs/events.md, "Provider webhooks in"): a verified inbound request
routed to the integrations it concerns, each event logged and emitted as an event out.

The plugin's ``hub_webhook`` checks the signature and reads the events; this module finds
the integrations each event names, and writes, per integration and in one transaction, an
activity row (``kind`` ``webhook``) and the outbox event ``<provider>.<type>``. A provider
event seen before for an integration (same ``dedupe_key``) is skipped, so a provider's
redelivery, or a captured request replayed inside its window, emits nothing twice.

An event may also be checked against each integration's plugin state (``verify``), refuse
the request when it reaches no integration (``exclusive``), be completed for each
integration by the plugin's ``hub_webhook_follow_up`` before it is emitted (``follow_up``:
run here, in the request, so a failure answers 5xx and the provider retries; what the hook
keeps in the state is written in the event's transaction), or only be logged (``quiet``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..errors import HubError, NotFound, ProviderError, WebhookRejected
from ..events.outbox import Outbox
from ..registry import Registry
from ..store.models import Event, Integration, IntegrationLog, utcnow
from ..store.routes import reached_by
from ..webhooks import WebhookAnswer, WebhookEvent, WebhookRequest, WebhookResult
from .hookcalls import IntegrationHooks, keep_call_state
from .lifecycle import Status
from .runtime import Providers

log = logging.getLogger("hub.webhooks")

# Integrations that still hear from their provider: an expired access token does not stop
# a workspace's events; a disconnected or deleted integration gets none.
LISTENING = (Status.ACTIVE.value, Status.EXPIRED.value)
EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,47}$")


@dataclass(frozen=True)
class Received:
    """What the route answers: a direct answer from the plugin, or how many events were
    emitted (``routed``) and how many were already seen (``duplicates``)."""

    answer: WebhookAnswer | None = None
    routed: int = 0
    duplicates: int = 0


def event_type(provider: str, name: str) -> str:
    """The outbox type of a provider event: ``slack.message``, ``trello.updatecard``."""
    return f"{provider}.{name.lower()}"


def matches(integration: Integration, match: Mapping[str, str]) -> bool:
    meta = integration.meta or {}
    state = meta.get("state") or {}
    for key, want in match.items():
        if key.startswith("state."):
            got = state.get(key[len("state."):])
            if isinstance(got, (list, tuple)):
                if str(want) not in [str(g) for g in got]:
                    return False
                continue
        else:
            got = meta.get(key)
        if got is None or str(got) != str(want):
            return False
    return True


def verified(provider: str, row: Integration, event: WebhookEvent) -> bool:
    """The plugin's own check of an event against the integration's state, when it has one."""
    if event.verify is None:
        return True
    try:
        return bool(event.verify(dict((row.meta or {}).get("state") or {})))
    except Exception as exc:
        log.error("provider plugin %s: a webhook event's verify raised %s; taken as not verified", provider, type(exc).__name__)
        return False


class WebhookReceiver:
    def __init__(self, providers: Providers, registry: Registry, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 hooks: IntegrationHooks) -> None:
        self.providers = providers
        self.hooks = hooks
        self.registry = registry
        self.sessions = sessions
        self.outbox = outbox
        # The hub's "now" for replay windows; tests move it.
        self.clock: Callable[[], datetime] = utcnow

    def supports(self, provider: str) -> bool:
        rt = self.providers.runtime(provider)
        if "hub_webhook" not in rt.plugin.hooks:
            raise NotFound(f"the {rt.info.title} plugin does not receive webhooks", code="webhooks_not_supported")
        return True

    async def receive(self, provider: str, *, method: str, headers: Mapping[str, str], body: bytes,
                      query: Mapping[str, str], url: str) -> Received:
        self.supports(provider)
        rt = self.providers.configured(provider)
        request = WebhookRequest(method=method, headers={k.lower(): v for k, v in headers.items()}, body=body,
                                 query=dict(query), url=url, received_at=self.clock())
        try:
            result = await self.registry.call(provider, "hub_webhook", provider=rt.provider, request=request)
        except HubError:
            raise
        except Exception as exc:
            log.error("provider plugin %s raised %s reading a webhook", provider, type(exc).__name__)
            raise ProviderError(f"the {rt.info.title} plugin failed while reading a webhook ({type(exc).__name__}); "
                                "the operator's log has more", code="plugin_error") from None
        if not isinstance(result, WebhookResult):
            log.error("provider plugin %s: hub_webhook returned a %s, not a hub.WebhookResult", provider, type(result).__name__)
            raise ProviderError(f"the {rt.info.title} plugin answered a webhook with something unreadable", code="plugin_error")
        if result.answer is not None:
            return Received(answer=result.answer)
        if not result.events:
            return Received()
        return await self._route(provider, result.events)

    async def _route(self, provider: str, events: tuple[WebhookEvent, ...]) -> Received:
        rt = self.providers.runtime(provider)
        # Every event's integrations first, before anything is stored: an exclusive event that
        # reaches none refuses the whole request. Candidates come through the webhook routes'
        # index (hub.store.routes); every pair of the match is then checked here.
        plan: list[tuple[WebhookEvent, Integration]] = []
        for event in events:
            if not EVENT_NAME.fullmatch(event.type) or not event.match:
                log.warning("provider plugin %s returned an event without a usable type or match; skipped", provider)
                continue
            async with self.sessions() as session:
                rows = await reached_by(session, provider, event.match, LISTENING)
            reached = [row for row in rows if matches(row, event.match) and verified(provider, row, event)]
            if event.exclusive and not reached:
                raise WebhookRejected(f"the {rt.info.title} request names nothing an integration expects "
                                      "(an unknown or stopped channel, or a wrong or missing token)")
            plan += [(event, row) for row in reached]
        routed = duplicates = 0
        for event, row in plan:
            once = f"webhook:{provider}:{row.id}:{event.dedupe_key}"[:200] if event.dedupe_key and not event.quiet else None
            if once is not None:
                async with self.sessions() as session:
                    if await self.seen(session, once):
                        duplicates += 1
                        continue
            data, ctx = dict(event.data), None
            if event.follow_up and self.hooks.implements(rt, "hub_webhook_follow_up"):
                # In the request: a failure answers 5xx and the provider sends it again.
                result, ctx = await self.hooks.call(rt, row, "hub_webhook_follow_up", "webhook_follow_up", data=event.data, event=event)
                data = dict(result or {})
            try:
                async with self.sessions.begin() as session:
                    await self._emit(session, row, provider, event, data, once)
                    if ctx is not None:
                        fresh = await session.get(Integration, row.id, with_for_update=True)
                        if fresh is not None:
                            keep_call_state(fresh, ctx)
            except IntegrityError:
                # The same event arriving twice at once passes both checks above; the unique
                # once_key refuses the later one here, with its state changes.
                duplicates += 1
                continue
            routed += 1
        return Received(routed=routed, duplicates=duplicates)

    @staticmethod
    async def seen(session: AsyncSession, once: str) -> bool:
        return await session.scalar(select(Event.id).where(Event.once_key == once)) is not None

    async def _emit(self, session: AsyncSession, row: Integration, provider: str, event: WebhookEvent, data: dict[str, Any],
                    once: str | None) -> None:
        kind = event_type(provider, event.type)
        event_id = None
        if not event.quiet:
            emitted = await self.outbox.emit(session, row, kind, reason=f"{provider} webhook: {event.type}", data={"event": data},
                                             once_key=once)
            event_id = emitted.event_id
        session.add(IntegrationLog(
            integration_id=row.id, kind="webhook", action=kind[:64], status="SUCCESS",
            request_data={"eventId": event_id, "type": kind, "providerEventId": event.dedupe_key},
            duration_ms=0, created_at=self.outbox.clock(),
        ))

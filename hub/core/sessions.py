"""Connect sessions: the host's backend asks for a link, the user's browser opens it on the
hub, and every connect started from its page is bound to that browser by a cookie.

The rules of the link (who may create, read and cancel a session; what it may list; when
it is used up or expired) live here; the binding of a state to the cookie is
:mod:`.binding`; storage is :mod:`hub.store.sessions`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ..errors import BadRequest, HubError, NotFound, ProviderNotConfigured, ValidationFailed
from ..infra.auth import Caller
from ..infra.config import HubConfig
from ..infra.periodic import Periodic
from ..store.models import ConnectSession, Integration, iso_utc
from ..store.sessions import ConnectSessionStore
from .binding import SessionGone, check_cookie
from .connect import Connector
from .runtime import Providers

COOKIE_BYTES = 32
MAX_PROVIDERS = 50
FIELDS = {"providers", "return_url", "opener_origin"}

log = logging.getLogger("hub.connect")


def is_open(row: ConnectSession, now: Any) -> bool:
    return row.status in ("pending", "opened") and row.expires_at > now


def status_of(row: ConnectSession, now: Any) -> str:
    """``pending``, ``opened``, ``completed``, ``cancelled`` or ``expired``."""
    if row.status in ("pending", "opened") and row.expires_at <= now:
        return "expired"
    return row.status


class ConnectSessions:
    def __init__(self, config: HubConfig, providers: Providers, connector: Connector, store: ConnectSessionStore) -> None:
        self.config = config
        self.providers = providers
        self.connector = connector
        self.store = store
        # Sessions whose user never comes back are deleted here, not only on their next create.
        self.pruner = Periodic("pruning finished connect sessions", self._prune, config.connect_sessions.prune_interval_seconds, jitter=0.2)

    async def start_pruning(self) -> None:
        if self.pruner.interval > 0:
            await self.pruner.start()

    async def stop_pruning(self) -> None:
        await self.pruner.stop()

    async def _prune(self) -> None:
        removed = await self.store.prune()
        if removed:
            log.info("pruned %d connect session(s) a day past expiry", removed)

    # --- the host's backend (JWT) -------------------------------------------------------

    async def create(self, caller: Caller, body: Mapping[str, Any]) -> tuple[ConnectSession, str]:
        """A session for the caller and the secret of its link."""
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: is not a known field (expected providers, return_url, opener_origin)", details={"field": unknown[0]})
        providers = self._providers(body.get("providers"))
        return_url = body.get("return_url")
        if return_url is not None and not isinstance(return_url, str):
            raise ValidationFailed("return_url: must be a string (an allow-listed URL)", details={"field": "return_url"})
        return_url = self.connector.check_return_url(return_url)
        opener = self._opener_origin(body.get("opener_origin"))
        return await self.store.create(caller.user_id, providers, return_url, opener)

    def _providers(self, value: Any) -> list[str]:
        if value is None:
            ready = [name for name, rt in sorted(self.providers.items()) if rt.configured]
            if not ready:
                raise ProviderNotConfigured("providers: no enabled provider is configured on this hub", details={"field": "providers"})
            return ready
        if not isinstance(value, list) or not value:
            raise ValidationFailed("providers: must be a non-empty list of provider names", details={"field": "providers"})
        if len(value) > MAX_PROVIDERS:
            raise ValidationFailed(f"providers: at most {MAX_PROVIDERS} names", details={"field": "providers"})
        names: list[str] = []
        for i, name in enumerate(value):
            field = f"providers[{i}]"
            if not isinstance(name, str) or not name:
                raise ValidationFailed(f"{field}: must be a provider name (a non-empty string)", details={"field": field})
            if name in names:
                raise ValidationFailed(f"{field}: {name!r} is listed twice", details={"field": field})
            if name not in self.providers:
                enabled = ", ".join(sorted(self.providers)) or "none"
                raise ValidationFailed(f"{field}: {name[:64]!r} is not an enabled provider (enabled: {enabled})", details={"field": field})
            try:
                self.providers.configured(name)
            except HubError as exc:
                exc.details = {**(exc.details if isinstance(exc.details, dict) else {}), "field": field}
                raise
            names.append(name)
        return names

    def _opener_origin(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > 300:
            raise ValidationFailed("opener_origin: must be an origin such as https://app.example.com", details={"field": "opener_origin"})
        origin = value.lower()
        if origin not in self.config.connect_sessions.opener_origins:
            raise BadRequest(
                "opener_origin: not in connect_sessions.opener_origins; add the origin there to let sessions report to it",
                details={"field": "opener_origin"},
                code="opener_origin_not_allowed",
            )
        return origin

    def link(self, token: str) -> str:
        """The address the user's browser opens (once) for the session whose secret is ``token``."""
        return f"{self.config.public_url}/connect/{token}"

    async def link_for(self, caller: Caller, provider: str) -> dict[str, Any]:
        """A new session offering only ``provider``: its link, expiry and id (for an agent,
        which has no browser of its own to bind)."""
        row, token = await self.create(caller, {"providers": [provider]})
        return {"url": self.link(token), "expiresAt": iso_utc(row.expires_at), "connectSessionId": row.id}

    async def get(self, caller: Caller, session_id: str) -> ConnectSession:
        """The caller's own session; another user's is as unknown as one never made."""
        row = await self.store.get(session_id) if len(session_id) <= 40 else None
        if row is None or row.user_id != caller.user_id:
            raise NotFound("no connect session with this id for this user", code="connect_session_unknown", details={"field": "id"})
        return row

    async def cancel(self, caller: Caller, session_id: str) -> ConnectSession:
        row = await self.get(caller, session_id)
        await self.store.cancel(row.id)
        return await self.get(caller, session_id)

    def now(self) -> Any:
        return self.store.clock()

    # --- the user's browser (the link, then the cookie) ---------------------------------

    async def open(self, token: str) -> tuple[ConnectSession, str]:
        """Use the link: the session becomes opened and bound to a new cookie (returned)."""
        cookie = secrets.token_urlsafe(COOKIE_BYTES)
        if len(token) <= 100 and await self.store.open(token, cookie):
            row = await self.store.by_token(token)
            assert row is not None
            return row, cookie
        row = await self.store.by_token(token) if len(token) <= 100 else None
        if row is None:
            raise NotFound("this connect link is unknown: it was never issued, or it was mistyped", code="connect_session_unknown")
        raise self._gone(row)

    def _gone(self, row: ConnectSession) -> SessionGone:
        status = status_of(row, self.now())
        if status == "expired":
            return SessionGone("this connect link has expired; ask the application for a new one", code="connect_session_expired")
        if status == "cancelled":
            return SessionGone("this connect link was cancelled; ask the application for a new one", code="connect_session_cancelled")
        return SessionGone(
            "this connect link was already used; a link opens once (ask the application for a new one)", code="connect_session_used"
        )

    async def in_browser(self, session_id: str, cookies: Mapping[str, str]) -> ConnectSession:
        """The session a page request names, if this browser opened it and it is still open."""
        row = await self.store.get(session_id) if len(session_id) <= 40 else None
        if row is None or row.cookie_hash is None:
            raise NotFound("no such connect session", code="connect_session_unknown")
        check_cookie(row.id, row.cookie_hash, cookies)
        if not is_open(row, self.now()):
            raise self._gone(row)
        return row

    async def start(self, session_id: str, cookies: Mapping[str, str], provider: str) -> str:
        """The provider's authorization URL, its state bound to this browser's cookie."""
        row = await self.in_browser(session_id, cookies)
        self._listed(row, provider)
        begun = await self.connector.begin(Caller(row.user_id, {}), provider, session=row)
        return str(begun["authUrl"])

    async def paste(self, session_id: str, cookies: Mapping[str, str], provider: str, token: Any) -> tuple[ConnectSession, Integration]:
        """A token or API key pasted on the session's page, stored for the session's user."""
        row = await self.in_browser(session_id, cookies)
        self._listed(row, provider)
        integration = await self.connector.import_token(Caller(row.user_id, {}), provider, token)
        await self.store.complete(row.id, provider)
        return row, integration

    @staticmethod
    def _listed(row: ConnectSession, provider: str) -> None:
        if provider not in row.providers:
            raise BadRequest(
                f"provider: {provider!r} is not one of this connect session's providers ({', '.join(row.providers)})",
                details={"field": "provider"},
                code="provider_not_in_session",
            )

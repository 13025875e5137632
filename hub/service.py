"""The hub itself: configured providers, storage, and every operation the API offers.

The web layer is a thin translation of HTTP into calls on :class:`Hub`; the CLI and the
tests use the same object. Each operation loads the caller's integration, checks the
lifecycle, calls the provider through the registry, and records what happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import activity, metrics, pkce, redirects
from .activity import ActivityWriter, LogQuery
from .auth import Caller, JWTVerifier
from .bootstrap import Secrets
from .config import ConfigError, HubConfig, ProviderConfig
from .crypto import DecryptionFailed, KeyRing
from .db import create_engine, ping, sessionmaker, upgrade
from .errors import (
    BadRequest,
    Conflict,
    HubError,
    NotFound,
    ProviderAuthError,
    ProviderError,
    ProviderNotConfigured,
    TokenExpired,
    TransientProviderError,
)
from .lifecycle import Status, move, refused
from .models import Integration, OAuthState, utcnow
from .plugins import ProviderPlugin, Registry
from .ratelimit import RateLimit
from .redact import capped, redact, redact_text
from .rowread import IntegrationReader
from .schema import InputValidator
from .tokens import (
    ReconnectRequired,
    Snapshot,
    TokenSessions,
    decrypt_token,
    encrypt_into,
)
from .types import (
    AccountInfo,
    Action,
    AuthorizationRequest,
    CallContext,
    Endpoints,
    Provider,
    TokenSet,
)
from .upstream import Upstream, UpstreamSettings

log = logging.getLogger("hub")

STATE_BYTES = 32
MAX_TOKEN_LENGTH = 4096


@dataclass
class ProviderRuntime:
    """A loaded provider plugin joined with its config section."""

    plugin: ProviderPlugin
    config: ProviderConfig
    provider: Provider
    problems: list[str] = field(default_factory=list)
    validators: dict[str, InputValidator] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def info(self) -> Any:
        return self.plugin.info

    @property
    def configured(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CallbackOutcome:
    provider: str
    title: str
    ok: bool
    message: str
    return_url: str | None
    error: HubError | None = None
    integration: dict[str, Any] | None = None


def check_providers(config: HubConfig, registry: Registry) -> tuple[list[str], dict[str, list[str]]]:
    """Validate ``providers:`` against the installed plugins.

    Returns (errors that stop start-up, per-provider reasons it is not configured).
    """
    errors: list[str] = []
    unconfigured: dict[str, list[str]] = {}
    installed = sorted(registry.providers)
    failed = {f.name for f in registry.failures}
    for name, section in config.providers.items():
        path = f"providers.{name}"
        plugin = registry.providers.get(name)
        if plugin is None:
            if name in failed:
                continue  # reported as a load failure; the hub starts without it
            errors.append(f"{path}: no provider plugin named {name!r} is installed (installed: {', '.join(installed) or 'none'})")
            continue
        info = plugin.info
        declared = {f.name: f for f in info.config_fields}
        for key in section.settings:
            if key not in declared:
                known = ", ".join(sorted({"enabled", "scopes", "urls", "max_concurrency", "rate_limits", *declared}))
                errors.append(f"{path}.{key}: unknown key for {name} (known: {known})")
        for key in section.urls:
            if key not in Endpoints.__dataclass_fields__:
                errors.append(f"{path}.urls.{key}: unknown URL (known: {', '.join(Endpoints.__dataclass_fields__)})")
        for key, value in section.urls.items():
            if value and not str(value).startswith(("http://", "https://")):
                errors.append(f"{path}.urls.{key}: must be an http:// or https:// URL")
        if not section.enabled:
            continue
        required = [f for f in info.config_fields if f.required]
        present = [f for f in required if section.settings.get(f.name) not in (None, "")]
        if present and len(present) < len(required):
            for f in required:
                if f not in present:
                    errors.append(f"{path}.{f.name}: required by {name} (set it, or remove the other credentials to leave {name} unconfigured)")
        elif not present and required:
            unconfigured[name] = [f"{path}.{f.name} is not set" for f in required]
    return errors, unconfigured


class Hub:
    def __init__(self, config: HubConfig, registry: Registry, secrets_: Secrets) -> None:
        self.config = config
        self.registry = registry
        self.keyring = KeyRing.parse(secrets_.encryption_keys)
        auth = config.auth
        self.jwt = JWTVerifier(
            secret=secrets_.jwt_secret,
            public_key=auth.jwt_public_key,
            algorithms=auth.algorithms,
            issuer=auth.issuer,
            audience=auth.audience,
            leeway=auth.leeway_seconds,
        )
        self.engine = create_engine(config.database.url, pool_size=config.database.pool_size, echo=config.database.echo)
        self.sessions = sessionmaker(self.engine)
        self.reader = IntegrationReader(config.database.url, pool_size=config.database.pool_size)
        up = config.upstream
        self.upstream = Upstream(
            UpstreamSettings(
                connect_timeout=up.connect_timeout,
                total_timeout=up.total_timeout,
                max_retries=up.max_retries,
                max_retry_wait=up.max_retry_wait,
                max_response_bytes=up.max_response_bytes,
                max_concurrency=up.max_concurrency,
            )
        )
        act = config.activity
        self.activity = ActivityWriter(
            self.sessions, flush_interval=act.flush_interval_ms / 1000, batch_size=act.batch_size, buffer_limit=act.buffer_limit
        )
        self.tokens = TokenSessions(self)
        errors, unconfigured = check_providers(config, registry)
        if errors:
            raise ConfigError(errors, config.source)
        self.providers: dict[str, ProviderRuntime] = {}
        self._secret_values: list[str] | None = None
        for name, section in config.enabled_providers().items():
            plugin = registry.providers.get(name)
            if plugin is not None:
                self.providers[name] = self._runtime(plugin, section, unconfigured.get(name, []))

    def _runtime(self, plugin: ProviderPlugin, section: ProviderConfig, problems: list[str]) -> ProviderRuntime:
        info = plugin.info
        endpoints = info.endpoints.merged(section.urls)
        settings = {f.name: section.settings.get(f.name, f.default) for f in info.config_fields}
        slot: dict[str, Provider] = {}

        async def check(response: Any) -> None:
            await self.registry.call(plugin.name, "hub_check_response", provider=slot["p"], response=response)

        http = self.upstream.for_provider(
            plugin.name, base_url=endpoints.api, check=check, max_concurrency=section.max_concurrency,
            rate_limits=info.rate_limits
            if section.rate_limits is None
            else tuple(RateLimit(r.requests, r.seconds, r.per) for r in section.rate_limits),
        )
        scopes = tuple(section.scopes) if section.scopes is not None else info.default_scopes
        provider = Provider(name=plugin.name, info=info, endpoints=endpoints, scopes=scopes, settings=settings, http=http)
        slot["p"] = provider
        validators = {a.name: InputValidator(a) for a in plugin.actions}
        return ProviderRuntime(plugin, section, provider, problems, validators)

    # --- life of the process ---------------------------------------------------------

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.engine)
        await self.upstream.start()
        await self.activity.start()

    async def stop(self) -> None:
        await self.activity.stop(timeout=self.config.server.shutdown_timeout)
        await self.upstream.close()
        await self.reader.close()
        await self.engine.dispose()

    async def ready(self) -> None:
        await ping(self.engine)

    async def integration_counts(self) -> dict[tuple[str, str], int]:
        from sqlalchemy import func

        async with self.sessions() as session:
            rows = await session.execute(
                select(Integration.provider, Integration.status, func.count()).group_by(Integration.provider, Integration.status)
            )
            return {(provider, status): int(n) for provider, status, n in rows.all()}

    def secret_values(self) -> list[str]:
        """Configured secrets, masked by value wherever they might surface. Settings do not
        change after start-up, so the list is built once, not on every activity row."""
        if self._secret_values is None:
            out = []
            for rt in self.providers.values():
                out.extend(str(rt.provider.settings.get(k) or "") for k in rt.info.secret_fields)
            self._secret_values = [s for s in out if s]
        return self._secret_values

    # --- lookups ---------------------------------------------------------------------

    def authenticate(self, header: str | None) -> Caller:
        return self.jwt.verify(header)

    def runtime(self, name: str) -> ProviderRuntime:
        rt = self.providers.get(name)
        if rt is None:
            enabled = ", ".join(sorted(self.providers)) or "none"
            raise NotFound(f"unknown provider {name!r} (enabled providers: {enabled})", code="unknown_provider")
        return rt

    def configured_runtime(self, name: str) -> ProviderRuntime:
        rt = self.runtime(name)
        if not rt.configured:
            raise ProviderNotConfigured(
                f"{rt.info.title} is not configured on this hub: " + "; ".join(rt.problems),
                details={"missing": rt.problems},
            )
        return rt

    async def _find(self, user_id: str, provider: str) -> Integration | None:
        async def by_session() -> Integration | None:
            async with self.sessions() as session:
                return await session.scalar(
                    select(Integration).where(Integration.user_id == user_id, Integration.provider == provider)
                )

        return await self.reader.by_owner(user_id, provider, by_session)

    async def _get(self, integration_id: int) -> Integration | None:
        async def by_session() -> Integration | None:
            async with self.sessions() as session:
                return await session.get(Integration, integration_id)

        return await self.reader.by_id(integration_id, by_session)

    async def _require(self, user_id: str, rt: ProviderRuntime, *, allow_deleted: bool = True) -> Integration:
        row = await self._find(user_id, rt.name)
        if row is None or (not allow_deleted and row.status == Status.DELETED):
            raise NotFound(
                f"no {rt.info.title} integration for this user; connect one with GET /api/integrations/{rt.name}/connect",
                code="integration_not_found",
            )
        return row

    # --- catalogue and views ---------------------------------------------------------

    def catalogue(self) -> dict[str, Any]:
        providers = []
        for name in sorted(self.providers):
            rt = self.providers[name]
            info = rt.info
            providers.append(
                {
                    "name": name,
                    "title": info.title,
                    "description": info.description,
                    "auth": info.auth,
                    "configured": rt.configured,
                    "problems": rt.problems,
                    "scopes": list(rt.provider.scopes),
                    "actions": [
                        {
                            "name": a.name,
                            "method": a.method,
                            "path": f"/api/integrations/{name}/{a.path}",
                            "summary": a.summary,
                            "inputSchema": a.input_schema,
                        }
                        for a in rt.plugin.actions
                    ],
                }
            )
        failures = [{"name": f.name, "source": f.source, "error": f.error} for f in self.registry.failures]
        return {"providers": providers, "failures": failures}

    def view(self, row: Integration, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        rt = self.providers.get(row.provider)
        meta = account_of(row.meta)
        out: dict[str, Any] = {
            "provider": row.provider,
            "title": rt.info.title if rt else row.provider,
            "status": row.status,
            "statusReason": row.status_reason,
            "account": meta,
            "scopes": list(row.scopes or []),
            "tokenExpiresAt": _iso(row.token_expiry),
            "hasCredentials": row.access_token is not None,
            "hasRefreshToken": row.refresh_token is not None,
            "connectedAt": _iso(row.created_at),
            "updatedAt": _iso(row.updated_at),
            "lastSyncAt": _iso(row.last_sync_at),
        }
        if summary is not None:
            out["stats"] = summary
        return out

    async def list_integrations(self, caller: Caller) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = list(
                (
                    await session.scalars(
                        select(Integration)
                        .where(Integration.user_id == caller.user_id, Integration.status != Status.DELETED.value)
                        .order_by(Integration.provider)
                    )
                ).all()
            )
            await self.activity.flush()
            sums = await activity.summaries(session, [r.id for r in rows])
        return [self.view(r, sums.get(r.id)) for r in rows if r.provider in self.providers]

    async def get_integration(self, caller: Caller, provider: str) -> dict[str, Any]:
        rt = self.runtime(provider)
        row = await self._require(caller.user_id, rt)
        await self.activity.flush()
        async with self.sessions() as session:
            sums = await activity.summaries(session, [row.id])
        return self.view(row, sums[row.id])

    # --- connecting --------------------------------------------------------------------

    def redirect_uri(self, provider: str) -> str:
        return f"{self.config.public_url}/api/integrations/{provider}/callback"

    def check_return_url(self, url: str | None) -> str | None:
        """``url`` normalised, if it leads somewhere ``server.allowed_redirects`` allows; the
        callback later sends the browser to this normalised form, never to the text given."""
        if not url:
            return None
        if len(url) > 2048:
            raise BadRequest("return_url: longer than 2048 characters", details={"field": "return_url"})
        try:
            place = redirects.parse(url)
        except redirects.Refused as exc:
            raise BadRequest(f"return_url: {exc}", details={"field": "return_url"}, code=exc.code) from None
        if any(place.within(allowed) for allowed in self._allowed_redirects()):
            return place.url()
        raise BadRequest(
            "return_url: not in server.allowed_redirects; add its origin there to allow it",
            details={"field": "return_url"},
            code="return_url_not_allowed",
        )

    def _allowed_redirects(self) -> list[redirects.Place]:
        places = []
        for entry in self.config.server.allowed_redirects:
            try:
                places.append(redirects.parse(entry))
            except redirects.Refused:
                continue  # refused at start-up; one added later that is unusable allows nothing
        return places

    async def begin_connect(self, caller: Caller, provider: str, return_url: str | None = None) -> dict[str, Any]:
        rt = self.configured_runtime(provider)
        return_url = self.check_return_url(return_url)
        state = secrets.token_urlsafe(STATE_BYTES)
        state_hash = hash_state(state)
        verifier = pkce.new_verifier() if rt.info.pkce and rt.info.auth == "oauth2" else None
        now = utcnow()
        expires = now + timedelta(seconds=self.config.security.state_ttl_seconds)
        request = AuthorizationRequest(
            state=state,
            redirect_uri=self.redirect_uri(provider),
            scopes=rt.provider.scopes,
            code_challenge=pkce.challenge(verifier) if verifier else None,
            code_challenge_method="S256" if verifier else None,
        )
        url = await self.registry.call(provider, "hub_authorization_url", provider=rt.provider, request=request)
        async with self.sessions.begin() as session:
            await _serialise_user_states(session, caller.user_id)
            # Housekeeping on the side: a state past its life is useless from that moment.
            await session.execute(
                delete(OAuthState)
                .where(OAuthState.id.in_(_unlocked(select(OAuthState.id).where(OAuthState.expires_at <= now))))
                .execution_options(synchronize_session=False)
            )
            session.add(
                OAuthState(
                    state_hash=state_hash,
                    user_id=caller.user_id,
                    provider=provider,
                    code_verifier=self.keyring.encrypt(verifier, state_context(state_hash)) if verifier else None,
                    return_url=return_url,
                    created_at=now,
                    expires_at=expires,
                )
            )
            await session.flush()
            await self._trim_states(session, caller.user_id)
        return {"authUrl": url, "expiresAt": _iso(expires)}

    async def _trim_states(self, session: AsyncSession, user_id: str) -> None:
        """Keep only the user's newest ``security.max_pending_states`` states, used or not.

        Dropping the oldest rather than refusing the connect means a user whose earlier
        tabs were abandoned (or a client that loops) is never locked out: the newest
        connect always works, and a dropped one is answered ``invalid_state``."""
        newest = (
            select(OAuthState.id)
            .where(OAuthState.user_id == user_id)
            .order_by(OAuthState.id.desc())
            .limit(self.config.security.max_pending_states)
        )
        older = select(OAuthState.id).where(OAuthState.user_id == user_id, OAuthState.id.not_in(newest))
        await session.execute(
            delete(OAuthState).where(OAuthState.id.in_(_unlocked(older))).execution_options(synchronize_session=False)
        )

    async def consume_state(self, provider: str, state: str | None, *, consume: bool = True) -> OAuthState:
        """Take a state for use: it must exist, be this provider's, unused and unexpired.

        With ``consume=False`` the checks run but the state stays usable (the token flow's
        page load, which is followed by the POST that really uses it)."""
        if not state:
            raise BadRequest("state: missing from the callback", details={"field": "state"}, code="invalid_state")
        state_hash = hash_state(state)
        now = utcnow()
        async with self.sessions.begin() as session:
            spent = False
            if consume:
                # One conditional UPDATE, so exactly one of any number of concurrent callers
                # wins: SQLite ignores SELECT ... FOR UPDATE, and a read-then-write let every
                # racing request through.
                result = await session.execute(
                    update(OAuthState)
                    .where(
                        OAuthState.state_hash == state_hash,
                        OAuthState.provider == provider,
                        OAuthState.consumed_at.is_(None),
                        OAuthState.expires_at > now,
                    )
                    .values(consumed_at=now)
                    .execution_options(synchronize_session=False)
                )
                spent = result.rowcount == 1
            row = await session.scalar(select(OAuthState).where(OAuthState.state_hash == state_hash))
        problem = _state_problem(row, provider, now)
        if row is not None and (spent or (not consume and problem is None)):
            return row
        # A row with nothing wrong that the UPDATE did not match was spent by another
        # request in between.
        raise problem or _state_replayed()

    async def complete_callback(self, provider: str, query: Mapping[str, str]) -> CallbackOutcome:
        rt = self.runtime(provider)
        title = rt.info.title
        state = await self.consume_state(provider, query.get("state"))
        if query.get("error"):
            code = query.get("error", "")[:100]
            detail = query.get("error_description", "")[:300]
            message = (
                f"Access to {title} was declined, so nothing was connected."
                if code == "access_denied"
                else f"{title} reported an error ({code}){': ' + detail if detail else ''}."
            )
            err = BadRequest(message, code=code if code == "access_denied" else "provider_denied", details={"providerError": code})
            return CallbackOutcome(provider, title, False, message, state.return_url, err)
        code = query.get("code")
        if not code:
            raise BadRequest("code: missing from the callback", details={"field": "code"})
        if not rt.configured:
            raise ProviderNotConfigured(f"{title} is not configured on this hub")
        verifier = None
        if state.code_verifier:
            try:
                verifier = self.keyring.decrypt(state.code_verifier, state_context(state.state_hash))
            except DecryptionFailed:
                raise BadRequest("state: its stored verifier cannot be read; start again with connect", code="invalid_state") from None
        started = time.perf_counter()
        existing = await self._find(state.user_id, provider)
        try:
            token = await self.registry.call(
                provider, "hub_exchange_code", provider=rt.provider, code=code, redirect_uri=self.redirect_uri(provider), code_verifier=verifier
            )
        except HubError as exc:
            if existing is not None:
                await self.record(existing, "exchange_code", started, error=exc)
            log.warning("code exchange with %s failed: %s", provider, redact_text(exc.message, [code]))
            return CallbackOutcome(provider, title, False, f"{title} did not accept the authorization: {exc.message}", state.return_url, exc)
        row, account = await self._grant(rt, state.user_id, token, started, "exchange_code", reason="connected through the authorization flow")
        return CallbackOutcome(
            provider, title, True, f"{title} is connected{' as ' + account if account else ''}.", state.return_url, None, self.view(row)
        )

    async def complete_token_flow(self, provider: str, state: Any, token: Any) -> tuple[dict[str, Any], str | None]:
        """The token flow's last step: the callback page posts the token with the state,
        which names the user (so no JWT is needed) and is used up by it."""
        rt = self.configured_runtime(provider)
        if rt.info.auth != "token":
            raise BadRequest(f"state: {rt.info.title} connects through the authorization-code callback, not by posting a token", details={"field": "state"})
        if not isinstance(state, str):
            raise BadRequest("state: must be the state string from the callback URL", details={"field": "state"}, code="invalid_state")
        _check_token_text(token)
        row = await self.consume_state(provider, state)
        view = await self.import_token(Caller(row.user_id, {}), provider, token)
        return view, row.return_url

    async def import_token(self, caller: Caller, provider: str, token: Any) -> dict[str, Any]:
        rt = self.configured_runtime(provider)
        _check_token_text(token)
        started = time.perf_counter()
        try:
            tokens = await self.registry.call(provider, "hub_import_token", provider=rt.provider, token=token.strip())
        except ProviderAuthError as exc:
            raise _token_rejected(rt, exc) from None
        row, _ = await self._grant(rt, caller.user_id, tokens, started, "import_token", reason="token supplied by the client")
        return self.view(row)

    async def _grant(
        self, rt: ProviderRuntime, user_id: str, token: TokenSet, started: float, action: str, *, reason: str
    ) -> tuple[Integration, str]:
        """Verify a new token with the identity hook, then store it and make the integration ACTIVE."""
        try:
            account: AccountInfo = await self.registry.call(rt.name, "hub_account_identity", provider=rt.provider, token=token)
        except ProviderAuthError as exc:
            raise _token_rejected(rt, exc) from None
        now = utcnow()
        replaced: tuple[TokenSet, dict[str, Any]] | None = None
        for attempt in range(2):
            try:
                async with self.sessions.begin() as session:
                    row = await session.scalar(
                        select(Integration).where(Integration.user_id == user_id, Integration.provider == rt.name).with_for_update()
                    )
                    replaced = None
                    if row is None:
                        row = Integration(user_id=user_id, provider=rt.name, status=None, version=0, created_at=now, meta={}, scopes=[])
                        session.add(row)
                    else:
                        token, replaced = self._carry_over(row, token, account)
                    encrypt_into(self.keyring, row, token)
                    meta = account.as_metadata()
                    if token.raw:
                        meta["token"] = _public(token.raw)
                    previous = row.meta or {}
                    if previous.get("state") and _same_account(previous, account):
                        meta["state"] = previous["state"]  # same account: its sync cursors still apply
                    row.meta = meta
                    row.refresh_lease_until = None
                    row.last_sync_at = now
                    transition = move(row, Status.ACTIVE, reason, now=now)
                    await session.flush()
                    if transition is None:
                        row.version += 1
                        row.updated_at = now
                        row.status_reason = reason
                    else:
                        transition.integration_id = row.id
                        session.add(transition)
                break
            except IntegrityError:
                if attempt:
                    raise
        await self.record(row, action, started, response={"account": account.as_metadata()})
        if replaced is not None:
            await self._revoke_replaced(rt, row, *replaced)
        return row, account.name or account.email or account.team_name or ""

    def _carry_over(self, row: Integration, token: TokenSet, account: AccountInfo) -> tuple[TokenSet, tuple[TokenSet, dict[str, Any]] | None]:
        """What becomes of the grant ``row`` holds when ``token`` replaces it: the new token
        (with the old refresh token, if that is still this account's), and the old grant
        with its account when it belongs to another account and must be revoked."""
        try:
            old = decrypt_token(self.keyring, row) if row.status != Status.DELETED else None
        except (DecryptionFailed, HubError):
            old = None  # nothing readable: nothing to keep, nothing to revoke
        if old is None:
            return token, None
        previous = row.meta or {}
        if _same_account(previous, account):
            if not token.refresh_token and old.refresh_token:
                # A re-consent that returns no refresh token keeps the one we have.
                token = TokenSet(**{**token.__dict__, "refresh_token": old.refresh_token})
            return token, None
        if old.access_token == token.access_token:
            return token, None
        # Another account's grant: keeping its refresh token would have later refreshes act
        # as that account, and nobody could revoke it any more.
        return token, (old, {k: previous[k] for k in ("accountId", "teamId") if previous.get(k)})

    async def _revoke_replaced(self, rt: ProviderRuntime, row: Integration, old: TokenSet, account: dict[str, Any]) -> None:
        """Best effort: the new connection is stored whatever the provider answers."""
        started = time.perf_counter()
        request = {"reason": "replaced by a connection to another account", "replacedAccount": account}
        secrets_ = tuple(t for t in (old.access_token, old.refresh_token) if t)
        try:
            await self.registry.call(rt.name, "hub_revoke_token", provider=rt.provider, token=old)
        except Exception as exc:
            if not isinstance(exc, HubError):
                log.warning("provider plugin %s raised %s while revoking a replaced grant", rt.name, type(exc).__name__)
            await self.record(row, "revoke_token", started, request=request, error=exc, secrets_=secrets_)
            return
        await self.record(row, "revoke_token", started, request=request, response={"revoked": True}, secrets_=secrets_)

    # --- state changes ---------------------------------------------------------------

    async def set_status(self, row: Integration, to: Status, reason: str) -> None:
        """Move one integration (re-read under the transaction) and log the transition."""
        async with self.sessions.begin() as session:
            fresh = await session.get(Integration, row.id, with_for_update=True)
            if fresh is None:
                return
            transition = move(fresh, to, reason)
            if transition is not None:
                session.add(transition)
        row.status, row.status_reason, row.version = fresh.status, fresh.status_reason, fresh.version

    async def store_refreshed(self, rt: ProviderRuntime, row: Integration, token: TokenSet, started: float) -> None:
        async with self.sessions.begin() as session:
            fresh = await session.get(Integration, row.id, with_for_update=True)
            assert fresh is not None
            encrypt_into(self.keyring, fresh, token)
            if token.raw:
                fresh.meta = {**(fresh.meta or {}), "token": _public(token.raw)}
            fresh.refresh_lease_until = None
            fresh.version += 1
            fresh.updated_at = utcnow()
            if fresh.status == Status.EXPIRED:
                transition = move(fresh, Status.ACTIVE, "refresh succeeded")
                if transition is not None:
                    session.add(transition)
        row.status, row.version, row.refresh_lease_until = fresh.status, fresh.version, None
        row.access_token, row.refresh_token, row.token_expiry = fresh.access_token, fresh.refresh_token, fresh.token_expiry
        await self.record(row, "refresh_token", started, response={"expiresAt": _iso(token.expires_at)})

    async def refresh(self, caller: Caller, provider: str) -> dict[str, Any]:
        rt = self.configured_runtime(provider)
        row = await self._require(caller.user_id, rt, allow_deleted=False)
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            raise refused(provider, Status(row.status), "refresh")
        if row.refresh_token is None:
            raise Conflict(
                f"the {rt.info.title} integration has no refresh token (its access token does not expire); nothing to refresh",
                code="no_refresh_token",
            )
        await self.tokens.refresh(rt, row, reason="requested", stale=(await self.tokens.read(row)).access_token)
        return self.view(await self._require(caller.user_id, rt))

    async def live_status(self, caller: Caller, provider: str) -> dict[str, Any]:
        rt = self.configured_runtime(provider)
        row = await self._require(caller.user_id, rt)
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            return {**self.view(row), "checked": False}
        started = time.perf_counter()
        snap = await self.tokens.usable(rt, row)
        try:
            account = await self._with_auth_retry(rt, snap, lambda s: self.registry.call(rt.name, "hub_account_identity", provider=rt.provider, token=s.token))
        except HubError as exc:
            await self.record(row, "account_identity", started, error=exc)
            raise
        async with self.sessions.begin() as session:
            fresh = await session.get(Integration, row.id)
            assert fresh is not None
            fresh.meta = {**account.as_metadata(), **_internal(fresh.meta)}
            fresh.last_sync_at = utcnow()
        await self.record(row, "account_identity", started, response={"account": account.as_metadata()})
        return {**self.view(await self._require(caller.user_id, rt)), "checked": True}

    async def change_status(self, caller: Caller, provider: str, body: Any) -> dict[str, Any]:
        rt = self.runtime(provider)
        if not isinstance(body, Mapping) or set(body) - {"status", "reason"} or "status" not in body:
            raise BadRequest('body: expected {"status": "ACTIVE" | "INACTIVE"}', details={"field": "status"})
        wanted = body["status"]
        if wanted not in ("ACTIVE", "INACTIVE"):
            raise BadRequest("status: must be ACTIVE or INACTIVE", details={"field": "status"})
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
            raise BadRequest("reason: must be a string of at most 200 characters", details={"field": "reason"})
        row = await self._require(caller.user_id, rt)
        current = Status(row.status)
        if wanted == "INACTIVE":
            if current != Status.INACTIVE:
                if current == Status.DELETED:
                    raise refused(provider, current, "deactivate")
                await self.set_status(row, Status.INACTIVE, reason or "deactivated by the user")
        elif current != Status.ACTIVE:
            if current != Status.INACTIVE:
                raise refused(provider, current, "reactivate")
            await self._reactivate(rt, row, reason or "reactivated by the user")
        return self.view(await self._require(caller.user_id, rt))

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
            await self.record(row, "account_identity", started, error=exc)
            raise Conflict(
                f"{rt.info.title} no longer accepts this integration's credentials ({exc.provider_code or 'rejected'}); connect again",
                code="reconnect_required",
            ) from None
        await self.record(row, "account_identity", started, response={"account": account.as_metadata()})
        await self.set_status(row, Status.ACTIVE, reason)

    async def disconnect(self, caller: Caller, provider: str) -> dict[str, Any]:
        rt = self.runtime(provider)
        row = await self._require(caller.user_id, rt)
        current = Status(row.status)
        if current == Status.DELETED:
            raise refused(provider, current, "disconnect")
        await self._revoke_and_wipe(rt, row, Status.INACTIVE, "disconnected by the user")
        return self.view(await self._require(caller.user_id, rt))

    async def delete(self, caller: Caller, provider: str) -> dict[str, Any]:
        rt = self.runtime(provider)
        row = await self._require(caller.user_id, rt)
        if row.status == Status.DELETED:
            raise refused(provider, Status.DELETED, "delete")
        await self._revoke_and_wipe(rt, row, Status.DELETED, "deleted by the user")
        return self.view(await self._require(caller.user_id, rt))

    async def _revoke_and_wipe(self, rt: ProviderRuntime, row: Integration, to: Status, reason: str) -> None:
        if row.access_token is not None and rt.configured:
            started = time.perf_counter()
            try:
                token = decrypt_token(self.keyring, row)
            except (DecryptionFailed, HubError):
                token = None  # nothing usable to revoke; wiping is all that is left
            if token is not None:
                try:
                    await self.registry.call(rt.name, "hub_revoke_token", provider=rt.provider, token=token)
                    await self.record(row, "revoke_token", started, response={"revoked": True})
                except HubError as exc:
                    # Revocation is best effort: the user asked to be disconnected, and is.
                    await self.record(row, "revoke_token", started, error=exc)
        async with self.sessions.begin() as session:
            fresh = await session.get(Integration, row.id, with_for_update=True)
            assert fresh is not None
            fresh.access_token = fresh.refresh_token = None
            fresh.token_expiry = None
            fresh.refresh_lease_until = None
            transition = move(fresh, to, reason)
            if transition is None:
                fresh.version += 1
            else:
                session.add(transition)

    # --- activity ----------------------------------------------------------------------

    async def record(
        self,
        integration: Integration,
        action: str,
        started: float,
        *,
        request: Any = None,
        response: Any = None,
        error: BaseException | None = None,
        secrets_: tuple[str, ...] = (),
        pending_id: int | None = None,
    ) -> None:
        limit = self.config.activity.max_payload_bytes
        known = (*secrets_, *self.secret_values())
        message = None
        if error is not None:
            message = redact_text(error.message if isinstance(error, HubError) else type(error).__name__, known)
            provider_code = getattr(error, "provider_code", None)
            if provider_code and provider_code not in message:
                message = f"{message} [{provider_code}]"
        elapsed = time.perf_counter() - started
        outcome = "success" if error is None else getattr(error, "code", None) or "error"
        metrics.UPSTREAM_CALLS.labels(integration.provider, action, outcome).inc()
        metrics.UPSTREAM_SECONDS.labels(integration.provider, action).observe(elapsed)
        row = {
            "integration_id": integration.id,
            "action": action,
            "status": activity.FAILED if error is not None else activity.SUCCESS,
            "request_data": capped(redact(request, known), limit),
            "response_data": capped(redact(response, known), limit),
            "error_message": message,
            "duration_ms": int(elapsed * 1000),
        }
        if pending_id is None:
            await self.activity.record(row)
        else:
            await self.activity.finish_pending(pending_id, row)

    async def logs(self, caller: Caller, provider: str, query: LogQuery) -> dict[str, Any]:
        return await self._read_activity(caller, provider, lambda session, iid: activity.list_logs(session, iid, query))

    async def stats(self, caller: Caller, provider: str, days: int) -> dict[str, Any]:
        return await self._read_activity(caller, provider, lambda session, iid: activity.stats(session, iid, days))

    async def daily(self, caller: Caller, provider: str, days: int) -> dict[str, Any]:
        return await self._read_activity(caller, provider, lambda session, iid: activity.daily(session, iid, days))

    async def _read_activity(self, caller: Caller, provider: str, query: Callable[[AsyncSession, int], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """``query`` over the caller's integration, once the rows buffered before the read
        are written (so callers see their own calls), but never waiting on rows queued after
        it, nor longer than the writer's ``read_wait``: past that it answers with what is
        committed."""
        row = await self._require(caller.user_id, self.runtime(provider))
        await self.activity.flush()
        async with self.sessions() as session:
            return await query(session, row.id)

    # --- actions -----------------------------------------------------------------------

    def resolve_action(self, provider: str, method: str, path: str) -> tuple[ProviderRuntime, Action, dict[str, str]]:
        from .errors import MethodNotAllowed

        rt = self.runtime(provider)
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

    async def run_action(self, caller: Caller, rt: ProviderRuntime, action: Action, raw_input: dict[str, Any]) -> Any:
        data = rt.validators[action.name].validate(raw_input)
        if not rt.configured:
            self.configured_runtime(rt.name)
        row = await self._require(caller.user_id, rt, allow_deleted=False)
        if row.status not in (Status.ACTIVE, Status.EXPIRED):
            raise refused(rt.name, Status(row.status), f"run {action.name}")
        snap = await self.tokens.usable(rt, row)
        started = time.perf_counter()
        holder: dict[str, CallContext] = {}

        async def attempt(s: Snapshot) -> Any:
            headers = await self.registry.call(rt.name, "hub_auth_headers", provider=rt.provider, token=s.token)
            ctx = CallContext(
                provider=rt.provider,
                action=action,
                input=dict(data),
                user_id=caller.user_id,
                http=rt.provider.http.with_headers(headers),
                access_token=s.token.access_token,
                metadata=account_of(s.integration.meta),
                state=dict((s.integration.meta or {}).get("state") or {}),
            )
            holder["ctx"] = ctx
            return await action.handler(ctx)

        secrets_ = tuple(t for t in (snap.token.access_token, snap.token.refresh_token) if t)
        pending_id = None
        if action.pending:
            limit = self.config.activity.max_payload_bytes
            pending_id = await self.activity.start_pending(
                {"integration_id": row.id, "action": action.name, "request_data": capped(redact(data, secrets_), limit), "duration_ms": 0}
            )
        try:
            result = await self._with_auth_retry(rt, snap, attempt)
        except HubError as exc:
            await self.record(row, action.name, started, request=data, error=exc, secrets_=secrets_, pending_id=pending_id)
            raise
        except (Exception, asyncio.CancelledError) as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                # A real cancellation (shutdown ran out of time): not the plugin's doing. A
                # PENDING row must not stay pending for ever, so complete it before going.
                if pending_id is not None:
                    gone = TransientProviderError(f"{action.name} was cancelled before it finished", code="cancelled")
                    await asyncio.shield(self.record(row, action.name, started, request=data, error=gone, secrets_=secrets_, pending_id=pending_id))
                raise
            # A bug in the plugin: the call failed, the hub did not. Name the plugin, keep
            # the details (which may hold anything) in the server log by type only.
            log.error("provider plugin %s raised %s in action %s", rt.name, type(exc).__name__, action.name)
            failure = ProviderError(
                f"the {rt.info.title} plugin failed while running {action.name} ({type(exc).__name__}); the operator's log has more",
                code="plugin_error",
            )
            await self.record(row, action.name, started, request=data, error=failure, secrets_=secrets_, pending_id=pending_id)
            raise failure from None
        ctx = holder["ctx"]
        if ctx.state_updates or ctx.mark_synced:
            await self._save_call_state(row.id, ctx)
        await self.record(row, action.name, started, request=data, response=result, secrets_=secrets_, pending_id=pending_id)
        return result

    async def _save_call_state(self, integration_id: int, ctx: CallContext) -> None:
        async with self.sessions.begin() as session:
            fresh = await session.get(Integration, integration_id)
            assert fresh is not None
            if ctx.state_updates:
                meta = dict(fresh.meta or {})
                meta["state"] = {**(meta.get("state") or {}), **ctx.state_updates}
                fresh.meta = meta
            if ctx.mark_synced:
                fresh.last_sync_at = utcnow()

    async def _with_auth_retry(self, rt: ProviderRuntime, snap: Snapshot, fn: Any) -> Any:
        """Run ``fn(snapshot)``; on an auth failure refresh once where possible, else ERROR."""
        try:
            return await fn(snap)
        except ProviderAuthError as exc:
            failure = exc
        if snap.token.refresh_token:
            fresh = await self.tokens.refresh(rt, snap.integration, reason="provider rejected the access token", stale=snap.token.access_token)
            try:
                return await fn(fresh)
            except ProviderAuthError as exc:
                failure = exc
        code = failure.provider_code or "unauthorized"
        if isinstance(failure, TokenExpired) and not snap.token.refresh_token:
            await self.tokens.mark_expired(snap.integration, f"{rt.info.title} says the token expired")
            raise ReconnectRequired(
                f"the {rt.info.title} token has expired and cannot be refreshed: connect again",
                details={"status": Status.EXPIRED.value, "providerError": code},
            )
        await self.set_status(snap.integration, Status.ERROR, f"{rt.info.title} rejected the credentials ({code}): reconnect required")
        raise ReconnectRequired(
            f"{rt.info.title} no longer accepts this integration's credentials ({code}); the integration is now ERROR: connect again",
            details={"status": Status.ERROR.value, "providerError": code},
        )

    # --- keys --------------------------------------------------------------------------


def _token_rejected(rt: ProviderRuntime, exc: ProviderAuthError) -> BadRequest:
    return BadRequest(
        f"{rt.info.title} rejected the token ({exc.provider_code or 'invalid'}): nothing was stored",
        code="token_rejected",
        details={"providerError": exc.provider_code},
    )


def _check_token_text(token: Any) -> None:
    if not isinstance(token, str) or not token.strip():
        raise BadRequest("token: required, a non-empty string", details={"field": "token"})
    # Tokens are printable ASCII; anything else (spaces, control characters) could not even
    # travel in an Authorization header.
    if len(token) > MAX_TOKEN_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in token.strip()):
        raise BadRequest(
            "token: not a plausible token (too long, or characters other than printable ASCII)", details={"field": "token"}
        )


def _state_replayed() -> BadRequest:
    return BadRequest(
        "state: already used; a state is good for one callback only (start again with connect)",
        code="state_replayed",
        details={"field": "state"},
    )


def _state_problem(row: OAuthState | None, provider: str, now: datetime) -> BadRequest | None:
    """Why a state cannot be used (``row`` as it is now, or None if there is none); None
    when it can."""
    if row is None:
        return BadRequest(
            "state: unknown; it was never issued by this hub (forged or mistyped), or newer connects replaced it",
            code="invalid_state",
            details={"field": "state"},
        )
    if row.provider != provider:
        return BadRequest(f"state: it was issued for {row.provider}, not {provider}", code="invalid_state", details={"field": "state"})
    if row.consumed_at is not None:
        return _state_replayed()
    if row.expires_at <= now:
        return BadRequest("state: expired; start again with connect", code="state_expired", details={"field": "state"})
    return None


# The two-key form of PostgreSQL's advisory locks, which never collides with the one-key
# lock that serialises migrations; the second key is the user id's hash.
_STATE_LOCK_SPACE = 0x48554202


async def _serialise_user_states(session: AsyncSession, user_id: str) -> None:
    """On PostgreSQL, one connect per user at a time, until the transaction ends, so
    concurrent connects cannot each keep the cap and leave more than it between them.
    SQLite serialises writers anyway."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:user))"), {"space": _STATE_LOCK_SPACE, "user": user_id})


def _unlocked(ids: Select[Any]) -> Select[Any]:
    """Rows another transaction is already deleting are skipped, not waited for: two
    connects purging at once must never wait on each other (or deadlock)."""
    return ids.with_for_update(skip_locked=True)


def _same_account(meta: Mapping[str, Any], account: AccountInfo) -> bool:
    """Whether stored metadata names the account ``account`` is (the same id in the same
    team: a bot user id can repeat across workspaces)."""
    return (meta.get("accountId"), meta.get("teamId")) == (account.id, account.team_id)


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def state_context(state_hash: str) -> str:
    return "\x1f".join(("oauth_state", state_hash, "code_verifier"))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


INTERNAL_META = ("token", "state")


def account_of(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The account part of an integration's metadata (what views show)."""
    return {k: v for k, v in (meta or {}).items() if k not in INTERNAL_META}


def _internal(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (meta or {}).items() if k in INTERNAL_META}


def _public(raw: Mapping[str, Any]) -> dict[str, Any]:
    return redact(dict(raw))


__all__ = ["Hub", "ProviderRuntime", "CallbackOutcome", "check_providers", "hash_state", "ProviderError"]

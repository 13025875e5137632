"""Connecting an account: the authorization-code flow, the token flow, pasted tokens.

Every path ends in :meth:`Connector.grant`: the new token is verified with the
provider's identity hook, then stored and the integration made ACTIVE, in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from .. import pkce
from ..activity import Recorder
from ..errors import BadRequest, HubError, ProviderAuthError, ValidationFailed
from ..infra.auth import Caller
from ..infra.config import HubConfig
from ..infra import redirects
from ..infra.crypto import DecryptionFailed
from ..redact import redact_text
from ..registry import Registry
from ..store.integrations import IntegrationStore, public_token_fields
from ..store.models import ConnectSession, Integration, OAuthState, iso_utc, utcnow
from ..store.sessions import ConnectSessionStore
from ..store.states import StateStore
from .binding import check_state_binding
from ..types import AccountInfo, AuthorizationRequest, TokenSet
from ..events.outbox import Outbox
from .lifecycle import EVENT_OF, Status, log_move, move
from .runtime import ProviderRuntime, Providers

log = logging.getLogger("hub")

MAX_TOKEN_LENGTH = 4096


class DirectConnectDisabled(HubError):
    status, code = 403, "direct_connect_disabled"


@dataclass(frozen=True)
class CallbackOutcome:
    provider: str
    title: str
    ok: bool
    message: str
    return_url: str | None
    error: HubError | None = None
    integration: Integration | None = None
    # The connect session the flow was started from, if any (where to report back).
    session: ConnectSession | None = None


class Connector:
    def __init__(
        self,
        config: HubConfig,
        providers: Providers,
        registry: Registry,
        store: IntegrationStore,
        states: StateStore,
        recorder: Recorder,
        session_store: ConnectSessionStore,
        outbox: Outbox,
    ) -> None:
        self.outbox = outbox
        self.config = config
        self.providers = providers
        self.registry = registry
        self.store = store
        self.states = states
        self.recorder = recorder
        self.session_store = session_store

    def redirect_uri(self, provider: str) -> str:
        return f"{self.config.public_url}/api/integrations/{provider}/callback"

    def check_return_url(self, url: str | None) -> str | None:
        """``url`` normalised, if it leads somewhere ``server.allowed_redirects`` allows; the
        callback later sends the browser to this normalised form, never to the text given."""
        if not url:
            return None
        if len(url) > 2048:
            raise ValidationFailed("return_url: longer than 2048 characters", details={"field": "return_url"})
        try:
            place = redirects.parse(url)
        except redirects.Refused as exc:
            raise ValidationFailed(f"return_url: {exc}", details={"field": "return_url"}, code=exc.code) from None
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

    async def begin_direct(self, caller: Caller, provider: str, return_url: str | None = None) -> dict[str, Any]:
        """The plain connect route: an authorization URL bound to no browser, which is why
        ``security.allow_direct_connect`` can turn it off."""
        if not self.config.security.allow_direct_connect:
            raise DirectConnectDisabled(
                "direct connect is turned off on this hub (security.allow_direct_connect): create a connect session "
                "(POST /api/connect-sessions) and send the user's browser to its url",
                code="direct_connect_disabled",
            )
        return await self.begin(caller, provider, return_url)

    async def begin(self, caller: Caller, provider: str, return_url: str | None = None, *, session: ConnectSession | None = None) -> dict[str, Any]:
        """A state for the user, and the provider's authorization URL that carries it. From a
        connect session, the state is bound to the session and its cookie."""
        rt = self.providers.configured(provider)
        return_url = self.check_return_url(return_url) if session is None else session.return_url
        verifier = pkce.new_verifier() if rt.info.pkce and rt.info.auth == "oauth2" else None
        issued = await self.states.issue(
            caller.user_id, provider, verifier=verifier, return_url=return_url,
            session_id=session.id if session else None, cookie_hash=session.cookie_hash if session else None,
        )
        request = AuthorizationRequest(
            state=issued.state,
            redirect_uri=self.redirect_uri(provider),
            scopes=rt.provider.scopes,
            code_challenge=pkce.challenge(verifier) if verifier else None,
            code_challenge_method="S256" if verifier else None,
        )
        url = await self.registry.call(provider, "hub_authorization_url", provider=rt.provider, request=request)
        return {"authUrl": url, "expiresAt": iso_utc(issued.expires_at)}

    async def check_state(self, provider: str, state: str | None, cookies: Mapping[str, str] | None = None) -> OAuthState:
        """The token flow's page load: the state is checked but stays usable."""
        await self._check_binding(provider, state, cookies or {})
        return await self.states.consume(provider, state, consume=False)

    async def _check_binding(self, provider: str, state: str | None, cookies: Mapping[str, str]) -> ConnectSession | None:
        """Before a state is used: if a connect session's page started it, this browser must
        be the one that page ran in. Nothing is consumed when it is not."""
        row = await self.states.peek(state)
        if row is None or row.provider != provider or row.session_id is None:
            return None  # consume() says what is wrong, or the state is bound to no browser
        session = await self.session_store.get(row.session_id)
        check_state_binding(row, session, cookies)
        return session

    async def _finish_session(self, session: ConnectSession | None, provider: str) -> None:
        if session is not None:
            await self.session_store.complete(session.id, provider)

    async def complete_callback(self, provider: str, query: Mapping[str, str], cookies: Mapping[str, str] | None = None) -> CallbackOutcome:
        rt = self.providers.runtime(provider)
        title = rt.info.title
        session = await self._check_binding(provider, query.get("state"), cookies or {})
        state = await self.states.consume(provider, query.get("state"))
        if query.get("error"):
            code = query.get("error", "")[:100]
            detail = query.get("error_description", "")[:300]
            message = (
                f"Access to {title} was declined, so nothing was connected."
                if code == "access_denied"
                else f"{title} reported an error ({code}){': ' + detail if detail else ''}."
            )
            err = BadRequest(message, code=code if code == "access_denied" else "provider_denied", details={"providerError": code})
            return CallbackOutcome(provider, title, False, message, state.return_url, err, session=session)
        code = query.get("code")
        if not code:
            raise ValidationFailed("code: missing from the callback", details={"field": "code"})
        if not rt.configured:
            self.providers.configured(provider)
        verifier = self.states.verifier(state)
        started = time.perf_counter()
        existing = await self.store.find(state.user_id, provider)
        try:
            token = await self.registry.call(
                provider, "hub_exchange_code", provider=rt.provider, code=code, redirect_uri=self.redirect_uri(provider), code_verifier=verifier
            )
        except HubError as exc:
            if existing is not None:
                await self.recorder.record(existing, "exchange_code", started, error=exc)
            log.warning("code exchange with %s failed: %s", provider, redact_text(exc.message, [code]))
            with_provider_code(exc)
            return CallbackOutcome(provider, title, False, f"{title} did not accept the authorization: {exc.message}", state.return_url, exc, session=session)
        row, account = await self.grant(rt, state.user_id, token, started, "exchange_code", reason="connected through the authorization flow")
        await self._finish_session(session, provider)
        return CallbackOutcome(provider, title, True, f"{title} is connected{' as ' + account if account else ''}.", state.return_url, None, row, session)

    async def complete_token_flow(
        self, provider: str, state: Any, token: Any, cookies: Mapping[str, str] | None = None
    ) -> tuple[Integration, str | None, ConnectSession | None]:
        """The token flow's last step: the callback page posts the token with the state,
        which names the user (so no JWT is needed) and is used up by it."""
        rt = self.providers.configured(provider)
        if rt.info.auth != "token":
            raise ValidationFailed(f"state: {rt.info.title} connects through the authorization-code callback, not by posting a token", details={"field": "state"})
        if not isinstance(state, str):
            raise BadRequest("state: must be the state string from the callback URL", details={"field": "state"}, code="invalid_state")
        check_token_text(token)
        session = await self._check_binding(provider, state, cookies or {})
        row = await self.states.consume(provider, state)
        integration = await self.import_token(Caller(row.user_id, {}), provider, token)
        await self._finish_session(session, provider)
        return integration, row.return_url, session

    async def import_token(self, caller: Caller, provider: str, token: Any) -> Integration:
        rt = self.providers.configured(provider)
        check_token_text(token)
        started = time.perf_counter()
        try:
            tokens = await self.registry.call(provider, "hub_import_token", provider=rt.provider, token=token.strip())
        except ProviderAuthError as exc:
            raise token_rejected(rt, exc) from None
        row, _ = await self.grant(rt, caller.user_id, tokens, started, "import_token", reason="token supplied by the client")
        return row

    async def grant(self, rt: ProviderRuntime, user_id: str, token: TokenSet, started: float, action: str, *, reason: str) -> tuple[Integration, str]:
        """Verify a new token with the identity hook, then store it and make the integration ACTIVE."""
        try:
            account: AccountInfo = await self.registry.call(rt.name, "hub_account_identity", provider=rt.provider, token=token)
        except ProviderAuthError as exc:
            raise token_rejected(rt, exc) from None
        now = utcnow()
        replaced: tuple[TokenSet, dict[str, Any]] | None = None
        for attempt in range(2):
            try:
                async with self.store.locked_owner(user_id, rt.name) as (session, row):
                    replaced = None
                    if row is None:
                        row = Integration(user_id=user_id, provider=rt.name, status=None, version=0, created_at=now, meta={}, scopes=[])
                        session.add(row)
                    else:
                        token, replaced = self._carry_over(row, token, account)
                    self.store.encrypt_into(row, token)
                    meta = account.as_metadata()
                    if token.raw:
                        meta["token"] = public_token_fields(token.raw)
                    previous = row.meta or {}
                    if previous.get("state") and same_account(previous, account):
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
                    # A new grant is announced even when the integration was ACTIVE already.
                    await log_move(session, self.outbox, row, transition, event=EVENT_OF[Status.ACTIVE], reason=reason)
                break
            except IntegrityError:
                if attempt:
                    raise
        await self.recorder.record(row, action, started, response={"account": account.as_metadata()})
        if replaced is not None:
            await self._revoke_replaced(rt, row, *replaced)
        return row, account.name or account.email or account.team_name or ""

    def _carry_over(self, row: Integration, token: TokenSet, account: AccountInfo) -> tuple[TokenSet, tuple[TokenSet, dict[str, Any]] | None]:
        """What becomes of the grant ``row`` holds when ``token`` replaces it: the new token
        (with the old refresh token, if that is still this account's), and the old grant
        with its account when it belongs to another account and must be revoked."""
        try:
            old = self.store.decrypt(row) if row.status != Status.DELETED else None
        except (DecryptionFailed, HubError):
            old = None  # nothing readable: nothing to keep, nothing to revoke
        if old is None:
            return token, None
        previous = row.meta or {}
        if same_account(previous, account):
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
            await self.recorder.record(row, "revoke_token", started, request=request, error=exc, secrets_=secrets_)
            return
        await self.recorder.record(row, "revoke_token", started, request=request, response={"revoked": True}, secrets_=secrets_)


def same_account(meta: Mapping[str, Any], account: AccountInfo) -> bool:
    """Whether stored metadata names the account ``account`` is (the same id in the same
    team: a bot user id can repeat across workspaces)."""
    return (meta.get("accountId"), meta.get("teamId")) == (account.id, account.team_id)


def with_provider_code(exc: HubError) -> None:
    """Give a failed exchange's answer the provider's own code in ``details.providerError``,
    as every other provider failure has it (the callback answers ``details`` as they are)."""
    code = getattr(exc, "provider_code", None)
    if code and not (isinstance(exc.details, dict) and "providerError" in exc.details):
        exc.details = {**(exc.details if isinstance(exc.details, dict) else {}), "providerError": code}


def token_rejected(rt: ProviderRuntime, exc: ProviderAuthError) -> BadRequest:
    return BadRequest(
        f"{rt.info.title} rejected the token ({exc.provider_code or 'invalid'}): nothing was stored",
        code="token_rejected",
        details={"providerError": exc.provider_code},
    )


def check_token_text(token: Any) -> None:
    if not isinstance(token, str) or not token:
        raise ValidationFailed("token: required, a non-empty string", details={"field": "token"})
    # Tokens are printable ASCII without spaces (the pattern in the OpenAPI document); anything
    # else (spaces, control characters) could not even travel in an Authorization header.
    if len(token) > MAX_TOKEN_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in token):
        raise ValidationFailed(
            f"token: not a plausible token (more than {MAX_TOKEN_LENGTH} characters, or characters other than printable ASCII "
            "without spaces)",
            details={"field": "token"},
        )

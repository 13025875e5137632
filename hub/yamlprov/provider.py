"""One provider plugin that implements the hooks from a definition, so the core treats a
YAML provider exactly as it treats a Python one: the registry loads it, dispatch calls its
hooks, and what it leaves out (the code exchange, a pasted token) falls back to the core's
OAuth 2.0 defaults in :mod:`hub.oauth`."""

from __future__ import annotations

import base64
import importlib.metadata
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .. import oauth
from ..errors import GrantRejected, MalformedResponse, ProviderNotConfigured
from ..hookspecs import hookimpl
from ..oauth import provider_error, raise_for_status
from ..ratelimit import RateLimit
from ..types import (
    CLIENT_CREDENTIALS,
    AccountInfo,
    Action,
    AuthorizationRequest,
    ConfigField,
    Endpoints,
    Provider,
    ProviderInfo,
    Sandbox,
    TokenSet,
)
from ..upstream import UpstreamResponse, path_segment
from .actions import build_actions
from .schema import Definition, ErrorRule
from .values import pick

# The kit offers the fake built from a definition under this entry-point group; the core
# finds it the way it finds plugins, never importing the kit (docs/architecture.md).
FAKE_GROUP = "hub.yaml_fakes"


class YamlProvider:
    """The hooks of one provider file. ``source`` names the file it came from."""

    def __init__(self, definition: Definition, source: str) -> None:
        self.definition = definition
        self.source = source
        self.__name__ = f"yaml:{definition.name}"
        self._info = _info(definition)
        self._actions = build_actions(definition)
        self._rules = [(rule, re.compile(rule.match) if rule.match else None) for rule in definition.errors]

    def __repr__(self) -> str:
        return f"<YamlProvider {self.definition.name} from {self.source}>"

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return self._info

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return list(self._actions)

    @hookimpl
    def hub_authorization_url(self, provider: Provider, request: AuthorizationRequest) -> str:
        if self.definition.auth.kind == "oauth2":
            return oauth.hub_authorization_url(provider, request)
        # A pasted credential has no consent page. Where a page hands one back in the URL
        # fragment (the generated fake's), the hub's token flow takes it from there.
        if not provider.endpoints.authorize:
            raise ProviderNotConfigured(
                f"{provider.info.title} takes a pasted credential: POST it to /api/integrations/{provider.name}/tokens"
            )
        query = urlencode({"redirect_uri": request.redirect_uri, "state": request.state})
        return f"{provider.endpoints.authorize}{'&' if '?' in provider.endpoints.authorize else '?'}{query}"

    @hookimpl
    async def hub_refresh_token(self, provider: Provider, token: TokenSet) -> TokenSet:
        if self.definition.auth.kind != "oauth2" or not self.definition.auth.refresh:
            raise GrantRejected(f"{provider.info.title} credentials cannot be refreshed: connect again for new ones")
        return await oauth.hub_refresh_token(provider, token)

    @hookimpl
    async def hub_revoke_token(self, provider: Provider, token: TokenSet) -> None:
        revoke = self.definition.auth.revoke
        if revoke is None or not provider.endpoints.revoke:
            return  # nothing upstream to end: the core forgets the credential
        if (revoke.method, revoke.body, revoke.token_field, revoke.client_auth) == ("POST", "form", "token", "basic"):
            return await oauth.hub_revoke_token(provider, token)
        url = re.sub(r"\{client_id\}", lambda _: path_segment("client_id", provider.client_id or ""), provider.endpoints.revoke)
        value = {revoke.token_field: token.access_token}
        headers = oauth.client_auth_headers(provider) if revoke.client_auth == "basic" else {}
        if revoke.client_auth == "form":
            value.update({"client_id": provider.client_id or "", "client_secret": provider.client_secret or ""})
        body = {"json": value} if revoke.body == "json" else {"data": value}
        response = await provider.http.request(revoke.method, url, headers=headers, check=False, **body)
        if response.status >= 400 and response.status != 404:  # 404: already gone
            raise_for_status(response, info=provider.info)

    @hookimpl
    async def hub_account_identity(self, provider: Provider, token: TokenSet) -> AccountInfo:
        ident = self.definition.identity
        params = self._key_query(token)
        response = await provider.http.request(ident.method, ident.path.strip("/"), headers=self.hub_auth_headers(provider, token), params=params)
        body = response.json()
        account = pick(body, ident.id)
        if account in (None, "") or isinstance(account, (Mapping, list)):
            raise MalformedResponse(f"{provider.info.title}'s identity answer has no {ident.id}")
        name, email = (pick(body, f) if f else None for f in (ident.name, ident.email))
        return AccountInfo(id=str(account), name=_text(name), email=_text(email))

    @hookimpl
    def hub_auth_headers(self, provider: Provider, token: TokenSet) -> dict[str, str]:
        auth = self.definition.auth
        headers = dict(self.definition.headers)
        if auth.kind == "oauth2":
            headers.update(oauth.bearer(token))
        elif auth.kind == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(token.access_token.encode("utf-8")).decode("ascii")
        elif auth.key is not None and auth.key.header:
            headers[auth.key.header] = auth.key.prefix + token.access_token
        return headers

    @hookimpl
    def hub_check_response(self, provider: Provider, response: UpstreamResponse) -> None:
        for rule, pattern in self._rules:
            if rule.status and response.status not in rule.status:
                continue
            if pattern is not None and not pattern.search(response.text):
                continue
            if response.status < 400 and not rule.status and pattern is None:
                continue
            _raise(provider, response, rule)
        raise_for_status(response, info=provider.info)

    @hookimpl
    def hub_sandbox(self) -> Sandbox:
        builders = [ep for ep in importlib.metadata.entry_points(group=FAKE_GROUP)]
        if not builders:
            raise RuntimeError(f"no fake builder is installed (entry-point group {FAKE_GROUP!r}: the hub's kit offers one)")
        sandbox: Sandbox = builders[0].load()(self.definition)
        return sandbox

    def _key_query(self, token: TokenSet) -> dict[str, str] | None:
        key = self.definition.auth.key
        return {key.query: token.access_token} if key is not None and key.query else None


def _raise(provider: Provider, response: UpstreamResponse, rule: ErrorRule) -> None:
    code = None
    if rule.code:
        try:
            found = pick(response.json(), rule.code)
        except MalformedResponse:
            found = None
        code = str(found)[:100] if found not in (None, "") and not isinstance(found, (Mapping, list)) else None
    if rule.kind == "rate_limited" and rule.retry_after and response.retry_after() is None:
        text = rule.message or f"{provider.info.title} is rate limiting requests"
        raise provider_error("rate_limited", text, provider_code=code, retry_after=rule.retry_after)
    if response.status >= 400:
        raise_for_status(response, provider_code=code, message=rule.message, kinds={response.status: rule.kind}, info=provider.info)
    text = rule.message or f"{provider.info.title} reported a failure{f' ({code})' if code else ''}"
    raise provider_error(rule.kind, text, provider_code=code, retry_after=response.retry_after())


def _text(value: Any) -> str | None:
    return str(value)[:300] if value not in (None, "") and not isinstance(value, (Mapping, list)) else None


def _info(d: Definition) -> ProviderInfo:
    auth = d.auth
    extra = tuple(ConfigField(c.name, c.description, c.secret, c.required, c.default) for c in d.config)
    return ProviderInfo(
        name=d.name,
        title=d.title,
        description=d.description,
        endpoints=Endpoints(api=d.api, authorize=auth.authorize, token=auth.token, revoke=auth.revoke.url if auth.revoke else None),
        auth="oauth2" if auth.kind == "oauth2" else "token",
        default_scopes=tuple(auth.scopes),
        scope_separator=auth.scope_separator,
        pkce=auth.kind == "oauth2" and auth.pkce,
        config_fields=(CLIENT_CREDENTIALS if auth.kind == "oauth2" else ()) + extra,
        rate_limits=tuple(RateLimit(r.requests, r.seconds, r.per) for r in d.rate_limits.limits),
        authorize_params=dict(auth.authorize_params),
        token_accept=auth.token_accept,
        client_auth=auth.client_auth,
        token_errors_in_body=auth.token_errors_in_body,
        token_shapes=tuple(d.token_shapes),
        rate_limit_remaining_header=d.rate_limits.remaining_header,
        rate_limit_reset_header=d.rate_limits.reset_header,
    )

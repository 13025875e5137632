"""Slack provider for the integration hub.

Slack speaks OAuth v2 with two quirks: every answer, errors included, is HTTP 200 with
``{"ok": false, "error": "<code>"}`` (declared, so ``hub.token_request`` reads the token
endpoint's errors that way), and its token endpoint (``oauth.v2.access``) serves both the
code exchange and, for apps with token rotation, the refresh grant. Everything else is the
hub's standard machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import hub
from hub import (
    AccountInfo,
    Action,
    AuthorizationRequest,
    CallContext,
    ConfigField,
    Endpoints,
    GrantRejected,
    MalformedResponse,
    Provider,
    ProviderError,
    ProviderInfo,
    Sandbox,
    TokenSet,
    UpstreamResponse,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)

from . import events, schemas
from .answers import ANSWERS
from .schemas import CHANNELS, MESSAGE, USER

INFO = ProviderInfo(
    name="slack",
    title="Slack",
    description="Post messages, list channels and look up users in a Slack workspace.",
    endpoints=Endpoints(
        api="https://slack.com/api",
        authorize="https://slack.com/oauth/v2/authorize",
        token="https://slack.com/api/oauth.v2.access",
        revoke="https://slack.com/api/auth.revoke",
    ),
    default_scopes=("channels:read", "chat:write", "users:read"),
    scope_separator=",",
    pkce=False,  # not part of Slack's flow for web apps
    token_errors_in_body=True,
    token_shapes=(
        r"xox[abposre]-[A-Za-z0-9-]{8,}",  # access tokens
        r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9-]{8,}",  # refresh tokens
    ),
    config_fields=(
        *hub.CLIENT_CREDENTIALS,
        ConfigField("user_scopes", "user-token scopes to ask for as well (user_scope)", required=False, default=()),
        ConfigField("team", "restrict installs to this workspace id", required=False),
        ConfigField("signing_secret", "the app's Signing Secret, to verify Events API requests (webhooks in)", secret=True, required=False),
    ),
)

# Slack error codes, sorted by what they mean for the caller.
AUTH_ERRORS = frozenset({"not_authed", "invalid_auth", "token_revoked", "account_inactive", "no_permission_to_use_app"})
NOT_FOUND = frozenset({"channel_not_found", "user_not_found", "thread_not_found", "message_not_found"})
BAD_INPUT = frozenset({
    "no_text", "msg_too_long", "invalid_blocks", "invalid_blocks_format", "invalid_arguments", "invalid_cursor",
    "invalid_limit", "invalid_types", "not_in_channel", "is_archived", "too_many_attachments", "invalid_thread_ts",
})
GRANT_ERRORS = frozenset({"invalid_code", "code_already_used", "code_expired", "bad_redirect_uri",
                          "invalid_refresh_token", "invalid_grant_type", "oauth_authorization_url_mismatch"})


@hookimpl
def hub_provider() -> ProviderInfo:
    return INFO


@hookimpl
def hub_actions() -> list[Action]:
    actions = [
        Action("post_message", "POST", "message", post_message, MESSAGE, summary="Post a message (chat.postMessage)",
               output_schema=schemas.POSTED, examples=schemas.MESSAGE_EXAMPLES),
        Action("list_channels", "GET", "channels", list_channels, CHANNELS, summary="List conversations (conversations.list)",
               output_schema=schemas.CHANNEL_PAGE, examples=schemas.CHANNELS_EXAMPLES),
        Action("get_user", "GET", "users/{user_id}", get_user, USER, summary="Look up a user (users.info)",
               output_schema=schemas.USER_INFO, examples=schemas.USER_EXAMPLES),
    ]
    return [replace(a, output_schema={**(a.output_schema or {}), "examples": [ANSWERS[a.name]]}) for a in actions]


@hookimpl
def hub_authorization_url(provider: Provider, request: AuthorizationRequest) -> str:
    from urllib.parse import urlencode

    query = {
        "client_id": provider.client_id or "",
        "scope": ",".join(request.scopes),
        "redirect_uri": request.redirect_uri,
        "state": request.state,
    }
    user_scopes = provider.settings.get("user_scopes") or ()
    if user_scopes:
        query["user_scope"] = ",".join(user_scopes)
    if provider.settings.get("team"):
        query["team"] = provider.settings["team"]
    return f"{provider.endpoints.authorize}?{urlencode(query)}"


@hookimpl
async def hub_exchange_code(provider: Provider, code: str, redirect_uri: str) -> TokenSet:
    body = await _token_call(provider, {"code": code, "redirect_uri": redirect_uri})
    return _token_set(provider, body)


@hookimpl
async def hub_refresh_token(provider: Provider, token: TokenSet) -> TokenSet:
    if not token.refresh_token:
        raise GrantRejected("this Slack installation has no refresh token (token rotation is off)")
    body = await _token_call(provider, {"grant_type": "refresh_token", "refresh_token": token.refresh_token})
    return _token_set(provider, body)


@hookimpl
async def hub_revoke_token(provider: Provider, token: TokenSet) -> None:
    response = await provider.http.post("auth.revoke", headers=hub.bearer(token), check=False)
    hub.raise_for_status(response)
    body = _body(response)
    # A token Slack already considers dead is as revoked as it will ever be.
    if not body.get("ok") and body.get("error") not in AUTH_ERRORS | {"token_expired"}:
        raise ProviderError(f"Slack did not revoke the token: {body.get('error')}", provider_code=str(body.get("error")))


@hookimpl
async def hub_account_identity(provider: Provider, token: TokenSet) -> AccountInfo:
    body = (await provider.http.post("auth.test", headers=hub.bearer(token))).json()
    return AccountInfo(
        id=str(body.get("user_id") or ""),
        name=body.get("user"),
        team_id=body.get("team_id"),
        team_name=body.get("team"),
        url=body.get("url"),
        extra={k: v for k, v in {"botId": body.get("bot_id"), "enterpriseId": body.get("enterprise_id")}.items() if v},
    )


@hookimpl
def hub_check_response(provider: Provider, response: UpstreamResponse) -> None:
    hub.raise_for_status(response)
    body = _body(response)
    if body.get("ok"):
        return
    raise slack_error(body, response)


@hookimpl
def hub_webhook(provider: Provider, request: WebhookRequest) -> WebhookResult:
    return events.receive(provider, request)


@hookimpl
def hub_sandbox() -> Sandbox:
    from .fake import FakeSlack

    # Token rotation on, as a Slack app may choose: the sandbox shows refreshing too.
    fake = FakeSlack(client_id="sandbox-slack-client", client_secret="sandbox-slack-secret", rotation=True)
    return Sandbox(app=fake.make_app(), settings=fake.hub_settings)


# --- actions -------------------------------------------------------------------------


async def post_message(ctx: CallContext) -> dict[str, Any]:
    body = (await ctx.http.post("chat.postMessage", json=ctx.input)).json()
    return {"channel": body.get("channel"), "ts": body.get("ts"), "message": body.get("message")}


async def list_channels(ctx: CallContext) -> dict[str, Any]:
    params = dict(ctx.input)
    params["types"] = ",".join(params.get("types") or ["public_channel"])
    params.setdefault("limit", 100)
    body = (await ctx.http.get("conversations.list", params=params)).json()
    cursor = (body.get("response_metadata") or {}).get("next_cursor") or None
    return {"channels": body.get("channels", []), "nextCursor": cursor}


async def get_user(ctx: CallContext) -> dict[str, Any]:
    body = (await ctx.http.get("users.info", params={"user": ctx.input["user_id"]})).json()
    return body.get("user", {})


# --- Slack's token endpoint and errors -------------------------------------------------


async def _token_call(provider: Provider, form: dict[str, str]) -> Mapping[str, Any]:
    try:
        return await hub.token_request(provider, form)
    except GrantRejected as exc:
        code = exc.provider_code or "unknown_error"
    if code in GRANT_ERRORS:
        raise GrantRejected(f"Slack refused the grant: {code}", provider_code=code)
    if code in ("invalid_client_id", "bad_client_secret"):
        raise ProviderError(f"Slack rejected this hub's client credentials ({code}): check providers.slack in the config", provider_code=code)
    raise slack_error({"error": code}, None)


def _token_set(provider: Provider, body: Mapping[str, Any]) -> TokenSet:
    token = hub.parse_token_response(provider, body)
    team = body.get("team") or {}
    user = body.get("authed_user") or {}
    raw = {
        "team": {"id": team.get("id"), "name": team.get("name")} if team else None,
        "app_id": body.get("app_id"),
        "bot_user_id": body.get("bot_user_id"),
        "authed_user": {"id": user.get("id"), "scope": user.get("scope")} if user else None,
        "is_enterprise_install": body.get("is_enterprise_install"),
    }
    return TokenSet(
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        expires_at=token.expires_at,
        scopes=token.scopes,
        token_type=str(body.get("token_type") or "bot"),
        raw={k: v for k, v in raw.items() if v is not None},
    )


def _body(response: UpstreamResponse) -> Mapping[str, Any]:
    body = response.json()
    if not isinstance(body, Mapping) or "ok" not in body:
        raise MalformedResponse(f"Slack answered {response.method} with something that is not a Slack API response")
    return body


def slack_error(body: Mapping[str, Any], response: UpstreamResponse | None) -> ProviderError:
    code = str(body.get("error") or "unknown_error")
    if code == "ratelimited":
        return hub.provider_error("rate_limited", "Slack is rate limiting requests", provider_code=code,
                                  retry_after=response.retry_after() if response else None)
    if code == "token_expired":
        return hub.provider_error("expired", "the Slack token has expired", provider_code=code)
    if code in AUTH_ERRORS:
        return hub.provider_error("auth", f"Slack rejected the token: {code}", provider_code=code)
    if code in NOT_FOUND:
        return hub.provider_error("not_found", f"Slack: {code.replace('_', ' ')}", provider_code=code)
    if code in BAD_INPUT:
        return hub.provider_error("bad_input", f"Slack rejected the request: {code}", provider_code=code)
    if code == "missing_scope":
        needed = body.get("needed")
        # The grant, not Slack, is what falls short: the user must reconnect with more scopes.
        return ProviderError(
            f"the Slack token lacks a scope{f' ({needed})' if needed else ''}: add it to providers.slack.scopes and reconnect",
            provider_code=code,
            status=403,
            code="missing_scope",
        )
    return hub.provider_error("error", f"Slack answered with an error: {code}", provider_code=code)

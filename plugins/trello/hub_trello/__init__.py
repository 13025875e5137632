"""Trello provider for the integration hub.

Trello does not speak OAuth 2.0. Its authorize page hands the member token back in the
URL fragment (``callback_method=fragment``), which the hub's callback page reads in the
browser and posts back; a token lasts as long as the ``expiration`` asked for and cannot
be refreshed. Calls carry the app key and the token in an ``Authorization: OAuth ...``
header, never in the URL, except where Trello names the token in the path itself
(``/1/tokens/{token}``, used once to read its expiry and once to revoke it).

Operators must add the hub's ``server.public_url`` origin to the API key's allowed
origins in Trello's Power-Up admin page, or Trello refuses the return URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

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
    RateLimit,
    Sandbox,
    TokenSet,
    UpstreamResponse,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)

from . import schemas, webhooks
from .answers import ANSWERS
from .schemas import BOARD, BOARDS, COMMENT, CREATE_CARD, UPDATE_CARD

EXPIRATIONS = ("1hour", "1day", "30days", "never")

INFO = ProviderInfo(
    name="trello",
    title="Trello",
    description="Read boards, lists and cards; create, update and comment on cards.",
    auth="token",
    endpoints=Endpoints(api="https://api.trello.com/1", authorize="https://trello.com/1/authorize"),
    default_scopes=("read", "write"),
    scope_separator=",",
    pkce=False,
    config_fields=(
        ConfigField("api_key", "the API key of your Trello Power-Up"),
        ConfigField("app_name", "the name Trello shows the user on its consent page", required=False, default="Integration Hub"),
        ConfigField("expiration", f"how long a token lasts: {', '.join(EXPIRATIONS)}", required=False, default="30days"),
        ConfigField("app_secret", "the API key's secret, to verify webhook deliveries (webhooks in)", secret=True, required=False),
    ),
    # Trello's published budget is 100 requests per 10 s per token and 300 per key.
    rate_limits=(RateLimit(100, 10.0, "token"), RateLimit(300, 10.0, "app")),
)

BOARD_FIELDS = "name,desc,closed,url,shortUrl,idOrganization,dateLastActivity,prefs"


@hookimpl
def hub_provider() -> ProviderInfo:
    return INFO


@hookimpl
def hub_actions() -> list[Action]:
    actions = [
        Action("list_boards", "GET", "boards", list_boards, BOARDS, summary="The member's open boards",
               output_schema=schemas.BOARD_LIST, examples=({},)),
        Action("get_board", "GET", "boards/{board_id}", get_board, BOARD, summary="A board with its open lists and visible cards",
               output_schema=schemas.BOARD_DETAIL, examples=schemas.BOARD_EXAMPLES),
        Action("list_lists", "GET", "boards/{board_id}/lists", list_lists, BOARD, summary="A board's open lists",
               output_schema=schemas.LISTS, examples=schemas.BOARD_EXAMPLES),
        Action("list_cards", "GET", "boards/{board_id}/cards", list_cards, BOARD, summary="A board's visible cards",
               output_schema=schemas.CARDS, examples=schemas.BOARD_EXAMPLES),
        Action("create_card", "POST", "cards", create_card, CREATE_CARD, summary="Create a card",
               output_schema=schemas.CARD, examples=schemas.CREATE_CARD_EXAMPLES),
        Action("update_card", "PUT", "cards/{card_id}", update_card, UPDATE_CARD, summary="Update a card",
               output_schema=schemas.CARD, examples=schemas.UPDATE_CARD_EXAMPLES),
        Action("add_comment", "POST", "cards/{card_id}/comments", add_comment, COMMENT, summary="Comment on a card",
               output_schema=schemas.COMMENT_ACTION, examples=schemas.COMMENT_EXAMPLES),
        Action("create_webhook", "POST", "webhooks", webhooks.create_webhook, webhooks.CREATE_WEBHOOK,
               summary="Watch a board: Trello sends its changes to the hub's webhook URL",
               output_schema=webhooks.WEBHOOK, examples=webhooks.CREATE_EXAMPLES),
        Action("delete_webhook", "DELETE", "webhooks/{webhook_id}", webhooks.delete_webhook, webhooks.DELETE_WEBHOOK,
               summary="Stop watching: delete a webhook this integration created", output_schema=webhooks.DELETED,
               examples=webhooks.DELETE_EXAMPLES),
    ]
    return [replace(a, output_schema={**(a.output_schema or {}), "examples": [ANSWERS[a.name]]}) for a in actions]


@hookimpl
def hub_authorization_url(provider: Provider, request: AuthorizationRequest) -> str:
    expiration = provider.settings.get("expiration") or "30days"
    if expiration not in EXPIRATIONS:
        raise hub.BadRequest(f"providers.trello.expiration must be one of {', '.join(EXPIRATIONS)}")
    query = {
        "key": provider.settings["api_key"],
        "name": provider.settings.get("app_name") or "Integration Hub",
        "scope": ",".join(request.scopes),
        "expiration": expiration,
        "response_type": "token",
        "callback_method": "fragment",
        # The state rides in the return URL's query: the fragment is Trello's.
        "return_url": f"{request.redirect_uri}?{urlencode({'state': request.state})}",
    }
    return f"{provider.endpoints.authorize}?{urlencode(query)}"


@hookimpl
async def hub_import_token(provider: Provider, token: str) -> TokenSet:
    # Trello names tokens by their value: this path is the one way to read an expiry.
    info = (await provider.http.get("tokens/{token}", path_params={"token": token}, headers=_credentials(provider, token))).json()
    if not isinstance(info, Mapping):
        raise MalformedResponse("Trello's token info is not a JSON object")
    expires = info.get("dateExpires")
    scopes = sorted({p for perm in info.get("permissions") or () for p in ("read", "write") if perm.get(p)})
    return TokenSet(
        access_token=token,
        expires_at=_parse_date(expires) if expires else None,
        scopes=tuple(scopes),
        token_type="trello",
        raw={"idMember": info.get("idMember"), "identifier": info.get("identifier")},
    )


@hookimpl
async def hub_refresh_token(provider: Provider, token: TokenSet) -> TokenSet:
    raise GrantRejected("Trello tokens cannot be refreshed: connect again for a new one")


@hookimpl
async def hub_revoke_token(provider: Provider, token: TokenSet) -> None:
    response = await provider.http.request(
        "DELETE", "tokens/{token}", path_params={"token": token.access_token}, headers=_credentials(provider, token.access_token),
        check=False,
    )
    # A token Trello no longer knows is already as revoked as it can be.
    if response.status == 401 and "invalid token" in response.text:
        return
    hub_check_response(provider, response)


@hookimpl
async def hub_account_identity(provider: Provider, token: TokenSet) -> AccountInfo:
    member = (
        await provider.http.get(
            "members/me", params={"fields": "username,fullName,url,avatarUrl,initials"}, headers=_credentials(provider, token.access_token)
        )
    ).json()
    if not isinstance(member, Mapping) or "id" not in member:
        raise MalformedResponse("Trello's members/me answer has no id")
    return AccountInfo(
        id=str(member["id"]),
        name=member.get("username"),
        url=member.get("url"),
        extra={k: v for k, v in {"username": member.get("username"), "fullName": member.get("fullName")}.items() if v},
    )


@hookimpl
def hub_auth_headers(provider: Provider, token: TokenSet) -> dict[str, str]:
    return _credentials(provider, token.access_token)


@hookimpl
def hub_check_response(provider: Provider, response: UpstreamResponse) -> None:
    status = response.status
    if status < 400:
        return
    text = response.text.strip()
    if status == 429:
        # Trello sends no Retry-After; its window length is the honest wait.
        interval_ms = response.headers.get("x-rate-limit-api-token-interval-ms") or response.headers.get("x-rate-limit-api-key-interval-ms")
        wait = math.ceil(int(interval_ms) / 1000) if interval_ms and interval_ms.isdigit() else 10
        code = _json_error(response) or "API_TOKEN_LIMIT_EXCEEDED"
        raise hub.provider_error("rate_limited", "Trello is rate limiting requests", retry_after=wait, provider_code=code)
    # Trello's errors are often plain text: the text is its code.
    message = text[:300] if text and "<" not in text else f"HTTP {status}"
    if status == 401:
        if "invalid key" in text:
            raise ProviderError("Trello rejected this hub's API key: check providers.trello.api_key", provider_code="invalid key")
        if "permission" in text:
            raise ProviderError(f"Trello: {message} (the token lacks the scope: reconnect with the needed scopes)", provider_code=message)
        raise hub.provider_error("auth", f"Trello rejected the token: {message}", provider_code=message)
    if status in (404, 400, 422):
        hub.raise_for_status(response, provider_code=message, message=f"Trello: {message}")
    hub.raise_for_status(response)


@hookimpl
def hub_webhook(provider: Provider, request: WebhookRequest) -> WebhookResult:
    return webhooks.receive(provider, request)


@hookimpl
def hub_sandbox() -> Sandbox:
    from .fake import FakeTrello

    fake = FakeTrello(api_key="sandbox-trello-key")
    return Sandbox(app=fake.make_app(), settings=lambda base: {**fake.hub_settings(base), "app_name": "Integration Hub sandbox"})


# --- actions -------------------------------------------------------------------------


async def list_boards(ctx: CallContext) -> Any:
    return (await ctx.http.get("members/me/boards", params={"filter": "open", "fields": BOARD_FIELDS})).json()


async def get_board(ctx: CallContext) -> Any:
    return (await ctx.http.get("boards/{board_id}", path_params=_ids(ctx), params={"lists": "open", "cards": "visible"})).json()


async def list_lists(ctx: CallContext) -> Any:
    return (await ctx.http.get("boards/{board_id}/lists", path_params=_ids(ctx), params={"filter": "open"})).json()


async def list_cards(ctx: CallContext) -> Any:
    return (await ctx.http.get("boards/{board_id}/cards", path_params=_ids(ctx), params={"filter": "visible"})).json()


async def create_card(ctx: CallContext) -> Any:
    body = dict(ctx.input)
    if "idLabels" in body:
        body["idLabels"] = ",".join(body["idLabels"])
    return (await ctx.http.post("cards", json=body)).json()


async def update_card(ctx: CallContext) -> Any:
    body = {k: v for k, v in ctx.input.items() if k != "card_id"}
    return (await ctx.http.request("PUT", "cards/{card_id}", path_params=_ids(ctx), json=body)).json()


async def add_comment(ctx: CallContext) -> Any:
    return (await ctx.http.post("cards/{card_id}/actions/comments", path_params=_ids(ctx), json={"text": ctx.input["text"]})).json()


# --- helpers -------------------------------------------------------------------------


def _ids(ctx: CallContext) -> dict[str, Any]:
    # The ids that name things in Trello's paths, each filled in as one checked segment.
    return {k: ctx.input[k] for k in ("board_id", "card_id") if k in ctx.input}


def _credentials(provider: Provider, token: str) -> dict[str, str]:
    key = provider.settings["api_key"]
    return {"Authorization": f'OAuth oauth_consumer_key="{key}", oauth_token="{token}"'}


def _json_error(response: UpstreamResponse) -> str | None:
    try:
        body = response.json()
    except MalformedResponse:
        return None
    return str(body.get("error")) if isinstance(body, Mapping) and body.get("error") else None


def _parse_date(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponse("Trello's token info has an unreadable dateExpires") from None

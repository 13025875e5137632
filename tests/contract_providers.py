"""Two small providers for the tests of hub.testing's contract suite and its time and
activity helpers: an OAuth 2.0 one (Memos) and a token-paste one (Pasted, Trello's style),
each a plugin and a fake built on FakeProvider."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from hub import (
    Action,
    CallContext,
    Endpoints,
    Provider,
    ProviderInfo,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    hookimpl,
    same_digest,
)
from hub.testing import FakeProvider, FakeToken

MEMO = {
    "type": "object",
    "required": ["id", "text", "owner"],
    "properties": {"id": {"type": "string"}, "text": {"type": "string"}, "owner": {"type": "string"}},
}
MEMO_ID = {"type": "string", "pattern": "^m[0-9]+$", "maxLength": 16}


# How long a subscription to Memos' webhooks lasts before it must be renewed.
SUBSCRIPTION_LIFE = timedelta(days=1)


class FakeMemos(FakeProvider):
    """Memos' API: a list of memos, one memo, adding one, and a subscription to its webhooks
    that runs out after a day unless a new one is taken."""

    title = "Memos"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.memos = {"m1": {"id": "m1", "text": "Buy milk"}}
        self.subscriptions = 0

    def add_routes(self, app: Any) -> None:
        app.router.add_get(f"{self.api_path}/memos", self.list_memos)
        app.router.add_post(f"{self.api_path}/memos", self.add_memo)
        app.router.add_get(f"{self.api_path}/memos/{{memo_id}}", self.get_memo)
        app.router.add_post(f"{self.api_path}/subscriptions", self.subscribe)

    def owned(self, memo: dict[str, Any], token: FakeToken) -> dict[str, Any]:
        return {**memo, "owner": token.account["sub"]}

    async def list_memos(self, request: Any) -> Any:
        token = self.require_token(request)
        memos = [self.owned(m, token) for m in self.memos.values()]
        return self.json({"memos": memos[: int(request.query.get("limit", 50))]})

    async def get_memo(self, request: Any) -> Any:
        token = self.require_token(request)
        memo = self.memos.get(request.match_info["memo_id"])
        return self.json(self.owned(memo, token)) if memo else self.json({"error": "no_such_memo"}, status=404)

    async def add_memo(self, request: Any) -> Any:
        token = self.require_token(request)
        memo = {"id": f"m{len(self.memos) + 1}", "text": (await request.json())["text"]}
        self.memos[memo["id"]] = memo
        return self.json(self.owned(memo, token), status=201)

    async def subscribe(self, request: Any) -> Any:
        self.require_token(request)
        self.subscriptions += 1
        expires = datetime.fromtimestamp(self.clock(), UTC) + SUBSCRIPTION_LIFE
        return self.json({"id": f"s{self.subscriptions}", "expiresAt": expires.isoformat()}, status=201)


def endpoints(name: str) -> Endpoints:
    base = f"https://{name}.invalid"  # placeholders: the fake's hub_settings() replaces them all
    return Endpoints(api=f"{base}/api", authorize=f"{base}/authorize", token=f"{base}/token", revoke=f"{base}/revoke", userinfo=f"{base}/me")


class Memos:
    """The OAuth 2.0 plugin under test, with the hub's defaults for everything but actions."""

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return ProviderInfo(name="memos", title="Memos", endpoints=endpoints("memos"), default_scopes=("memos",))

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [
            Action("list_memos", "GET", "memos", self.list_memos,
                   {"type": "object", "additionalProperties": False, "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 50}}},
                   output_schema={"type": "object", "required": ["memos"], "properties": {"memos": {"type": "array", "items": MEMO}}},
                   examples=[{}, {"limit": 1}]),
            Action("get_memo", "GET", "memos/{memo_id}", self.get_memo,
                   {"type": "object", "required": ["memo_id"], "properties": {"memo_id": MEMO_ID}},
                   output_schema=MEMO, examples=[{"memo_id": "m1"}]),
            Action("add_memo", "POST", "memos", self.add_memo,
                   {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 500}}},
                   output_schema=MEMO, examples=[{"text": "Call the plumber"}]),
        ]

    async def list_memos(self, ctx: CallContext) -> Any:
        return (await ctx.http.get("memos", params=ctx.input)).json()

    async def get_memo(self, ctx: CallContext) -> Any:
        return (await ctx.http.get("memos/{memo_id}", path_params=ctx.input)).json()

    async def add_memo(self, ctx: CallContext) -> Any:
        return (await ctx.http.post("memos", json=ctx.input)).json()


# Memos signs its webhook deliveries with this (a test value, nothing real).
MEMOS_WEBHOOK_SECRET = "memos-test-webhook-secret"


def memos_signature(body: bytes) -> str:
    return hmac.new(MEMOS_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def memos_delivery(account: str, event_id: str) -> tuple[dict[str, str], bytes]:
    """A delivery as Memos would send it: one memo event about ``account``, signed."""
    body = json.dumps({"id": event_id, "type": "memo_added", "account": account, "memo": {"id": "m9"}}).encode()
    return {"Content-Type": "application/json", "X-Memos-Signature": memos_signature(body)}, body


class HookedMemos(Memos):
    """Memos with webhooks in (an HMAC over the body, deduplicated on the event id), a
    subscription to them (the ``subscribe`` action) that ``hub_renew`` takes anew before it
    runs out, and a ``hub_before_disconnect`` that tells Memos to stop sending them."""

    @hookimpl
    def hub_actions(self) -> list[Action]:
        return [*super().hub_actions(), Action("subscribe", "POST", "subscriptions", self.subscribe, examples=[{}])]

    async def subscribe(self, ctx: CallContext) -> Any:
        subscription = (await ctx.http.post("subscriptions", json={"callback": ctx.webhook_url})).json()
        ctx.update_state(subscription=subscription["id"])
        ctx.renew_by(datetime.fromisoformat(subscription["expiresAt"]))
        return subscription

    @hookimpl
    async def hub_renew(self, ctx: CallContext) -> Any:
        return await self.subscribe(ctx)

    @hookimpl
    def hub_webhook(self, provider: Provider, request: WebhookRequest) -> WebhookResult:
        if not same_digest(memos_signature(request.body), request.header("X-Memos-Signature")):
            raise WebhookRejected("X-Memos-Signature: missing, or does not match the body")
        return self.events(json.loads(request.body))

    def events(self, body: dict[str, Any]) -> WebhookResult:
        return WebhookResult(events=(WebhookEvent(type=body["type"], match={"accountId": body["account"]}, data={"memo": body["memo"]},
                                                  dedupe_key=body["id"]),))

    @hookimpl
    async def hub_before_disconnect(self, ctx: CallContext) -> Any:
        return (await ctx.http.post("memos", json={"text": "stop sending webhooks"})).json()


class FakePasted(FakeProvider):
    """A token-paste provider: its consent page sends the browser back with the token in the
    URL fragment (``return_url#token=...``), as Trello's does."""

    title = "Pasted"

    def add_routes(self, app: Any) -> None:
        app.router.add_get("/token/authorize", self.consent)
        app.router.add_post("/token/authorize", self.decide)
        app.router.add_get(f"{self.api_path}/notes", self.notes)

    def hub_settings(self, base_url: str | None = None) -> dict[str, Any]:
        settings = super().hub_settings(base_url)
        settings["urls"]["authorize"] = f"{base_url or self.base_url}/token/authorize"
        return settings

    async def consent(self, request: Any) -> Any:
        back = html.escape(request.query["return_url"])
        page = (f'<form method="post" action="/token/authorize"><input type="hidden" name="return_url" value="{back}">'
                '<button name="decision" value="deny">Deny</button><button name="decision" value="allow">Allow</button></form>')
        return web.Response(text=page, content_type="text/html")

    async def decide(self, request: Any) -> Any:
        form = await request.post()
        if form.get("decision") != "allow":
            raise web.HTTPFound(f"{form['return_url']}#error=access_denied")
        token = FakeToken(f"fake-pasted-{secrets.token_hex(16)}", "access", dict(self.account), "notes")
        self.tokens[token.value] = token
        self.issued.append(token.value)
        raise web.HTTPFound(f"{form['return_url']}#token={token.value}")

    async def notes(self, request: Any) -> Any:
        self.require_token(request)
        return self.json({"items": [{"id": "n1", "title": "Groceries"}]})


class Pasted:
    """The token-paste plugin under test: its own authorization URL, the hub's defaults
    for the pasted token (identity from userinfo, revoke through RFC 7009)."""

    @hookimpl
    def hub_provider(self) -> ProviderInfo:
        return ProviderInfo(name="pasted", title="Pasted", auth="token", pkce=False, endpoints=endpoints("pasted"))

    @hookimpl
    def hub_authorization_url(self, provider: Any, request: Any) -> str:
        back = f"{request.redirect_uri}?{urlencode({'state': request.state})}"
        return f"{provider.endpoints.authorize}?{urlencode({'client_id': provider.client_id, 'return_url': back})}"

    @hookimpl
    def hub_actions(self) -> list[Action]:
        notes = {"type": "object", "required": ["notes"], "properties": {"notes": {"type": "array", "items": {"type": "object", "required": ["id"]}}}}
        return [Action("list_notes", "GET", "notes", list_notes, output_schema=notes, examples=[{}])]


async def list_notes(ctx: CallContext) -> Any:
    return {"notes": (await ctx.http.get("notes")).json()["items"]}

"""Trello webhooks: creating and deleting one for a board (actions), and receiving what it
sends (``hub_webhook``).

``POST /1/webhooks`` with ``callbackURL`` (the hub's webhook URL for Trello), ``idModel``
(the board) and ``description``: Trello first sends ``HEAD callbackURL`` and creates the
webhook only if that answers 200. Each delivery is a POST of ``{"action": ..., "model": ...}``
with ``X-Trello-Webhook`` = base64(HMAC-SHA1(the app's API secret, raw body + callbackURL)).
Trello signs no timestamp; a delivery is routed to the integrations that created a webhook
for its model (the board id, kept in the integration's state) and deduplicated on the
action id, so one sent again is accepted and emits nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from hub import (
    CallContext,
    Provider,
    WebhookAnswer,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    same_digest,
)

TRELLO_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$", "maxLength": 24, "description": "a Trello id (24 hex characters)"}
CREATE_WEBHOOK = {
    "type": "object", "additionalProperties": False, "required": ["idModel"],
    "properties": {"idModel": {**TRELLO_ID, "description": "the board to watch"},
                   "description": {"type": "string", "maxLength": 16384}},
}
DELETE_WEBHOOK = {"type": "object", "additionalProperties": False, "required": ["webhook_id"], "properties": {"webhook_id": TRELLO_ID}}
WEBHOOK = {
    "type": "object", "required": ["id", "idModel", "callbackURL"],
    "properties": {"id": {"type": "string"}, "idModel": {"type": "string"}, "callbackURL": {"type": "string"},
                   "description": {"type": "string"}, "active": {"type": "boolean"}},
}
DELETED = {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}
CREATE_EXAMPLES = ({"idModel": "5f5e1000c94e25866f000002", "description": "hub"},)  # the fake's seeded board
DELETE_EXAMPLES = ({"webhook_id": "5f1e1b9c8e3a4b2a1c0d9e90"},)


def signature(secret: str, body: bytes, callback_url: str) -> str:
    digest = hmac.new(secret.encode(), body + callback_url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def receive(provider: Provider, request: WebhookRequest) -> WebhookResult:
    if request.method == "HEAD":
        return WebhookResult(answer=WebhookAnswer(200))  # Trello's check when a webhook is created
    secret = provider.settings.get("app_secret")
    if not secret:
        raise WebhookRejected("Trello webhooks need providers.trello.app_secret (the API key's secret)")
    if not same_digest(signature(secret, request.body, request.url), request.header("X-Trello-Webhook")):
        raise WebhookRejected("X-Trello-Webhook: missing, or does not match the body and callback URL")
    try:
        body = json.loads(request.body)
    except ValueError:
        return WebhookResult()
    action = body.get("action") if isinstance(body, dict) else None
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(action, dict) or not isinstance(model, dict) or not action.get("type") or not model.get("id"):
        return WebhookResult()
    data: dict[str, Any] = {"modelId": model["id"], "action": action}
    return WebhookResult(events=(
        WebhookEvent(type=str(action["type"]), match={"state.webhook_models": str(model["id"])}, data=data,
                     dedupe_key=str(action.get("id") or "") or None),
    ))


async def create_webhook(ctx: CallContext) -> Any:
    """Register the hub's webhook URL with Trello for a board, and remember the board and
    the webhook in the integration's state, which is what routes deliveries to it."""
    form = {"callbackURL": ctx.webhook_url, "idModel": ctx.input["idModel"], "description": ctx.input.get("description") or "integration hub"}
    hook = (await ctx.http.post("webhooks", json=form)).json()
    hooks = {**(ctx.state.get("webhooks") or {}), str(hook["id"]): str(hook["idModel"])}
    ctx.update_state(webhooks=hooks, webhook_models=sorted(set(hooks.values())))
    return hook


async def delete_webhook(ctx: CallContext) -> Any:
    webhook_id = ctx.input["webhook_id"]
    await ctx.http.request("DELETE", "webhooks/{webhook_id}", path_params={"webhook_id": webhook_id})
    hooks = {k: v for k, v in (ctx.state.get("webhooks") or {}).items() if k != webhook_id}
    ctx.update_state(webhooks=hooks, webhook_models=sorted(set(hooks.values())))
    return {"deleted": webhook_id}

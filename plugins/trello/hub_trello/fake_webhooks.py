"""Trello's webhooks, for :class:`hub_trello.fake.FakeTrello`: both ends of them.

* ``POST /1/webhooks`` (``callbackURL``, ``idModel``, ``description``): as Trello does, the
  fake first sends ``HEAD callbackURL`` and creates the webhook only when that answers 200
  (else 400 ``URL (...) did not return 200 status code, got N``); an unknown model is 400
  ``invalid value for idModel``. ``DELETE /1/webhooks/{id}`` removes one (404 if unknown).
* :meth:`TrelloWebhooks.send_action` is Trello's delivery: for each active webhook on the
  board, a POST of ``{"action": ..., "model": <the board>}`` to its ``callbackURL`` with
  ``X-Trello-Webhook`` = base64(HMAC-SHA1(app secret, raw body + callbackURL)).

Simplified: webhooks are kept for any token with read access (Trello ties them to the
token that made them); no retries of failed deliveries, and no deactivation after failures.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

from .webhooks import signature


class TrelloWebhooks:
    """Mixed into FakeTrello, which provides the key, token and limit checks and the data."""

    webhooks: dict[str, dict[str, Any]]
    deliveries: list[dict[str, Any]]

    def add_webhook_routes(self, app: web.Application) -> None:
        app.router.add_post(self.api_path + "/webhooks", self._webhook_create)  # type: ignore[attr-defined]
        app.router.add_delete(self.api_path + "/webhooks/{webhook}", self._webhook_delete)  # type: ignore[attr-defined]

    async def _webhook_create(self, request: web.Request) -> web.Response:
        fake: Any = self
        call = fake.current_call()
        try:
            _, headers = fake._admit(request, call)
            params = await fake._params(request, call)
        except Exception as err:  # TrelloError: answered as Trello would
            return err.response({})  # type: ignore[attr-defined]
        url, model = str(params.get("callbackURL") or ""), str(params.get("idModel") or "")
        if not url.startswith(("http://", "https://")):
            return web.Response(status=400, text="invalid value for callbackURL", headers=headers)
        if model not in fake.boards:
            return web.Response(status=400, text="invalid value for idModel", headers=headers)
        try:
            async with aiohttp.ClientSession() as session, session.head(url, allow_redirects=False) as resp:
                checked = resp.status
        except aiohttp.ClientError:
            checked = 0
        if checked != 200:
            return web.Response(status=400, text=f"URL ({url}) did not return 200 status code, got {checked}", headers=headers)
        hook = {"id": fake._new_id(), "description": str(params.get("description") or ""), "idModel": model,
                "callbackURL": url, "active": True, "consecutiveFailures": 0, "firstConsecutiveFailDate": None}
        self.webhooks[hook["id"]] = hook
        return fake.json(hook, headers=headers)

    async def _webhook_delete(self, request: web.Request) -> web.Response:
        fake: Any = self
        try:
            _, headers = fake._admit(request, fake.current_call())
        except Exception as err:
            return err.response({})  # type: ignore[attr-defined]
        if self.webhooks.pop(request.match_info["webhook"], None) is None:
            return web.Response(status=404, text="The requested resource was not found.", headers=headers)
        return fake.json({"_value": None}, headers=headers)

    def delivery(self, hook: dict[str, Any], action_type: str, data: dict[str, Any], action_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one delivery of an action to ``hook``, signed as Trello signs it."""
        fake: Any = self
        board = fake.boards[hook["idModel"]]
        action = {"id": action_id or secrets.token_hex(12), "idMemberCreator": fake.member.get("id"), "type": action_type,
                  "date": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "data": {"board": {"id": board["id"], "name": board["name"]}, **data}}
        body = json.dumps({"model": {"id": board["id"], "name": board["name"]}, "action": action}).encode()
        return body, {"Content-Type": "application/json", "X-Trello-Webhook": signature(fake.client_secret, body, hook["callbackURL"])}

    async def send_action(self, board_id: str, action_type: str, data: dict[str, Any] | None = None, *,
                          action_id: str | None = None) -> list[int]:
        """Deliver an action on ``board_id`` to every active webhook watching it; their answers' statuses."""
        statuses: list[int] = []
        for hook in [h for h in self.webhooks.values() if h["idModel"] == board_id and h["active"]]:
            body, headers = self.delivery(hook, action_type, data or {}, action_id)
            self.deliveries.append({"webhook": hook["id"], "body": body, "headers": headers})
            async with aiohttp.ClientSession() as session, session.post(hook["callbackURL"], data=body, headers=headers) as resp:
                statuses.append(resp.status)
        return statuses

"""Trello's webhooks, for :class:`hub_trello.fake.FakeTrello`: both ends of them.

* ``POST /1/webhooks`` (``callbackURL``, ``idModel``, ``description``): as Trello does, the
  fake first sends ``HEAD callbackURL`` and creates the webhook only when that answers 200
  (else 400 ``URL (...) did not return 200 status code, got N``); an unknown model is 400
  ``invalid value for idModel``. ``DELETE /1/webhooks/{id}`` removes one (404 if unknown).
* :meth:`TrelloWebhooks.send_action` is Trello's delivery: for each active webhook on the
  board, a POST of ``{"action": ..., "model": <the board>}`` to its ``callbackURL`` with
  ``X-Trello-Webhook`` = base64(HMAC-SHA1(app secret, raw body + callbackURL)).
* Over HTTP, for a sandbox (the control routes, under ``/_fake``): ``GET /_fake/webhooks``
  lists the webhooks (id, idModel, callbackURL, active); ``POST /_fake/webhooks/send``
  ``{"board": <id>, "type": "updateCard", "data": {...}}`` (type and data optional) is
  :meth:`send_action`, as if someone changed the board in Trello; it answers the receivers'
  statuses.

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
        control = getattr(self, "control_path", None)
        if control:
            app.router.add_get(control + "/webhooks", self._webhooks_control)
            app.router.add_post(control + "/webhooks/send", self._send_control)

    async def _webhooks_control(self, request: web.Request) -> web.Response:
        keys = ("id", "idModel", "callbackURL", "active")
        return web.json_response({"webhooks": [{k: hook[k] for k in keys} for hook in self.webhooks.values()]})

    async def _send_control(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _problem("the body must be a JSON object: {\"board\": <id>, \"type\": \"updateCard\", \"data\": {...}}")
        unknown = sorted(set(body) - {"board", "type", "data"})
        if unknown:
            return _problem(f"send takes no field {unknown[0]!r} (it takes: board, type, data)")
        board, action_type, data = body.get("board"), body.get("type", "updateCard"), body.get("data", {})
        if not isinstance(board, str) or board not in getattr(self, "boards", {}):
            return _problem("field 'board' must name one of the fake's boards")
        if not isinstance(action_type, str) or not action_type.isalnum():
            return _problem("field 'type' must be a Trello action type, such as updateCard")
        if not isinstance(data, dict):
            return _problem("field 'data' must be an object")
        return web.json_response({"sent": await self.send_action(board, action_type, data)})

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
            try:
                async with aiohttp.ClientSession() as session, session.post(hook["callbackURL"], data=body, headers=headers) as resp:
                    statuses.append(resp.status)
            except aiohttp.ClientError:
                statuses.append(0)  # unreachable: Trello counts a failure and moves on
        return statuses


def _problem(message: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": message}, status=400)

"""``POST|HEAD /api/integrations/<provider>/webhook``: provider webhooks in (docs/events.md).

Public (providers send no JWT; the provider's own signature, checked by its plugin, is
the authentication). The body is read raw and capped at ``server.max_webhook_bytes``: a
larger one is refused with 413 before the plugin, and so any signature work, sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import PayloadTooLarge
from .middleware import HUB_KEY, public
from .openapi_components import ref
from .responses import ok

if TYPE_CHECKING:
    from ..core.hub import Hub

PATH = "/api/integrations/{provider}/webhook"


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, receive)
    app.router.add_route("HEAD", PATH, receive)


async def read_capped(request: web.Request, cap: int) -> bytes:
    too_large = PayloadTooLarge(f"the webhook body is over server.max_webhook_bytes ({cap} bytes)", code="webhook_too_large")
    if request.content_length is not None and request.content_length > cap:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)


@public
async def receive(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB_KEY]
    provider = request.match_info["provider"]
    hub.webhooks.supports(provider)  # unknown provider or no hook: 404 before reading anything
    body = b"" if request.method == "HEAD" else await read_capped(request, hub.config.server.max_webhook_bytes)
    url = hub.config.public_url + PATH.format(provider=provider)
    received = await hub.webhooks.receive(provider, method=request.method, headers=request.headers, body=body,
                                          query=request.query, url=url)
    if received.answer is not None:
        a = received.answer
        return web.Response(status=a.status, text=a.body, content_type=a.content_type)
    if request.method == "HEAD":
        return web.Response(status=200)
    return ok({"routed": received.routed, "duplicates": received.duplicates},
              f"{received.routed} event(s) routed, {received.duplicates} already seen")


# --- OpenAPI ---------------------------------------------------------------------------

_ERRORS = {
    401: "the provider's signature is missing or wrong, its timestamp is outside the replay window, or the request names "
         "nothing an integration expects, such as an unknown channel or a wrong channel token (webhook_rejected)",
    404: "unknown provider, or its plugin does not receive webhooks (webhooks_not_supported)",
    413: "the body is over server.max_webhook_bytes (webhook_too_large), refused before any signature work",
    502: "the provider's plugin failed reading the request (plugin_error)",
    503: "provider not configured",
}
def openapi_paths() -> dict[str, Any]:
    param = {"name": "provider", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    errors = {str(s): {"description": d, "content": {"application/json": {"schema": ref("ErrorAnswer")}}} for s, d in _ERRORS.items()}
    answer = {
        "description": "accepted: the events routed (JSON), or the provider's URL check answered as it expects (text)",
        "content": {"application/json": {"schema": ref("WebhookReceivedAnswer")}, "text/plain": {"schema": {"type": "string"}}},
    }
    return {
        PATH: {
            "post": {
                "operationId": "webhook_receive",
                "summary": "Receive a provider's webhook: verified by its plugin, routed to the integrations it concerns, "
                           "emitted as events out",
                "security": [],
                "parameters": [param],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}},
                                "description": "the provider's request, as it signs it"},
                "responses": {"200": answer, **errors},
            },
            "head": {
                "operationId": "webhook_check",
                "summary": "A provider's check that the webhook URL answers (Trello's, on creating a webhook)",
                "security": [],
                "parameters": [param],
                "responses": {"200": {"description": "the URL answers"}, **{s: e for s, e in errors.items() if s in ("401", "404", "503")}},
            },
        }
    }

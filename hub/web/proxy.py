"""``{METHOD} /api/integrations/<provider>/proxy/<path>``: the provider's own API through
the hub (docs/proxy.md), and its OpenAPI path items.

The path and query are taken as the caller sent them (still percent-encoded) and checked
by the core; the provider's answer comes back verbatim, status and body, with the
response headers :mod:`hub.core.proxyrules` lets through. The hub's ``RateLimit-*``
headers (``middleware.answer``) replace a provider's of the same names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from ..core.proxy import ProxyCall
from ..core.proxyrules import BadProxyPath, response_headers
from ..infra.proxyconfig import PROXY_METHODS
from .middleware import HUB_KEY, caller

if TYPE_CHECKING:
    from ..core.hub import Hub

BASE = "/api/integrations/{provider}/proxy"


def setup(app: web.Application) -> None:
    """Register the proxy's route; before the provider actions' catch-all resource."""
    app.router.add_route("*", BASE + "{rest:(?:/(?s:.*))?}", proxy)  # (?s): a decoded newline too


async def proxy(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    provider = request.match_info["provider"]
    call = ProxyCall(
        method=request.method,
        path=_raw_path(request),
        query=request.rel_url.raw_query_string,
        headers=tuple(request.headers.items()),
        body=await request.read(),
    )
    answer = await hub.proxy.run(caller(request), provider, call)
    headers = CIMultiDict(response_headers(answer.headers))
    return web.Response(status=answer.status, body=answer.body or None, headers=headers)


def _raw_path(request: web.Request) -> str:
    """The path after ``…/proxy/`` exactly as sent: no decoding, no dot-segment removal."""
    target = request.raw_path
    if not target.startswith("/"):
        raise BadProxyPath("path: the request target must be a path, not an absolute URL", details={"field": "path"})
    parts = target.split("?", 1)[0].split("#", 1)[0].split("/", 5)
    # ["", "api", "integrations", provider, "proxy", rest]
    if len(parts) < 5 or parts[4] != "proxy":
        raise BadProxyPath("path: the request path does not name the proxy plainly", details={"field": "path"})
    return parts[5] if len(parts) > 5 else ""


# --- OpenAPI ---------------------------------------------------------------------------

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}
_ERRORS = {
    400: "a path that would leave the API base (proxy_bad_path), or other bad input",
    401: "missing or invalid JWT",
    403: "the path is outside the configured prefixes (proxy_path_not_allowed)",
    404: "the proxy is not enabled for this provider (proxy_not_enabled), or no integration",
    405: "a method the proxy does not forward for this provider (Allow lists those it does)",
    409: "the integration's state does not allow calls, or the provider refused its credentials for good (reconnect_required)",
    413: "request body too large",
    429: "the hub's request budget for the provider has no room (throttled, Retry-After)",
    502: "the provider could not be reached, or its answer was over the size cap",
    503: "provider not configured",
    504: "provider timeout",
}


def openapi_paths(hub: Hub) -> dict[str, Any]:
    """The OpenAPI path items of every enabled provider's proxy, one operation per method
    it forwards (``operationId`` ``<provider>_proxy_<method>``)."""
    paths: dict[str, Any] = {}
    for name in sorted(hub.providers):
        rt = hub.providers[name]
        config = rt.config.proxy
        if not config.enabled:
            continue
        scope = f" Only paths under: {', '.join(config.path_prefixes)}." if config.path_prefixes else ""
        param = {
            "name": "path",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": f"the path under {rt.info.title}'s API base ({rt.provider.endpoints.api}), percent-encoded as the provider expects.{scope}",
        }
        item: dict[str, Any] = {}
        for method in (m for m in PROXY_METHODS if m in config.methods):
            op: dict[str, Any] = {
                "summary": f"{method} on {rt.info.title}'s API through the hub, with the integration's credentials",
                "operationId": f"{name}_proxy_{method.lower()}",
                "tags": [rt.info.title],
                "parameters": [param],
                "responses": {
                    "default": {"description": "the provider's answer, status and body verbatim, with its safe headers"},
                    **{str(s): {"description": d, "content": _ERROR} for s, d in _ERRORS.items()},
                },
            }
            if method not in ("GET", "HEAD", "DELETE"):
                op["requestBody"] = {"required": False, "content": {"*/*": {"schema": {}}}, "description": "sent to the provider as it is"}
            item[method.lower()] = op
        paths[f"/api/integrations/{name}/proxy/{{path}}"] = item
    return paths

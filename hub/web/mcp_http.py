"""MCP's Streamable HTTP transport at ``/mcp`` on the hub's own port, and the protected
resource metadata (RFC 9728) a client reads to learn how to authenticate.

The SDK's transport is an ASGI application (its ``StreamableHTTPSessionManager``); this
module bridges it into aiohttp rather than serving it beside the hub on a second port or
under a second server: one port, one process, and every request passes the hub's own
middleware first (request id, access line, CORS, and the JWT check: a request without a
valid JWT is answered 401 here, with ``WWW-Authenticate: Bearer resource_metadata=...``,
and never reaches the SDK). The bridge is small because an ASGI HTTP exchange is small:
the request's head becomes the scope, its body the ``http.request`` messages, and the
application's ``http.response.*`` messages become an aiohttp ``StreamResponse`` (SSE
streams included, written as they come).

The session manager runs in a task of its own (its anyio task group must be entered and
left in one task), stopped with the app. The SDK itself is imported, and the manager
started, by the first request to ``/mcp``, not at start-up: its modules and the pydantic
models they build take about 0.3 s, a quarter of the hub's start, for an endpoint many
deployments never call (docs/performance.md, P6). That first request waits for it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..core.hub import Hub
from ..errors import Unauthorized
from ..infra.auth import Caller
from .middleware import CALLER, HUB_KEY, REQUEST_ID, public
from .responses import error_response

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

log = logging.getLogger("hub.mcp")

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
CALLER_SCOPE_KEY = "hub.caller"


class McpEndpoint:
    """The SDK's server and session manager for this app: made and started by the first
    request that needs them (:meth:`manager`), run until the app stops."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._manager: StreamableHTTPSessionManager | None = None
        self._starting = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.exchanges: set[asyncio.Future[None]] = set()

    @property
    def started(self) -> bool:
        return self._task is not None

    async def manager(self) -> StreamableHTTPSessionManager | None:
        """The running session manager, started on first use; ``None`` once the app stops."""
        if self._manager is None:
            async with self._starting:
                if self._manager is None and not self._stop.is_set():
                    self._manager = await self._start()
        return None if self._stop.is_set() else self._manager

    async def _start(self) -> StreamableHTTPSessionManager:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        from .mcp_server import build_server

        manager = StreamableHTTPSessionManager(app=build_server(self.hub, caller_of_request))
        started = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await self._stop.wait()

        self._task = asyncio.create_task(run(), name="mcp-session-manager")
        done, _ = await asyncio.wait({self._task, asyncio.ensure_future(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()  # it failed to start: say why
        return manager

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


MCP_KEY = web.AppKey("mcp", McpEndpoint)


def caller_of_request(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller the bridge put in the HTTP request's scope (verified before the SDK saw it)."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    caller = scope.get(CALLER_SCOPE_KEY) if isinstance(scope, dict) else None
    if not isinstance(caller, Caller):
        raise Unauthorized("this MCP request carries no authenticated caller")
    return caller


def setup(app: web.Application, hub: Hub) -> None:
    endpoint = McpEndpoint(hub)
    app[MCP_KEY] = endpoint

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        yield
        await endpoint.stop()

    app.cleanup_ctx.append(lifetime)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, PATH, mcp)
    app.router.add_get(METADATA_PATH, resource_metadata, allow_head=False)
    app.router.add_get(METADATA_PATH + PATH, resource_metadata, allow_head=False)


async def mcp(request: web.Request) -> web.StreamResponse:
    """One Streamable HTTP request (a JSON-RPC POST, the event stream's GET, the session's
    DELETE), handed to the SDK with the verified caller in its scope."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    endpoint = request.app[MCP_KEY]
    manager = await endpoint.manager()
    if manager is None:
        return error_response(503, "unavailable", "the hub is shutting down")
    caller: Caller = request[CALLER]
    scope = asgi_scope(request)
    scope[CALLER_SCOPE_KEY] = caller
    # The SDK binds a session to the principal that opened it: another user's JWT on the
    # same session id is answered as if the session did not exist.
    scope["user"] = AuthenticatedUser(AccessToken(token="", client_id="integration-hub", scopes=[], subject=caller.user_id))
    bridge = AsgiBridge(request)
    exchange = asyncio.ensure_future(manager.handle_request(scope, bridge.receive, bridge.send))
    endpoint.exchanges.add(exchange)
    exchange.add_done_callback(endpoint.exchanges.discard)
    try:
        # Shielded: aiohttp cancels a handler whose client hung up (a client often does, once
        # it has read its answer); the SDK must hear that as a disconnect and finish its
        # exchange itself, not be cancelled half way (which would discard a new session).
        await asyncio.shield(exchange)
    except asyncio.CancelledError:
        bridge.hang_up()
        raise
    return await bridge.finish()


@public
async def resource_metadata(request: web.Request) -> web.Response:
    """RFC 9728 protected resource metadata: what the resource is and how a token is sent.
    The hub verifies JWTs its host application issues; when ``auth.issuer`` is set it is
    named as the authorization server."""
    hub = request.app[HUB_KEY]
    base = hub.config.public_url.rstrip("/")
    resource = base + request.path[len(METADATA_PATH):]
    doc: dict[str, Any] = {
        "resource": resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "Integration hub",
        "resource_documentation": base + "/api/openapi.json",
    }
    if hub.config.auth.issuer:
        doc["authorization_servers"] = [hub.config.auth.issuer]
    return web.json_response(doc, headers={"Cache-Control": "public, max-age=3600"})


_MESSAGE = {"$ref": "#/components/schemas/JsonRpcMessage"}
_SESSION = {"name": "Mcp-Session-Id", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "the session the server handed out in its answer to initialize (handshake-era protocol versions)"}
_VERSION = {"name": "MCP-Protocol-Version", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "the protocol version in use (2025-11-25, 2026-07-28, ...)"}
_NOT_HERE = {"description": "the method is not used at the protocol version the request names (2026-07-28 has no session "
                            "stream and no session to end)"}
_PROTOCOL_ERROR = {"description": "refused by the MCP transport: a malformed or unacceptable request (400, 406, 415), "
                                  "an unknown or another user's session (404), too many sessions (503); a JSON-RPC error object",
                   "content": {"application/json": {"schema": _MESSAGE}}}


def openapi_schemas() -> dict[str, Any]:
    return {
        "JsonRpcMessage": {
            "title": "JsonRpcMessage",
            "type": "object",
            "description": "a JSON-RPC 2.0 request, notification or response, as the Model Context Protocol defines them",
            "required": ["jsonrpc"],
            "properties": {
                "jsonrpc": {"type": "string", "enum": ["2.0"]},
                "id": {"type": ["string", "integer", "null"]},
                "method": {"type": "string"},
                "params": {"type": "object", "additionalProperties": True},
                "result": {"type": "object", "additionalProperties": True},
                "error": {"type": "object", "additionalProperties": True},
            },
        },
        "ProtectedResourceMetadata": {
            "title": "ProtectedResourceMetadata",
            "type": "object",
            "description": "RFC 9728 protected resource metadata",
            "required": ["resource", "bearer_methods_supported"],
            "properties": {
                "resource": {"type": "string"},
                "authorization_servers": {"type": "array", "items": {"type": "string"}},
                "bearer_methods_supported": {"type": "array", "items": {"type": "string"}},
                "resource_name": {"type": "string"},
                "resource_documentation": {"type": "string"},
            },
        },
    }


def openapi_paths() -> dict[str, Any]:
    """The Streamable HTTP endpoint (its messages are MCP's, documented in docs/mcp.md) and
    the resource metadata documents."""
    unauthorized = {"$ref": "#/components/responses/E401"}

    def op(method: str, summary: str, ok: dict[str, Any], *, body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operationId": f"mcp_{method}", "summary": summary, "tags": ["MCP"], "parameters": [_SESSION, _VERSION],
            "responses": {**ok, "401": unauthorized, "405": _NOT_HERE, "default": _PROTOCOL_ERROR},
        }
        if body:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": _MESSAGE}}}
        return out

    events = {"text/event-stream": {"schema": {"type": "string"}}}
    metadata = {
        "operationId": "protected_resource_metadata_get", "summary": "RFC 9728 protected resource metadata of the hub",
        "security": [],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProtectedResourceMetadata"}}}}},
    }
    return {
        PATH: {
            "post": op("post", "Send an MCP message: the answer is JSON, or an event stream that ends with it", {
                "200": {"description": "the answer to a request", "content": {"application/json": {"schema": _MESSAGE}, **events}},
                "202": {"description": "a notification or response, accepted"},
            }, body=True),
            "get": op("get", "Open the session's event stream (server-initiated messages)", {"200": {"description": "the stream", "content": events}}),
            "delete": op("delete", "End the session", {"200": {"description": "ended", "content": {"application/json": {"schema": {}}}}}),
        },
        METADATA_PATH: {"get": metadata},
        METADATA_PATH + PATH: {"get": {**metadata, "operationId": "mcp_protected_resource_metadata_get",
                                        "summary": "RFC 9728 protected resource metadata of /mcp"}},
    }


def asgi_scope(request: web.Request) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "root_path": "",
        "query_string": request.query_string.encode("latin-1"),
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
    }


class AsgiBridge:
    """One ASGI HTTP exchange over an aiohttp request and response."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self._body_done = False
        self._gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if not self._body_done:
            chunk = await self.request.content.readany()
            self._body_done = self.request.content.at_eof()
            return {"type": "http.request", "body": chunk, "more_body": not self._body_done}
        # The body is in: what is left to hear is the client going away, which shows as a
        # failed write (or the end of the exchange).
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", []):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            response.headers["X-Request-Id"] = self.request[REQUEST_ID]
            self.response = response
            return
        if kind != "http.response.body" or self.response is None or self._gone.is_set():
            return
        try:
            if not self.response.prepared:
                await self.response.prepare(self.request)
            body = message.get("body", b"")
            if body:
                await self.response.write(body)
            if not message.get("more_body", False):
                await self.response.write_eof()
                self._gone.set()
        except (ConnectionError, RuntimeError):
            # The client went away (having read what it needed, often): what is left to
            # send is dropped, as ASGI servers do, and the application hears a disconnect.
            self._gone.set()

    def hang_up(self) -> None:
        self._gone.set()

    async def finish(self) -> web.StreamResponse:
        self._gone.set()
        if self.response is None:
            return error_response(500, "internal_error", "the MCP transport gave no answer")
        if not self.response.prepared:
            await self.response.prepare(self.request)
            await self.response.write_eof()
        return self.response

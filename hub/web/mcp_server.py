"""The hub as an MCP server (the official ``mcp`` SDK's low-level ``Server``): ``tools/list``
and ``tools/call`` for one authenticated user, and word of a changed tool list.

Who the user is comes from the transport: over Streamable HTTP (``mcp_http.py``) the
caller's JWT was verified before the request reached the SDK and rides in the request's
ASGI scope; over stdio (``hub mcp --user ID``) the operator named the user. The tools
themselves, and every rule a call goes through, are the core's (``core/tools.py``).

A changed tool list (the user connected, disconnected, an integration failed) reaches
open sessions both ways the protocol has: on 2026-07-28 connections through a
``subscriptions/listen`` stream the client opened, on older ones as a
``notifications/tools/list_changed`` on the session. Both are fed by the store's status
watchers, so they hear changes made in this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import ListenHandler, ServerEvent, ToolsListChanged
from sqlalchemy.exc import DBAPIError

from ..core.hub import Hub
from ..core.tools import IDEMPOTENCY_META, ToolSpec
from ..errors import HubError
from ..infra.auth import Caller
from ..redact import redact_text
from ..store.watchers import StatusWatchers
from .errorcodes import wire_code

log = logging.getLogger("hub.mcp")

CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]

INSTRUCTIONS = (
    "These tools act on the accounts this user has connected to the integration hub (Slack, Trello, "
    "Google Calendar and others): one tool per action, named <provider>_<action>. A provider with no tools "
    "is not connected: hub_connect returns a link for the user to open. A failed call returns an error "
    "object with the hub's code and message; when it says to reconnect, ask the user to, with hub_connect."
)


class HubServer(Server[Any]):
    """Announces ``tools.listChanged`` on handshake-era connections too (the SDK's session
    manager asks for the options without any)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


def build_server(hub: Hub, caller_of: CallerOf) -> HubServer:
    sessions = SessionNotifier(hub.store.watchers)

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller = caller_of(ctx)
        sessions.follow(ctx, caller.user_id)
        try:
            specs = await hub.tools.available(caller)
        except Exception as exc:
            # A protocol error whose message says nothing of the cause (which stays in the log).
            log.error("could not list MCP tools (%s)", type(exc).__name__)
            raise MCPError(types.INTERNAL_ERROR, "the hub could not list the tools right now; try again shortly") from None
        return types.ListToolsResult(tools=[as_tool(spec) for spec in specs])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = caller_of(ctx)
        sessions.follow(ctx, caller.user_id)
        key = (params.meta or {}).get(IDEMPOTENCY_META)
        try:
            result = await hub.tools.call(caller, params.name, params.arguments, key=key)
        except HubError as exc:
            return tool_error(hub, exc)
        except (DBAPIError, OSError, asyncio.TimeoutError) as exc:
            log.error("database unavailable (%s) during an MCP tool call", type(exc).__name__)
            return error_result("database_unavailable", "the hub's database is unavailable right now; try again shortly")
        except Exception as exc:
            log.error("unexpected %s during MCP tool call %s", type(exc).__name__, params.name)
            return error_result("internal_error", "the hub failed unexpectedly; the operator's log has more")
        text = json.dumps(result, ensure_ascii=False, default=str)
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=hub.tools.structured(params.name, result))

    async def listen(ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        caller = caller_of(ctx)
        return await ListenHandler(UserBus(hub.store.watchers, caller.user_id))(ctx, params)

    return HubServer(
        "integration-hub",
        version=_version(),
        title="Integration hub",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_subscriptions_listen=listen,
    )


def as_tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=dict(spec.input_schema),
        output_schema=dict(spec.output_schema) if spec.output_schema is not None else None,
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.read_only,
            destructive_hint=spec.destructive if not spec.read_only else None,
            open_world_hint=True,
        ),
    )


def tool_error(hub: Hub, exc: HubError) -> types.CallToolResult:
    """A failed call as the model sees it: the HTTP API's error object, flagged as an error."""
    code, details = wire_code(exc)
    provider_code = getattr(exc, "provider_code", None)
    if provider_code:
        details = {**(details if isinstance(details, dict) else ({"info": details} if details is not None else {})), "providerError": provider_code}
    return error_result(code, redact_text(exc.message, hub.secret_values()), details)


def error_result(code: str, message: str, details: Any = None) -> types.CallToolResult:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    body = {"error": error}
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(body, ensure_ascii=False, default=str))], structured_content=body, is_error=True)


class UserBus:
    """The SDK's subscription bus, for one user's listen stream: a status change of the
    user's integrations is a ``tools/list_changed`` event."""

    def __init__(self, watchers: StatusWatchers, user_id: str) -> None:
        self.watchers = watchers
        self.user_id = user_id

    async def publish(self, event: ServerEvent) -> None:  # events come from the store, not from publishers
        return None

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self.watchers.watch(self.user_id, lambda _user: listener(ToolsListChanged()))


class SessionNotifier:
    """Handshake-era connections (before 2026-07-28) are told of a changed tool list on the
    connection itself. A connection is followed from its first request on, and forgotten
    once it is gone (weakly held) or a notification can no longer be sent."""

    def __init__(self, watchers: StatusWatchers) -> None:
        self.watchers = watchers
        self._followed: weakref.WeakKeyDictionary[Any, Callable[[], None]] = weakref.WeakKeyDictionary()
        self._sending: set[asyncio.Task[None]] = set()

    def follow(self, ctx: ServerRequestContext[Any, Any], user_id: str) -> None:
        # The SDK hands each request a fresh ServerSession over the connection's lasting
        # state; that state (its ``Connection``, whose ``send_tool_list_changed`` is public)
        # is what outlives the request, so it is what is followed.
        connection = getattr(ctx.session, "_connection", None)
        if connection is None or connection in self._followed or not _handshake_era(ctx):
            return
        ref = weakref.ref(connection)

        def changed(_user: str) -> None:
            live = ref()
            if live is None:
                stop()
                return
            task = asyncio.get_running_loop().create_task(self._send(live, stop))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

        stop = self.watchers.watch(user_id, changed)
        self._followed[connection] = stop
        weakref.finalize(connection, stop)

    async def _send(self, connection: Any, stop: Callable[[], None]) -> None:
        try:
            await connection.send_tool_list_changed()
        except Exception as exc:
            log.debug("could not tell an MCP session its tool list changed (%s); no longer following it", type(exc).__name__)
            stop()  # the connection is closed: nobody is listening any more


def _handshake_era(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("integration-hub")
    except PackageNotFoundError:
        return "0"

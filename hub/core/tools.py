"""A user's connected accounts as agent tools (the MCP server in ``web/mcp_server.py`` offers
them): which tools a user has, and running one through the same path as the HTTP API.

A tool is one action of one of the user's usable integrations (ACTIVE, or EXPIRED: the
hub refreshes before calling), named ``<provider>_<action>``, plus :data:`CONNECT_TOOL`,
which hands the agent a link its user opens to connect a provider. A call goes through
:meth:`ActionRunner.run <hub.core.actions.ActionRunner.run>` exactly as ``POST
/api/integrations/<provider>/<action>`` does: input validated against the action's schema
before anything reaches the provider, the integration's state checked, a usable token
(refreshed first when expired), the provider's budget, and an activity row, marked
``"_via": "mcp"`` in its request data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, HubError, NotFound, ValidationFailed
from ..infra.auth import Caller
from ..store.idempotency import Request, fingerprint
from ..store.integrations import IntegrationStore, account_of
from ..types import Action
from .actions import ActionRunner
from .idempotency import Idempotency, Replay
from .lifecycle import Status
from .runtime import ProviderRuntime, Providers
from .sessions import ConnectSessions

CONNECT_TOOL = "hub_connect"
VIA = "mcp"
# Where a client puts an idempotency key for one tool call: the request's ``_meta``.
IDEMPOTENCY_META = "idempotencyKey"
MAX_KEY_LENGTH = 255
USABLE = (Status.ACTIVE.value, Status.EXPIRED.value)
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class ToolSpec:
    """One tool as a client sees it; ``output_schema``, when there is one, describes an object."""

    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    read_only: bool
    destructive: bool


class ToolNotFound(NotFound):
    code = "unknown_action"


class Tools:
    def __init__(
        self, providers: Providers, store: IntegrationStore, actions: ActionRunner, sessions: ConnectSessions, idempotency: Idempotency
    ) -> None:
        self.providers = providers
        self.store = store
        self.actions = actions
        self.sessions = sessions
        self.idempotency = idempotency

    def names(self) -> dict[str, tuple[ProviderRuntime, Action]]:
        """Every tool name the enabled providers could offer, to its provider and action."""
        out: dict[str, tuple[ProviderRuntime, Action]] = {}
        for rt in self.providers.values():
            for action in rt.plugin.actions:
                out.setdefault(tool_name(rt.name, action.name), (rt, action))
        return out

    async def available(self, caller: Caller) -> list[ToolSpec]:
        """The caller's tools now: one per action of each usable integration, then the connect tool."""
        rows = {r.provider: r for r in await self.store.of_user(caller.user_id, exclude_status=Status.DELETED.value)}
        specs: list[ToolSpec] = []
        for name, rt in self.providers.items():
            row = rows.get(name)
            if row is None or row.status not in USABLE or not rt.configured:
                continue
            account = account_of(row.meta)
            who = account.get("name") or account.get("email") or account.get("team_name") or ""
            specs += [action_spec(rt, action, who) for action in rt.plugin.actions]
        connectable = sorted(name for name, rt in self.providers.items() if rt.configured)
        if connectable:
            specs.append(connect_spec(connectable, {n: self.providers[n].info.title for n in connectable}))
        return specs

    async def call(self, caller: Caller, name: str, arguments: Mapping[str, Any] | None, *, key: str | None = None) -> Any:
        """Run a tool for the caller and return what it answered; a :class:`HubError` when
        it fails (the MCP server turns it into a tool error with the hub's code)."""
        args = dict(arguments or {})
        if name == CONNECT_TOOL:
            return await self._connect(caller, args)
        found = self.names().get(name)
        if found is None:
            raise ToolNotFound(f"no tool named {name!r}; tools/list names the ones this user has")
        rt, action = found
        if key is None:
            return await self._run(caller, rt, action, args)
        claim = await self.idempotency.begin(Request(caller.user_id, check_key(key), "MCP", f"tools/call {name}", fingerprint(canonical(args))))
        if isinstance(claim, Replay):
            return json.loads(claim.body)
        try:
            result = await self._run(caller, rt, action, args)
        except BaseException:
            # Nothing is kept for a failed call: a retry with the same key runs again.
            await self.idempotency.store.release(claim)
            raise
        await self.idempotency.end(claim, 200, {}, canonical(result))
        return result

    def structured(self, name: str, result: Any) -> dict[str, Any] | None:
        """``result`` as the tool's structured content (an object, as MCP wants it): the
        result itself, or ``{"data": result}`` when the action's output schema is not an object."""
        found = self.names().get(name)
        output = found[1].output_schema if found is not None else None
        if output is not None and output.get("type") != "object":
            return {"data": result}
        return result if isinstance(result, dict) else None

    async def _run(self, caller: Caller, rt: ProviderRuntime, action: Action, args: dict[str, Any]) -> Any:
        try:
            return await self.actions.run(caller, rt, action, args, via=VIA)
        except HubError as exc:
            raise with_reconnect_hint(rt, exc) from None

    async def _connect(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(args) - {"provider"})
        if unknown:
            raise ValidationFailed(f"{unknown[0]}: is not a known field (expected {{\"provider\": \"...\"}})", details={"field": unknown[0]})
        provider = args.get("provider")
        if not isinstance(provider, str) or not provider:
            raise ValidationFailed("provider: is required: the name of the provider to connect (tools/list shows the choices)", details={"field": "provider"})
        rt = self.providers.configured(provider)
        row = await self.store.find(caller.user_id, provider)
        # A connect session: the link opens once, and the OAuth flow it starts completes
        # only in the browser that opened it (docs/connect-sessions.md).
        link = await self.sessions.link_for(caller, provider)
        return {
            "provider": provider,
            "title": rt.info.title,
            "connected": row is not None and row.status in USABLE,
            **link,
        }


def tool_name(provider: str, action: str) -> str:
    return f"{provider}_{action}"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise ValidationFailed(
            f"_meta.{IDEMPOTENCY_META}: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is 36)",
            details={"field": f"_meta.{IDEMPOTENCY_META}"},
        )
    return key


def with_reconnect_hint(rt: ProviderRuntime, exc: HubError) -> HubError:
    """An integration that needs the user again (ERROR, disconnected, never connected) says
    so in words an agent can act on: ask the user to reconnect, with ``hub_connect``."""
    status = exc.details.get("status") if isinstance(exc.details, dict) else None
    needs_user = exc.code in ("reconnect_required", "integration_not_found") or (isinstance(exc, Conflict) and status in ("ERROR", "INACTIVE"))
    if needs_user:
        verb = "connect" if exc.code == "integration_not_found" else "reconnect"
        exc.message = (
            f"{exc.message}. The user must {verb} their {rt.info.title} account: call {CONNECT_TOOL} with "
            f'{{"provider": "{rt.name}"}} and give them the link it returns.'
        )
    return exc


def action_spec(rt: ProviderRuntime, action: Action, account: str) -> ToolSpec:
    title = rt.info.title
    lines = [action.summary or action.name.replace("_", " ")]
    if action.description and action.description != action.summary:
        lines.append(action.description)
    whose = f"the user's {title} account" + (f" ({account})" if account else "")
    lines.append(f"Acts on {whose} through the integration hub ({action.method} {action.path}).")
    if action.method in READ_METHODS:
        lines.append("Reads only; changes nothing.")
    if action.deprecated is not None:
        lines.append("Deprecated: prefer another tool where one fits.")
    output = action.output_schema
    wrapped = output is not None and output.get("type") != "object"
    if wrapped:
        output = {"type": "object", "properties": {"data": dict(output or {})}, "required": ["data"]}
    return ToolSpec(
        name=tool_name(rt.name, action.name),
        title=f"{title}: {action.summary or action.name.replace('_', ' ')}",
        description="\n\n".join(lines),
        input_schema=action.input_schema,
        output_schema=output,
        read_only=action.method in READ_METHODS,
        destructive=action.method == "DELETE",
    )


def connect_spec(providers: list[str], titles: dict[str, str]) -> ToolSpec:
    listing = ", ".join(f"{n} ({titles[n]})" for n in providers)
    return ToolSpec(
        name=CONNECT_TOOL,
        title="Connect an account",
        description=(
            "Get a single-use link the user opens in their own browser to connect (or reconnect) one of their accounts with a provider, "
            "when a tool they need is missing or a call says to reconnect. Give the user the link; once they have "
            f"connected, the provider's tools appear in the tool list. Providers: {listing}."
        ),
        input_schema={
            "type": "object",
            "properties": {"provider": {"type": "string", "enum": providers, "description": "the provider to connect"}},
            "required": ["provider"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "provider": {"type": "string"},
                "title": {"type": "string"},
                "connected": {"type": "boolean", "description": "whether the user already has a usable account with it"},
                "url": {"type": "string", "description": "the link for the user to open, once, in their own browser"},
                "expiresAt": {"type": "string", "description": "when the link stops working (RFC 3339)"},
                "connectSessionId": {"type": "string", "description": "the connect session behind the link"},
            },
            "required": ["provider", "title", "connected", "url", "expiresAt", "connectSessionId"],
        },
        read_only=False,
        destructive=False,
    )

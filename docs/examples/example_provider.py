"""Example Tasks: a complete provider plugin for a service that speaks plain OAuth 2.0.

Authorization code with PKCE, refresh, RFC 7009 revocation and an OpenID Connect style
userinfo endpoint are all standard here, so the hub's defaults do every token step. The
plugin only says who it is, where the service lives, and what the hub may do with it.

Packaged as ``hub_example``, it is found through this entry point in its pyproject.toml:

    [project.entry-points."hub.providers"]
    example = "hub_example"
"""

from __future__ import annotations

from typing import Any

from hub import Action, CallContext, Endpoints, ProviderInfo, hookimpl

INFO = ProviderInfo(
    name="example",  # must equal the entry-point name
    title="Example Tasks",
    description="Read the tasks of an Example Tasks project.",
    endpoints=Endpoints(
        api="https://api.example.com/v1",
        authorize="https://example.com/oauth/authorize",
        token="https://example.com/oauth/token",
        revoke="https://example.com/oauth/revoke",
        userinfo="https://example.com/oauth/userinfo",
    ),
    default_scopes=("profile", "tasks:read"),
)

LIST_TASKS_INPUT = {
    "type": "object",
    "properties": {
        "project_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "status": {"type": "string", "enum": ["open", "done"], "default": "open"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "required": ["project_id"],
    "additionalProperties": False,
}


@hookimpl
def hub_provider() -> ProviderInfo:
    return INFO


@hookimpl
def hub_actions() -> list[Action]:
    return [
        Action(
            name="list_tasks",
            method="GET",
            path="projects/{project_id}/tasks",
            handler=list_tasks,
            input_schema=LIST_TASKS_INPUT,
            summary="List the tasks of a project",
        )
    ]


async def list_tasks(ctx: CallContext) -> dict[str, Any]:
    project = ctx.input["project_id"]
    # ctx.http is bound to the api URL and already carries this user's credentials;
    # an upstream failure surfaces as the hub's typed error without any code here.
    response = await ctx.http.get(
        f"projects/{project}/tasks",
        params={"status": ctx.input.get("status", "open"), "limit": ctx.input.get("limit")},
    )
    body = response.json()
    ctx.update_state(lastProject=project)  # saved on the integration if the call succeeds
    return {"tasks": body.get("items", []), "nextCursor": body.get("next")}
